"""Group commit of hold requests: one save for the requests that arrive within a short window.

Each save is a transaction that takes the event table's lock, so one save per hold caps a
process at a few hundred holds per second. The batcher's thread takes the requests queued within
``window_s`` (at most ``group_max``), decides them in arrival order against the current wallets
(each request sees the holds of the ones before it, so a pool is never over-reserved), and saves
every wallet they changed in one transaction; each caller gets its own answer (its hold, or the
error that refused it). A version conflict with another writer (another process, the consumer)
re-decides the whole group from fresh wallets (``retry_on_conflict``); nothing is saved twice.

Holds committed this way keep no command record: a hold is idempotent by its reference while it
is active (the same request is answered with the same hold), which is what a retry needs.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

import structlog

from ledger_service.domain.errors import LedgerError
from ledger_service.domain.holds import hold_id
from ledger_service.service.holds import HoldState, PlaceHold, hold_state
from ledger_service.service.runner import (
    evicting_on_conflict,
    retry_on_conflict,
    translated_store_errors,
)

if TYPE_CHECKING:
    from ledger_service.domain.wallet import Wallet
    from ledger_service.service.ledger import LedgerApplication

log = structlog.get_logger(__name__)

Request = tuple[PlaceHold, "Future[HoldState]"]
Outcome = HoldState | LedgerError


class HoldBatcher:
    def __init__(
        self, ledger: LedgerApplication, *, window_s: float = 0.002, group_max: int = 256
    ) -> None:
        self.ledger = ledger
        self.window_s = window_s
        self.group_max = group_max
        self._queue: queue.SimpleQueue[Request | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="hold-batcher", daemon=True)
        self._routes: dict[tuple[str, str], UUID] = {}
        """(sender, company) -> the wallet it draws from."""
        self._wallets: dict[UUID, Wallet] = {}
        """Wallets as of the batcher's last save or update of them (see ``_wallet``)."""
        self.groups = 0
        """Groups committed so far (for tests and logs)."""

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def submit(self, command: PlaceHold) -> Future[HoldState]:
        future: Future[HoldState] = Future()
        self._queue.put((command, future))
        return future

    # -- the batcher's thread -------------------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group, stopping = self._collect(first)
            self._commit(group)
            if stopping:
                return

    def _collect(self, first: Request) -> tuple[list[Request], bool]:
        """The first request and those that arrive within the window after it."""
        group = [first]
        deadline = time.monotonic() + self.window_s
        while len(group) < self.group_max:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                item = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if item is None:
                return group, True
            group.append(item)
        return group, False

    def _commit(self, group: list[Request]) -> None:
        try:
            with translated_store_errors():
                outcomes, position = retry_on_conflict(
                    lambda: self._attempt(group),
                    self.ledger.retry_count_max,
                    what="a group of holds",
                )
        except Exception as exc:  # the store is down, or conflicts persisted: tell everyone
            log.warning("hold_group_failed", requests=len(group), error=repr(exc))
            for _, future in group:
                future.set_exception(exc)
            return
        self.groups += 1
        for (_, future), outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, LedgerError):
                future.set_exception(outcome)
            else:
                future.set_result({**outcome, "position": position})

    def _attempt(self, group: list[Request]) -> tuple[list[Outcome], int | None]:
        """Decide every request in order against up-to-date wallets; save the changed ones."""
        outcomes: list[Outcome] = []
        touched: dict[UUID, Wallet] = {}
        try:
            touched.update(self._cached_wallets(group))
            for command, _ in group:
                try:
                    wallet = self._wallet(command, touched)
                    outcomes.append(_decide(wallet, command))
                except LedgerError as exc:
                    outcomes.append(exc)
            changed = [w for w in touched.values() if w.pending_events]
            if not changed:
                return outcomes, None
            with evicting_on_conflict(self.ledger, changed):
                recordings = self.ledger.save(*changed)
        except BaseException:
            for id_ in touched:  # unsaved events, or a lost race: load them afresh next time
                self._wallets.pop(id_, None)
            raise
        return outcomes, max(r.notification.id for r in recordings)

    def _cached_wallets(self, group: list[Request]) -> dict[UUID, Wallet]:
        """The wallets the batcher holds for the group's senders (no reload, no copy of a
        wallet with many holds), brought up to date with the events others saved since, in
        one query for the whole group. A race after that fails the save."""
        routes = {(command.waba_id, command.company_id) for command, _ in group}
        ids = {self._routes.get(route) for route in routes}
        wallets = {id_: self._wallets[id_] for id_ in ids if id_ in self._wallets}
        self.ledger.fast_forward(wallets.values())
        return wallets

    def _wallet(self, command: PlaceHold, touched: dict[UUID, Wallet]) -> Wallet:
        """The wallet of the request's sender: one of the group's (``touched``), else loaded."""
        route = (command.waba_id, command.company_id)
        wallet_id = self._routes.get(route)
        if wallet_id in touched:
            wallet = touched[wallet_id]
            if command.waba_id in wallet.senders:
                return wallet
            del self._routes[route]  # unlinked since: route afresh
        wallet = self.ledger.wallet_for_sender(*route)
        wallet = touched.setdefault(wallet.id, wallet)  # the group's copy if it has one
        self._routes[route] = wallet.id
        self._wallets[wallet.id] = wallet
        return wallet


def _decide(wallet: Wallet, command: PlaceHold) -> HoldState:
    hold = wallet.place_hold(
        hold_id=str(hold_id(wallet.id, command.reference)),
        reference=command.reference,
        source=command.source,
        sender_id=command.waba_id,
        category=command.category,
        units=command.units,
        ttl_s=command.ttl_s,
        actor=command.actor,
        now=datetime.now(UTC),
    )
    return hold_state(wallet, hold, "active")
