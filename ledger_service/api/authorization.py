"""Pre-send authorization: may this sender send ``units`` messages of ``category`` now?

Answered from the wallet read model alone (one indexed row), so upstream senders can ask before
every send. It is advice, not a reservation: usage that happens anyway is still billed (usage is
a fact), and two senders asking at once can both be told yes for the last funds.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from ledger_service.domain.money import canonical, format_amount
from schemas.api import AuthorizationOut

SENDER_NOT_LINKED = "SENDER_NOT_LINKED"
UNKNOWN_CATEGORY = "UNKNOWN_CATEGORY"
SPENDING_CAP_REACHED = "SPENDING_CAP_REACHED"
INSUFFICIENT_AVAILABLE_BALANCE = "INSUFFICIENT_AVAILABLE_BALANCE"


def blocked_today(blocked_json: str, policies_json: str, now: datetime) -> list[str]:
    """Categories whose daily cap was reached on today's date in the wallet's time zone."""
    blocked: dict[str, str] = json.loads(blocked_json)
    if not blocked:
        return []
    zone = json.loads(policies_json).get("cycle", {}).get("time_zone", "UTC")
    today = now.astimezone(ZoneInfo(zone)).date().isoformat()
    return sorted(category for category, day in blocked.items() if day == today)


def authorize(
    row: Any, *, company_id: str, waba_id: str, category: str, units: int, now: datetime
) -> AuthorizationOut:
    def answer(reason: str | None, message: str, price: Decimal | None = None) -> AuthorizationOut:
        return AuthorizationOut(
            allowed=reason is None,
            reason=reason,
            message=message,
            company_id=company_id,
            waba_id=waba_id,
            category=category,
            units=units,
            price=None if price is None else format_amount(price),
            available=None if row is None else format_amount(row["available"]),
            position=None if row is None else row["position"],
        )

    if row is None:
        return answer(SENDER_NOT_LINKED, f"sender {waba_id} is not linked to {company_id}")
    unit_price = json.loads(row["rate_card"]).get(category)
    if unit_price is None:
        return answer(UNKNOWN_CATEGORY, f"category {category!r} is not on the rate card")
    price = canonical(Decimal(unit_price) * units)
    if category in blocked_today(row["blocked"], row["policies"], now):
        return answer(SPENDING_CAP_REACHED, f"today's spending cap of {category} is reached", price)
    if row["available"] < price:
        return answer(
            INSUFFICIENT_AVAILABLE_BALANCE,
            f"{format_amount(price)} exceeds the available {format_amount(row['available'])}",
            price,
        )
    return answer(None, "allowed", price)
