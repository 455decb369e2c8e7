"""Risk review of money coming in: rules that put a top-up request into ``needs_review``
until an operator releases or rejects it (``TopupRequest.flag``/``release``).

Rules (each off unless configured, see ``Settings``):

* ``amount_above_threshold`` - the request's amount is above the threshold of its currency;
* ``too_many_requests_24h`` - the company asked for more than N top-ups (card ones included:
  each opens its payment order) in the last 24 hours, this one included;
* ``new_company``           - the company's wallet was opened less than D days ago.

The 24-hour count is exact under concurrency: ``TopupVelocity``, one aggregate per company,
counts each request in the same save as the request, so two racing requests collide on its
version and the loser is decided again with the winner counted. It is kept only while that rule
is on (a company's concurrent requests would otherwise contend for nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger_service.domain.ids import topup_velocity_id

AMOUNT_ABOVE_THRESHOLD = "amount_above_threshold"
TOO_MANY_REQUESTS = "too_many_requests_24h"
NEW_COMPANY = "new_company"
RISK_ACTOR = "risk-review"
WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class RiskRules:
    amount_max: Mapping[str, Decimal] = field(default_factory=dict)
    """Currency -> the largest amount that needs no review."""
    requests_per_day_max: int | None = None
    company_age_min_days: int | None = None

    @property
    def counts_requests(self) -> bool:
        return self.requests_per_day_max is not None

    def fired(
        self,
        *,
        amount: Decimal,
        currency: str,
        recent_requests: int,
        company_since: datetime,
        now: datetime,
    ) -> list[str]:
        """The rules a request breaks (``recent_requests``: in the last 24 h, itself too)."""
        fired = []
        threshold = self.amount_max.get(currency)
        if threshold is not None and amount > threshold:
            fired.append(AMOUNT_ABOVE_THRESHOLD)
        limit = self.requests_per_day_max
        if limit is not None and recent_requests > limit:
            fired.append(TOO_MANY_REQUESTS)
        age_min = self.company_age_min_days
        if age_min is not None and now - company_since < timedelta(days=age_min):
            fired.append(NEW_COMPANY)
        return fired


class TopupVelocity(Aggregate):
    """When a company's top-ups were requested, over the last 24 hours."""

    class Started(Aggregate.Created):
        company_id: str

    class Counted(Aggregate.Event):
        at: datetime

    @staticmethod
    def create_id(company_id: str) -> UUID:
        return topup_velocity_id(company_id)

    @event(Started)
    def __init__(self, company_id: str) -> None:
        self.company_id = company_id
        self.recent: list[datetime] = []

    def count(self, now: datetime) -> int:
        """Count a request made at ``now``; how many the last 24 hours hold, it included."""
        self._counted(at=now)
        return len(self.recent)

    @event(Counted)
    def _counted(self, at: datetime) -> None:
        self.recent = [t for t in self.recent if t > at - WINDOW] + [at]
