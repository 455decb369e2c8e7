"""The usage-event contract: CloudEvents 1.0, structured mode, JSON.

Topic ``ledger.usage.v1``, message key = company id. One event per message sent. This module is
the contract's single definition; ``usage_event.v1.schema.json`` beside it is generated from it
(``python -m schemas.usage_event > schemas/usage_event.v1.schema.json``) and a test keeps the two
in sync. Change it only compatibly; a breaking change is a new topic version.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
)

from ledger_service.domain.money import UNSIGNED_AMOUNT_PATTERN

USAGE_EVENT_TYPE = "message.sent"
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"

Key = Annotated[StrictStr, Field(pattern=KEY_PATTERN)]
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _rfc3339(value: object) -> object:
    """The contract's ``format: date-time``: pydantic alone would take a Unix time (a number
    or a numeric string) or a bare date as a time, which the contract forbids."""
    if value is None or isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("time must be an RFC 3339 date-time with its offset")
    return value


class UsageEventData(BaseModel):
    """What was sent, by whom, for which company."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    company_id: Key
    waba_id: Key = Field(description="The sender account (WhatsApp Business Account id).")
    conversation_id: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    category: Key = Field(description="Message category, priced by the wallet's rate card.")
    status: Literal["sent", "delivered", "read", "failed"] = Field(
        description="'failed' is not billable: counted, never debited."
    )
    units: Annotated[StrictInt, Field(ge=1, le=10_000)] = 1
    unit_price: Annotated[StrictStr, Field(pattern=UNSIGNED_AMOUNT_PATTERN)] | None = Field(
        default=None,
        description="Decimal string; when absent the wallet's rate card prices the event.",
    )
    currency: Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$")] | None = None


class UsageEvent(BaseModel):
    """A CloudEvents 1.0 envelope around ``UsageEventData``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: Annotated[StrictStr, Field(min_length=1, max_length=256)]
    source: Annotated[StrictStr, Field(min_length=1, max_length=256)]
    type: Literal["message.sent"]
    time: Annotated[AwareDatetime, BeforeValidator(_rfc3339)] | None = Field(
        default=None, description="RFC 3339, with its offset (a number or a bare date is refused)"
    )
    subject: StrictStr | None = None
    datacontenttype: Literal["application/json"] | None = None
    data: UsageEventData


def usage_event_json_schema() -> str:
    schema = UsageEvent.model_json_schema()
    schema["$id"] = "https://schemas.ledger.local/usage-event/v1"
    schema["title"] = "Usage event (CloudEvents 1.0, ledger.usage.v1)"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(usage_event_json_schema(), end="")
