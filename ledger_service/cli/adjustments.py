"""``ledger adjust``: operator adjustments for scripts, under the same four-eyes rule as the API
(``LEDGER_ADJUSTMENT_APPROVAL_THRESHOLD``; the approver's ``--operator`` must differ from the
requester's). Each command prints the adjustment as JSON; errors print their code, exit 1."""

from __future__ import annotations

import uuid

import typer

from ledger_service.cli.shared import IDEMPOTENCY_KEY, handle_and_print
from ledger_service.domain.adjustment import AdjustedBucket, Direction
from ledger_service.domain.money import parse_amount
from ledger_service.service.adjustments import (
    ApproveAdjustment,
    RejectAdjustment,
    RequestAdjustment,
)

group = typer.Typer(help="Operator adjustments (four-eyes rule).", no_args_is_help=True)

OPERATOR = typer.Option(..., "--operator", help="who acts (the audit trail's actor)")
COMPANY = typer.Option(..., "--company", help="company id")
KEY = IDEMPOTENCY_KEY


@group.command("request")
def request(
    company: str = COMPANY,
    direction: Direction = typer.Option(..., "--direction"),
    amount: str = typer.Option(..., "--amount", help="decimal string, e.g. 12.50"),
    bucket: AdjustedBucket = typer.Option(..., "--bucket"),
    reason: str = typer.Option(..., "--reason"),
    operator: str = OPERATOR,
    idempotency_key: str | None = KEY,
) -> None:
    """Credit or debit a wallet's prepaid or postpaid_used bucket: applied at once up to the
    approval threshold, otherwise pending a second operator's approval."""

    def build(key: str) -> RequestAdjustment:
        return RequestAdjustment(
            company_id=company,
            direction=direction,
            amount=parse_amount(amount),
            bucket=bucket,
            reason=reason,
            actor=operator,
            idempotency_key=key,
        )

    handle_and_print(build, idempotency_key)


@group.command("approve")
def approve(
    adjustment_id: uuid.UUID,
    company: str = COMPANY,
    operator: str = OPERATOR,
    idempotency_key: str | None = KEY,
) -> None:
    """Approve a pending adjustment (not your own): it is applied to the wallet."""
    handle_and_print(
        lambda key: ApproveAdjustment(
            company_id=company, adjustment_id=adjustment_id, actor=operator, idempotency_key=key
        ),
        idempotency_key,
    )


@group.command("reject")
def reject(
    adjustment_id: uuid.UUID,
    company: str = COMPANY,
    reason: str = typer.Option(..., "--reason"),
    operator: str = OPERATOR,
    idempotency_key: str | None = KEY,
) -> None:
    """Reject a pending adjustment (not your own); nothing moves."""
    handle_and_print(
        lambda key: RejectAdjustment(
            company_id=company,
            adjustment_id=adjustment_id,
            reason=reason,
            actor=operator,
            idempotency_key=key,
        ),
        idempotency_key,
    )
