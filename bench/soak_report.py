"""The soak's figures and verdicts, printed at the end (also after a timeout: whatever was
measured by then, and FAIL for what could not be checked)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from bench.soak_checks import Check
from bench.soak_faults import CONSUMER, PG_FAST, PG_IMMEDIATE, PROJECTOR

if TYPE_CHECKING:
    from bench.soak import Soak

EXAMPLES_MAX = 5


@dataclass
class Outcome:
    run_dir: Path
    timed_out: bool = False
    error: str | None = None
    setup_s: float = 0.0
    ingest_s: float | None = None
    wall_s: float = 0.0
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    verify: tuple[int, str] | None = None
    replay: tuple[int, str] | None = None
    replay_differences: dict[str, tuple[int, int]] | None = None
    usage_keys: int | None = None
    usage_debits: tuple[int, int] | None = None
    balances: dict[str, Decimal | None] | None = None
    dead_letters: list[tuple[int, int, str]] | None = None
    load_at_start: float | None = None
    counters: dict[str, float] = field(default_factory=dict)
    """The consumers' counters over all their lives (as last scraped before each kill)."""


def print_report(run: Soak, options: argparse.Namespace) -> bool:
    """Print everything; True when every check passed."""
    for line in _figures(run, options):
        print(line)
    results = _checks(run)
    print("checks:")
    for check in results:
        print(f"  {check.line()}")
    passed = all(check.ok for check in results)
    print(f"RESULT: {'PASS' if passed else 'FAIL'}", flush=True)
    return passed


def _figures(run: Soak, options: argparse.Namespace) -> list[str]:
    out, planned, made = run.outcome, run.stream.planned, run.stream.counts
    stats, faults = run.api_stats, run.faults
    pub = run.published
    publish_s = (pub.finished_at or 0) - (pub.started_at or 0) if pub.finished_at else None
    senders = sum(len(company.senders) for company in run.companies)
    lines = [
        "",
        "== soak figures ==",
        f"run: seed {options.seed}, {options.consumers} consumers in one group, "
        f"{options.partitions} partitions, publish rate {options.rate:,.0f}/s, "
        f"API {options.api_ops_per_s:g} ops/s; machine: {os.cpu_count()} CPUs, 1-minute load "
        f"average {out.load_at_start or 0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
        f"published: {pub.acknowledged:,} records acknowledged of {planned.records:,} planned: "
        f"{made.unique:,} unique usage events, duplicates {made.verbatim:,} verbatim + "
        f"{made.republished:,} republished, {made.poison} poison",
        f"wallets: {len(run.companies):,} ({senders:,} senders linked)",
        f"API: {stats.topups:,} top-ups completed ({len(run.companies):,} initial fundings "
        f"included), {stats.transfers:,} transfers, {stats.calls:,} calls, retries "
        f"{dict(stats.retries) or 0}, refused {dict(stats.refused) or 0}, uncertain "
        f"{stats.uncertain}",
        f"faults: consumer SIGKILLs {faults.count(CONSUMER)}/{options.consumer_kills}, "
        f"PostgreSQL restarts {faults.count(PG_FAST) + faults.count(PG_IMMEDIATE)}/"
        f"{options.pg_restarts} (fast {faults.count(PG_FAST)}, immediate "
        f"{faults.count(PG_IMMEDIATE)}; {faults.pg_down_s:.0f}s without a database), projector "
        f"SIGKILLs {faults.count(PROJECTOR)}/{options.projector_restarts}",
        f"extra restarts (exits nobody asked for): {len(run.fleet.unexpected)}",
    ]
    lines += [
        f"  {e.role} exited with code {e.code} at +{e.at_s:.0f}s after {e.uptime_s:.0f}s of "
        f"life; log ends: "
        f"{e.log_tail.strip().splitlines()[-1][:300] if e.log_tail.strip() else '(empty)'}"
        for e in run.fleet.unexpected
    ]
    if out.counters:
        lines.append(
            "consumers (/metrics scraped every 2 s, summed over restarts): "
            + ", ".join(f"{name} {value:,.0f}" for name, value in out.counters.items())
        )
    lines.append(f"clean stop (SIGTERM) exit codes: {out.exit_codes or 'not reached'}")
    lines.append(f"times: setup {out.setup_s:.0f}s, publishing "
                 f"{_seconds(publish_s)}, ingest phase (first record published -> every "
                 f"record consumed) {_seconds(out.ingest_s)}, wall {out.wall_s:.0f}s")  # fmt: skip
    if out.ingest_s and out.usage_keys is not None:
        lines.append(
            f"throughput under faults: {out.usage_keys / out.ingest_s:,.0f} unique usage "
            f"events applied/s ({pub.acknowledged / out.ingest_s:,.0f} records consumed/s)"
        )
    if out.timed_out:
        lines.append(f"TIMED OUT after {options.timeout_s:.0f}s: stopped everything")
    if out.error:
        lines.append(f"ERROR: {out.error}")
    return lines


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}s"


