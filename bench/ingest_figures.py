"""The figures of `make bench-ingest`: every run's value, the median, and the floor of #16."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class Floor:
    label: str
    unit: str
    bound: float
    at_least: bool  # True: the median must be >= bound; False: <= bound

    def met(self, value: float) -> bool:
        return value >= self.bound if self.at_least else value <= self.bound

    def describe(self) -> str:
        sign = ">=" if self.at_least else "<="
        return f"{sign} {self.bound:,.2f}" if self.bound < 1 else f"{sign} {self.bound:,.0f}"


FLOORS: dict[str, Floor] = {
    "spread": Floor("spread, 1,000 companies x 3 senders", "deductions/s", 12_000, True),
    "spread / raw": Floor("spread / raw INSERT of the same run", "ratio", 0.2, True),
    "hot": Floor("hot pool, 1 company x 3 senders", "deductions/s", 12_000, True),
    "steady p99 2000": Floor("produce-to-commit p99 at 2,000/s steady", "ms", 300, False),
    "steady p99 5000": Floor("produce-to-commit p99 at 5,000/s steady", "ms", 1_000, False),
    "cold p99 2000": Floor("p99 in the first 10 s after a restart, 2,000/s", "ms", 2_000, False),
    "projection p99 5000": Floor("commit -> read model p99 at 5,000/s", "ms", 500, False),
}
INFORMATION = {
    "raw": "baseline: raw batched INSERT (1000 rows/tx, 600-byte rows), rows/s",
    "steady p50 2000": "produce-to-commit p50 at 2,000/s steady, ms",
    "steady p50 5000": "produce-to-commit p50 at 5,000/s steady, ms",
    "cold p99 5000": "p99 in the first 10 s after a restart, 5,000/s, ms",
    "spread cores": "consumer process CPU while it applies the spread (all threads), cores",
}


def percentile(values: list[float], pct: float) -> float:
    return statistics.quantiles(values, n=1000)[int(pct * 10) - 1]


class Figures:
    def __init__(self) -> None:
        self.runs: dict[str, list[float]] = defaultdict(list)

    def add(self, name: str, value: float) -> None:
        self.runs[name].append(value)
        if name == "raw":
            spread = self.runs["spread"][-1]
            self.runs["spread / raw"].append(spread / value)

    def print_run(self, index: int) -> None:
        values = ", ".join(f"{name} {_fmt(runs[index])}" for name, runs in self.runs.items())
        print(f"run {index + 1}: {values}", flush=True)

    def report(self) -> None:
        print("\nfigure: runs -> median (floor of #16)")
        for name, floor in FLOORS.items():
            if name not in self.runs:
                continue
            median = statistics.median(self.runs[name])
            verdict = "met" if floor.met(median) else "NOT met"
            print(
                f"  {floor.label} ({floor.unit}): {_list(self.runs[name])} -> median "
                f"{_fmt(median)}  floor {floor.describe()}: {verdict}"
            )
        for name, label in INFORMATION.items():
            if name in self.runs:
                median = statistics.median(self.runs[name])
                print(f"  {label}: {_list(self.runs[name])} -> median {_fmt(median)}")


def _fmt(value: float) -> str:
    return f"{value:.2f}" if abs(value) < 10 else f"{value:,.0f}"


def _list(values: list[float]) -> str:
    return ", ".join(_fmt(v) for v in values)
