"""Publishes alerts and top-up lifecycle steps to Kafka topic ``ledger.notifications.v1`` as
CloudEvents: ``ledger.alert.<alert>`` and ``ledger.topup.invoiced | completed | rejected |
cancelled`` (with the invoice number and amounts, so a mailer can send the invoice).

At least once, with stable ids: a CloudEvent's ``id`` is ``<aggregate id>:<event version>``, the
identity of the event in the store, so a re-sent notification (after a crash between
publishing and saving the position) carries the same id and consumers deduplicate on it. The
relay follows the log from its own position: a broker outage delays notifications, never a
deduction, and replaying read models re-sends nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from uuid import UUID

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from eventsourcing.utils import get_topic

from ledger_service.domain.money import format_amount
from ledger_service.domain.policies import BALANCE_ALERTS, BALANCE_RECOVERED
from ledger_service.domain.topup import TopupRequest
from ledger_service.domain.wallet import Wallet
from ledger_service.follow import DATABASE_UNAVAILABLE, FollowLoop
from ledger_service.reactions.follower import Batch, LogFollower

log = structlog.get_logger(__name__)

RELAY_NAME = "notifications"
SOURCE = "//ledger/wallets"
TYPE_PREFIX = "ledger.alert."
TOPUP_SOURCE = "//ledger/topups"
TOPUP_STEPS: dict[type[Any], str] = {
    TopupRequest.Invoiced: "invoiced",
    TopupRequest.Completed: "completed",
    TopupRequest.Rejected: "rejected",
    TopupRequest.Cancelled: "cancelled",
}
TOPICS = (
    f"{get_topic(Wallet)}.AlertRaised",
    f"{get_topic(Wallet)}.TriggersRearmed",
    *(get_topic(step) for step in TOPUP_STEPS),
)
TopupAsOf = Callable[[UUID, int], TopupRequest]
"""The top-up as the event at a version left it (``LedgerApplication.topup_as_of``)."""
# A broker outage is as expected as a database one: both are waited out with back-off.
RECOVERABLE = (*DATABASE_UNAVAILABLE, KafkaError, OSError)


def cloudevent_of(position: int, event: Any) -> tuple[str, dict[str, Any]] | None:
    """(key, CloudEvent) of one alert event; None for an event that notifies nobody."""
    data: dict[str, Any] = {
        "company_id": event.company_id,
        "wallet_id": str(event.originator_id),
        "balance": format_amount(event.balance),
        "available": format_amount(event.available),
        "position": position,
    }
    if isinstance(event, Wallet.AlertRaised):
        alert = event.alert
        data |= {
            "threshold": _amount(event.threshold),
            "measured": _amount(event.measured),
            "category": event.category,
            "day": event.day,
        }
    elif isinstance(event, Wallet.TriggersRearmed):
        recovered = sorted(t for t in event.triggers if t in BALANCE_ALERTS)
        if not recovered:
            return None
        alert = BALANCE_RECOVERED
        data["recovered"] = recovered
    else:
        # The relay follows only TOPICS: any other event here is a bug in the wiring.
        raise TypeError(f"not an alert event: {type(event).__qualname__}")
    data["alert"] = alert
    return event.company_id, {
        "specversion": "1.0",
        "id": f"{event.originator_id}:{event.originator_version}",
        "source": SOURCE,
        "type": TYPE_PREFIX + alert,
        "time": event.timestamp.isoformat().replace("+00:00", "Z"),
        "subject": event.company_id,
        "datacontenttype": "application/json",
        "data": data,
    }


def topup_cloudevent(position: int, event: Any, topup: TopupRequest) -> tuple[str, dict[str, Any]]:
    """(key, CloudEvent) of a top-up's step, from the top-up as that step left it."""
    step = TOPUP_STEPS[type(event)]
    lines = topup.lines
    data: dict[str, Any] = {
        "company_id": topup.company_id,
        "topup_id": str(topup.id),
        "status": topup.status.value,
        "invoice_number": topup.invoice_number,
        "amount": format_amount(topup.amount),
        "tax": format_amount(lines.tax),
        "fee": format_amount(lines.fee),
        "total": format_amount(topup.total),
        "currency": topup.currency,
        "actor": event.actor,
        "position": position,
    }
    if topup.credits is not None:  # a wallet kept in a unit of account: what the money buys
        data["credits"] = format_amount(topup.credits)
        data["credit_unit"] = topup.credit_unit
        data["credit_rate"] = _amount(topup.credit_rate)
    if step == "completed":
        data["payment_reference"] = topup.payment_reference
    if step in ("rejected", "cancelled"):
        data["reason"] = event.reason
    return topup.company_id, {
        "specversion": "1.0",
        "id": f"{event.originator_id}:{event.originator_version}",
        "source": TOPUP_SOURCE,
        "type": f"ledger.topup.{step}",
        "time": event.timestamp.isoformat().replace("+00:00", "Z"),
        "subject": topup.company_id,
        "datacontenttype": "application/json",
        "data": data,
    }


def _amount(value: Any) -> str | None:
    return None if value is None else format_amount(value)


class NotificationRelay:
    def __init__(
        self,
        follower: LogFollower,
        *,
        bootstrap: str,
        topic: str,
        loop: FollowLoop | None = None,
        topup_as_of: TopupAsOf | None = None,
    ) -> None:
        self.follower = follower
        self.topup_as_of = topup_as_of
        self.bootstrap = bootstrap
        self.topic = topic
        self.loop = loop or FollowLoop(RELAY_NAME, recoverable=RECOVERABLE)
        self.published = 0

    async def run(self, stop: asyncio.Event) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            linger_ms=5,
            enable_idempotence=False,  # the embedded Tansu broker refuses idempotent producers
        )
        started = False

        async def step() -> bool:
            nonlocal started
            if not started:
                await producer.start()
                started = True
            return await self.relay_once(producer)

        try:
            await self.loop.run(step, stop)
        finally:
            if started:
                await producer.stop()

    async def relay_once(self, producer: AIOKafkaProducer) -> bool:
        """Publish the next batch and save the position after the broker acknowledged all of
        it; False when there was nothing new."""
        batch: Batch | None = await asyncio.to_thread(self.follower.next_batch)
        if batch is None:
            return False
        sent = []
        for position, event in batch.events:
            message = await self._message(position, event)
            if message is not None:
                key, value = message
                sent.append(
                    await producer.send(self.topic, json.dumps(value).encode(), key=key.encode())
                )
        await asyncio.gather(*sent)
        await asyncio.to_thread(self.follower.done, batch)
        self.published += len(sent)
        if sent:
            log.info("notifications_published", count=len(sent), through=batch.through)
        return True

    async def _message(self, position: int, event: Any) -> tuple[str, dict[str, Any]] | None:
        if type(event) not in TOPUP_STEPS:
            return cloudevent_of(position, event)
        if self.topup_as_of is None:
            return None  # a relay built without the ledger publishes alerts only
        topup = await asyncio.to_thread(
            self.topup_as_of, event.originator_id, event.originator_version
        )
        return topup_cloudevent(position, event, topup)