def _checks(run: Soak) -> list[Check]:
    out = run.outcome
    unique = run.stream.counts.unique
    if out.usage_keys is None:
        return [Check("the final checks", False, "not reached (timed out or failed earlier)")]
    debits, distinct = out.usage_debits or (0, 0)
    return [
        Check("lost", unique - out.usage_keys <= 0,
              f"{unique:,} unique ids published - {out.usage_keys:,} usage keys applied = "
              f"{unique - out.usage_keys}"),
        Check("applied twice", out.usage_keys - unique <= 0 and debits == distinct == unique,
              f"{out.usage_keys:,} usage keys - {unique:,} unique ids = "
              f"{out.usage_keys - unique}; usage debit entries {debits:,} for {distinct:,} "
              "distinct events"),
        _balances(run),
        _one_shot("ledger verify", out.verify),
        _replay(out),
        _dead_letters(run),
    ]  # fmt: skip


def _balances(run: Soak) -> Check:
    balances = run.outcome.balances or {}
    wrong = [
        f"{company} {actual} != {run.reference.balance(company)}"
        for company, actual in sorted(balances.items())
        if actual != run.reference.balance(company)
    ]
    total = sum((b for b in balances.values() if b is not None), Decimal(0))
    expected = sum((run.reference.balance(c) for c in balances), Decimal(0))
    detail = (
        f"{len(balances) - len(wrong):,}/{len(balances):,} event-sourced wallet balances equal "
        f"the reference (sum {total} vs {expected})"
    )
    if wrong:
        detail += "; e.g. " + ", ".join(wrong[:EXAMPLES_MAX])
    return Check("balances", not wrong and len(balances) == len(run.companies), detail)


def _one_shot(name: str, result: tuple[int, str] | None) -> Check:
    if result is None:
        return Check(name, False, "not run")
    code, output = result
    lines = [line for line in output.strip().splitlines() if not line.startswith("{")]
    return Check(name, code == 0, f"exit {code}: " + " | ".join(lines[-3:])[:600])


def _replay(out: Outcome) -> Check:
    ran = _one_shot("ledger replay --all", out.replay)
    differences = out.replay_differences or {}
    differing = {table: diff for table, (diff, _) in differences.items() if diff}
    rows = sum(count for _, count in differences.values())
    detail = (
        f"{ran.detail}; {len(differences)} read-model tables, {rows:,} rows, compared in full "
        "(only rm_projection_positions.updated_at left out): "
        + (f"differing rows {differing}" if differing else "identical")
    )
    return Check("replay equals live", ran.ok and bool(differences) and not differing, detail)


def _dead_letters(run: Soak) -> Check:
    letters = run.outcome.dead_letters or []
    expected = run.published.poison
    found = {(partition, offset): code for partition, offset, code in letters}
    unexpected = {pos: code for pos, code in found.items() if expected.get(pos) != code}
    missing = sorted(set(expected) - set(found))
    repeats = len(letters) - len(found)
    detail = (
        f"{len(found)} distinct dead letters for {len(expected)} poison records injected "
        f"({len(letters)} dead-letter records; {repeats} published twice)"
    )
    if unexpected:
        detail += f"; not injected: {list(unexpected.items())[:EXAMPLES_MAX]}"
    if missing:
        detail += f"; missing: {missing[:EXAMPLES_MAX]}"
    return Check("dead letters", not unexpected and not missing, detail)
