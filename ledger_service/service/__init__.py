"""The service layer: use cases of the ledger, one module per capability.

* ``runner`` - the one idempotency-and-retry unit around ``save()`` and the command base class;
* ``ledger`` - ``LedgerApplication``: the event store, loading, and the commands bound to it;
* ``wallets``, ``topups``, ``transfers``, ``cycles``, ``usage`` - the commands and use cases.

Nothing is imported here, so importing one capability does not import them all.
"""
