"""The ``ledger`` command: the single entry point of the service and its tools.

One module per command group; :mod:`ledger_service.cli.app` assembles them. ``cli`` and ``main``
are re-exported here because the console script (``ledger_service.cli:main``) and the tests name
them by this path.
"""

from ledger_service.cli.app import cli, main

__all__ = ["cli", "main"]
