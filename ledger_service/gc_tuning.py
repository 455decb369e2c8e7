"""The cyclic garbage collector, tuned for a long-running role.

Nearly everything the service allocates (requests, events, rows) is freed by reference counting
the moment it is dropped; the cyclic collector only matters for the rare cycle. But CPython
starts a young collection every 700 net container allocations, and a service whose caches grow
(wallets, their active holds) pays for frequent collections and, one in a hundred, a full
one that walks the whole heap. Measured on `ledger serve` under 2,000 holds/s: 3,227 collections
in a bench run, 22 of them over 10 ms, the longest 153 ms: the p99. With the young threshold at
50,000: 2 collections, the longest 16 ms (see README, "Benchmarks").
"""

from __future__ import annotations

import gc

import structlog

log = structlog.get_logger(__name__)


def tune_garbage_collector(gen0_threshold: int) -> None:
    """Collect young objects every ``gen0_threshold`` net allocations (0: Python's default);
    the older generations keep their ratios."""
    if gen0_threshold <= 0:
        return
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
    log.debug("gc_tuned", thresholds=gc.get_threshold())
