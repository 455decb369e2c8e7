"""The long-running roles collect young garbage every LEDGER_GC_GEN0_THRESHOLD allocations."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ledger_service.config import Settings
from ledger_service.gc_tuning import tune_garbage_collector


@pytest.fixture(autouse=True)
def restored_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_the_young_threshold_is_raised_and_the_older_ratios_kept() -> None:
    gc.set_threshold(700, 10, 10)
    tune_garbage_collector(Settings().gc_gen0_threshold)
    assert gc.get_threshold() == (50_000, 10, 10)


def test_zero_keeps_pythons_default() -> None:
    gc.set_threshold(700, 10, 10)
    tune_garbage_collector(0)
    assert gc.get_threshold() == (700, 10, 10)
