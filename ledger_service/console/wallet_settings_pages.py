"""Operators change a wallet from its page: link and unlink senders, set the postpaid limit,
the included quota and the rate card, and replace its policies. Each form runs the same command
as the API's ``PATCH /v1/wallets/{id}`` or sender routes, with the same validation."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from ledger_service.api.errors import validation_error
from ledger_service.console.web import (
    Company,
    OperatorViewer,
    PageError,
    checked_form,
    form_key,
    parsed,
    redirect,
    run,
)
from ledger_service.domain.money import format_amount
from ledger_service.service.wallets import UnlinkSender
from projections.handlers.policies import read_policies
from schemas.api import KEY_PATTERN
from schemas.requests import ConfigureWalletIn, SenderIn

router = APIRouter()
POLICY_SECTIONS = ("alerts", "auto_topup", "spending_caps", "cycle", "transfers")
RATE_CARD_LINES_MAX = 200


def rate_card_text(rate_card_json: str) -> str:
    """The rate card as the form shows it: one ``category = unit price`` per line."""
    card: dict[str, str] = json.loads(rate_card_json)
    return "\n".join(
        f"{category} = {format_amount(Decimal(price))}" for category, price in sorted(card.items())
    )


def parse_rate_card(text: str) -> dict[str, str]:
    card: dict[str, str] = {}
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > RATE_CARD_LINES_MAX:
        raise PageError(422, "VALIDATION_ERROR", f"at most {RATE_CARD_LINES_MAX} categories")
    for number, line in enumerate(lines, 1):
        category, equals, price = (part.strip() for part in line.partition("="))
        if not equals or not category or not price:
            raise PageError(
                422, "VALIDATION_ERROR", f"rate card line {number}: write 'category = price'"
            )
        card[category] = price
    return card


def policies_text(policies_json: str) -> str:
    policies = read_policies(policies_json)
    shown = {section: policies[section] for section in POLICY_SECTIONS if section in policies}
    return json.dumps(shown, indent=2, sort_keys=True)


def _done(company_id: str, result: Any) -> RedirectResponse:
    return redirect(f"/companies/{company_id}", min_position=result.get("position"), notice="saved")


@router.post("/companies/{company_id}/senders")
async def link_sender(
    request: Request, company_id: Company, session: OperatorViewer
) -> RedirectResponse:
    fields = await checked_form(request, session)
    body = parsed(SenderIn, waba_id=fields.get("waba_id", "").strip())
    command = body.to_command(company_id, actor=session.subject, idempotency_key=form_key(fields))
    return _done(company_id, await run(request, command))


@router.post("/companies/{company_id}/senders/{waba_id}/unlink")
async def unlink_sender(
    request: Request,
    company_id: Company,
    waba_id: Annotated[str, Path(pattern=KEY_PATTERN)],
    session: OperatorViewer,
) -> RedirectResponse:
    fields = await checked_form(request, session)
    command = UnlinkSender(
        company_id=company_id, waba_id=waba_id, actor=session.subject,
        idempotency_key=form_key(fields),
    )  # fmt: skip
    return _done(company_id, await run(request, command))


@router.post("/companies/{company_id}/settings")
async def configure_limits(
    request: Request, company_id: Company, session: OperatorViewer
) -> RedirectResponse:
    """The postpaid limit, included quota and rate card (a section left empty is kept)."""
    fields = await checked_form(request, session)
    values: dict[str, Any] = {}
    for name in ("postpaid_limit", "included_quota"):
        if fields.get(name, "").strip():
            values[name] = fields[name].strip()
    if fields.get("rate_card", "").strip():
        values["rate_card"] = parse_rate_card(fields["rate_card"])
    body = parsed(ConfigureWalletIn, **values)
    command = body.to_command(company_id, actor=session.subject, idempotency_key=form_key(fields))
    return _done(company_id, await run(request, command))


@router.post("/companies/{company_id}/policies")
async def configure_policies(
    request: Request, company_id: Company, session: OperatorViewer
) -> RedirectResponse:
    """Policy sections as JSON, validated by the API's own request model."""
    fields = await checked_form(request, session)
    try:
        body = ConfigureWalletIn.model_validate_json(fields.get("policies", ""))
    except ValidationError as exc:
        raise PageError(*validation_error(list(exc.errors()))) from None
    unknown = body.model_fields_set - set(POLICY_SECTIONS)
    if unknown:
        raise PageError(
            422, "VALIDATION_ERROR", f"only policy sections here, not {sorted(unknown)}"
        )
    command = body.to_command(company_id, actor=session.subject, idempotency_key=form_key(fields))
    return _done(company_id, await run(request, command))
