"""The wallet's senders and settings, and failed sends: its commands that move no money.

Every function here taking ``self: Wallet`` is a method of ``Wallet``, assigned in its class
body (see ``wallet_policies`` for why, and why to call them only on a wallet); the events are
``Wallet.SenderLinked`` etc., with their stored topics unchanged.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.domain import event

from ledger_service.domain import wallet_events
from ledger_service.domain.errors import (
    InvalidArgument,
    SenderAlreadyLinked,
    SenderNotLinked,
    UnknownCategory,
)
from ledger_service.domain.ids import check_key
from ledger_service.domain.invoice import check_percent
from ledger_service.domain.money import canonical, parse_amount

if TYPE_CHECKING:
    from ledger_service.domain.wallet import Wallet


class PoolMode(StrEnum):
    SHARED = "shared"
    PER_SENDER = "per_sender"
    """Legacy: one wallet per sender, which only that sender draws from."""


def check_pool(company_id: str, mode: PoolMode, pool_sender_id: str | None) -> None:
    """A wallet's owner: a company, and for a legacy per_sender pool its one sender."""
    check_key(company_id, "company_id")
    if (mode is PoolMode.PER_SENDER) != (pool_sender_id is not None):
        raise InvalidArgument("a per_sender wallet needs pool_sender_id; a shared one must not")
    if pool_sender_id is not None:
        check_key(pool_sender_id, "pool_sender_id")


# -- senders ---------------------------------------------------------------------------------


def link_sender(self: Wallet, waba_id: str, *, actor: str) -> None:
    check_key(waba_id, "waba_id")
    if waba_id in self.senders:
        raise SenderAlreadyLinked(f"sender {waba_id} is already linked to this wallet")
    if self.merged_into is not None:
        raise InvalidArgument(
            f"this pool was merged into {self.company_id}'s shared pool: link the sender there"
        )
    if self.mode is PoolMode.PER_SENDER and waba_id != self.pool_sender_id:
        raise InvalidArgument(
            f"a per_sender wallet only takes its own sender {self.pool_sender_id}"
        )
    self._sender_linked(waba_id=waba_id, actor=actor)


@event(wallet_events.SenderLinked)
def _sender_linked(self: Wallet, waba_id: str, actor: str) -> None:
    self.senders.add(waba_id)


def unlink_sender(self: Wallet, waba_id: str, *, actor: str) -> None:
    self.check_sender_linked(waba_id)
    self._sender_unlinked(waba_id=waba_id, actor=actor)


@event(wallet_events.SenderUnlinked)
def _sender_unlinked(self: Wallet, waba_id: str, actor: str) -> None:
    self.senders.discard(waba_id)


@event(wallet_events.PoolMerged)
def _pool_merged(self: Wallet, into_wallet_id: UUID, actor: str) -> None:
    self.merged_into = into_wallet_id


def check_sender_linked(self: Wallet, waba_id: str) -> None:
    if waba_id not in self.senders:
        raise SenderNotLinked(f"sender {waba_id} is not linked to wallet of {self.company_id}")


# -- settings --------------------------------------------------------------------------------


def change_postpaid_limit(self: Wallet, limit: Decimal, *, actor: str) -> None:
    limit = parse_amount(limit, field="postpaid_limit")
    self._postpaid_limit_changed(postpaid_limit=limit, previous=self.postpaid_limit, actor=actor)


@event(wallet_events.PostpaidLimitChanged)
def _postpaid_limit_changed(
    self: Wallet, postpaid_limit: Decimal, previous: Decimal, actor: str
) -> None:
    self.postpaid_limit = postpaid_limit


def change_tax_rate(self: Wallet, tax_percent: Decimal | None, *, actor: str) -> None:
    """The tax on this wallet's top-ups (e.g. 18 for GST); None: the service's default."""
    if tax_percent is not None:
        tax_percent = check_percent(tax_percent, "tax_percent")
    self._tax_rate_changed(tax_percent=tax_percent, actor=actor)


@event(wallet_events.TaxRateChanged)
def _tax_rate_changed(self: Wallet, tax_percent: Decimal | None, actor: str) -> None:
    self.tax_percent = tax_percent


def change_rate_card(self: Wallet, rate_card: dict[str, Decimal], *, actor: str) -> None:
    self._rate_card_changed(rate_card=check_rate_card(rate_card), actor=actor)


@event(wallet_events.RateCardChanged)
def _rate_card_changed(self: Wallet, rate_card: dict[str, Decimal], actor: str) -> None:
    self.rate_card = dict(rate_card)


def change_included_quota(self: Wallet, quota: Decimal, *, actor: str) -> None:
    quota = parse_amount(quota, field="included_quota")
    self._included_quota_changed(included_quota=quota, actor=actor)


@event(wallet_events.IncludedQuotaChanged)
def _included_quota_changed(self: Wallet, included_quota: Decimal, actor: str) -> None:
    self.included_quota = included_quota


def price_of(self: Wallet, category: str, units: int) -> Decimal:
    """Rate-card price of ``units`` messages of ``category``."""
    try:
        unit_price = self.rate_card[category]
    except KeyError:
        raise UnknownCategory(
            f"category {category!r} is not on the rate card of {self.company_id}"
        ) from None
    return canonical(unit_price * units)


# -- usage that moves no money ---------------------------------------------------------------


def record_failed_usage(
    self: Wallet,
    *,
    usage_reference: str,
    sender_id: str,
    conversation_id: str,
    category: str,
    units: int,
    actor: str,
) -> None:
    """Failed sends are not billable, but they are counted."""
    self.check_sender_linked(sender_id)
    self._failed_usage_recorded(
        reference=usage_reference,
        sender_id=sender_id,
        conversation_id=conversation_id,
        category=category,
        units=units,
        actor=actor,
    )


@event(wallet_events.FailedUsageRecorded)
def _failed_usage_recorded(
    self: Wallet,
    reference: str,
    sender_id: str,
    conversation_id: str,
    category: str,
    units: int,
    actor: str,
) -> None:
    pass


def check_rate_card(rate_card: object) -> dict[str, Decimal]:
    if not isinstance(rate_card, dict):
        raise InvalidArgument("rate_card must be an object mapping category to unit price")
    checked: dict[str, Decimal] = {}
    for category, price in rate_card.items():
        check_key(category, "rate_card category")
        checked[category] = parse_amount(price, field=f"rate_card[{category}]")
    return checked


def upcast_v8_v9(state: dict[str, Any]) -> None:
    """Version 9 records a legacy pool's merge into the shared pool; none before."""
    state["merged_into"] = None
