"""The followers' loop and the runner's supervision: expected outages are waited out, bugs are
raised, logged and the part restarted - never swallowed by a loop that carries on."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Sequence
from typing import Any
from uuid import uuid4

import psycopg
import pytest
import structlog
from eventsourcing.persistence import Notification

from ledger_service.follow import FollowLoop, pause
from ledger_service.reactions.follower import LogFollower
from ledger_service.runner import StopSignal, restarting, run_until_signalled
from ledger_service.service.runner import StoreUnavailable


class Steps:
    """A follower step that answers from a script: True/False (busy or not) or an exception."""

    def __init__(self, script: Sequence[bool | BaseException], stop: asyncio.Event) -> None:
        self.script = list(script)
        self.stop = stop
        self.calls = 0

    async def __call__(self) -> bool:
        self.calls += 1
        if not self.script:
            self.stop.set()
            return False
        outcome = self.script.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


async def test_the_loop_goes_again_at_once_while_busy_and_ends_on_stop() -> None:
    stop = asyncio.Event()
    steps = Steps([True, True, False, True], stop)
    loop = FollowLoop("test", poll_interval_s=0.01)
    await asyncio.wait_for(loop.run(steps, stop), timeout=5)
    assert steps.calls == 5


async def test_an_unreachable_database_is_retried_with_a_warning() -> None:
    stop = asyncio.Event()
    outage = [StoreUnavailable("down"), psycopg.OperationalError("gone")]
    steps = Steps([*outage, True], stop)
    loop = FollowLoop("test", poll_interval_s=0.01, backoff_max_s=0.02)
    with structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(loop.run(steps, stop), timeout=5)
    warnings = [e for e in logs if e["event"] == "follower_unavailable"]
    assert [w["follower"] for w in warnings] == ["test", "test"]
    assert [w["retry_in_s"] for w in warnings] == [0.01, 0.02]
    assert steps.calls == 4


async def test_a_bug_is_raised_not_swallowed() -> None:
    stop = asyncio.Event()
    steps = Steps([True, KeyError("bug"), True], stop)
    with pytest.raises(KeyError):
        await asyncio.wait_for(FollowLoop("test", poll_interval_s=0.01).run(steps, stop), 5)
    assert steps.calls == 2


async def test_a_crashed_part_is_logged_and_restarted() -> None:
    runs = 0

    async def buggy(stop: StopSignal) -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise ZeroDivisionError("bug")
        stop.set()

    stop = asyncio.Event()
    with structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(restarting("part", buggy, backoff_s=0.01)(stop), timeout=5)
    crashes = [e for e in logs if e["event"] == "service_part_crashed"]
    assert runs == 3
    assert [(c["part"], c["log_level"]) for c in crashes] == [("part", "error")] * 2
    assert [c["restart_in_s"] for c in crashes] == [0.01, 0.02]
    assert isinstance(crashes[0]["exc_info"], ZeroDivisionError)


async def test_a_restarting_part_ends_quietly_on_stop_during_its_back_off() -> None:
    async def buggy(stop: StopSignal) -> None:
        raise ZeroDivisionError("bug")

    stop = asyncio.Event()
    task = asyncio.create_task(restarting("part", buggy, backoff_s=60)(stop))
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, timeout=5)


async def test_a_failing_part_that_is_not_restarted_stops_the_service() -> None:
    async def buggy(stop: StopSignal) -> None:
        raise ZeroDivisionError("bug")

    async def waits(stop: StopSignal) -> None:
        await stop.wait()

    with structlog.testing.capture_logs() as logs, pytest.raises(ZeroDivisionError):
        await asyncio.wait_for(run_until_signalled({"bug": buggy, "other": waits}), 5)
    assert [e["part"] for e in logs if e["event"] == "service_part_failed"] == ["bug"]


async def test_a_signal_stops_every_part_and_a_part_that_will_not_stop_is_cut_off() -> None:
    async def prompt(stop: StopSignal) -> None:
        await stop.wait()

    async def stubborn(stop: StopSignal) -> None:
        await stop.wait()
        await asyncio.sleep(60)  # a batch that never ends

    loop = asyncio.get_running_loop()
    loop.call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(run_until_signalled({"a": prompt, "b": prompt}), 5)

    loop.call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
    started = loop.time()
    with structlog.testing.capture_logs() as logs, pytest.raises(TimeoutError):
        await run_until_signalled({"fine": prompt, "stuck": stubborn}, shutdown_timeout_s=0.3)
    assert loop.time() - started < 5, "bounded"
    assert [e["parts"] for e in logs if e["event"] == "shutdown_timed_out"] == [["stuck"]]


async def test_pause_returns_as_soon_as_stop_is_set() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, stop.set)
    await asyncio.wait_for(pause(stop, 60), timeout=5)


class Source:
    def __init__(self, topics: Sequence[str]) -> None:
        self.log = [
            Notification(
                id=i + 1, originator_id=uuid4(), originator_version=1, topic=topic, state=b""
            )
            for i, topic in enumerate(topics)
        ]

    def select_notifications(
        self, start: int | None, limit: int, stop: int | None = None, topics: Sequence[str] = ()
    ) -> Sequence[Notification]:
        chosen = [
            n
            for n in self.log
            if n.id >= (start or 1) and (stop is None or n.id <= stop) and n.topic in topics
        ]
        return chosen[:limit]

    def max_notification_id(self) -> int | None:
        return self.log[-1].id if self.log else None


class Positions:
    def __init__(self) -> None:
        self.saved: dict[str, int] = {}

    def get(self, name: str) -> int:
        return self.saved.get(name, 0)

    def advance(self, name: str, position: int) -> None:
        self.saved[name] = max(self.saved.get(name, 0), position)


class Mapper:
    def to_domain_event(self, stored_event: Notification) -> Any:
        return stored_event.topic


def test_the_follower_selects_bounded_batches_and_advances_past_other_events() -> None:
    source = Source(["a", "x", "a", "a", "x", "x"])
    positions = Positions()
    follower = LogFollower("f", source, Mapper(), positions, ("a",), batch_size_max=2)  # type: ignore[arg-type]
    first = follower.next_batch()
    assert first is not None
    assert (first.events, first.through) == ([(1, "a"), (3, "a")], 3)
    follower.done(first)
    second = follower.next_batch()
    assert second is not None
    assert (second.events, second.through) == ([(4, "a")], 6)  # to the head: x's are skipped
    follower.done(second)
    assert follower.next_batch() is None
    assert positions.saved == {"f": 6}
