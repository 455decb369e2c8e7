"""``ledger grant``: credit grants for scripts, as the API's ``POST /v1/wallets/{id}/grants``
and ``DELETE .../grants/{grant_id}`` do. Each command prints the grant as JSON; errors print
their code and exit 1."""

from __future__ import annotations

import uuid
from datetime import datetime

import typer

from ledger_service.cli.shared import IDEMPOTENCY_KEY, aware_or_none, handle_and_print
from ledger_service.domain.grants import PRIORITY_DEFAULT
from ledger_service.domain.money import parse_amount
from ledger_service.service.grants import IssueGrant, VoidGrant

group = typer.Typer(help="Credit grants: promotional credit that may expire.", no_args_is_help=True)

OPERATOR = typer.Option(..., "--operator", help="who acts (the audit trail's actor)")
COMPANY = typer.Option(..., "--company", help="company id")


@group.command("issue")
def issue(
    company: str = COMPANY,
    amount: str = typer.Option(..., "--amount", help="decimal string, e.g. 25.00"),
    reason: str = typer.Option(..., "--reason"),
    reference: str = typer.Option(..., "--reference", help="your id of it: one grant each"),
    expires_at: datetime | None = typer.Option(
        None, "--expires-at", help="when the remainder expires (UTC unless zoned); default never"
    ),
    priority: int = typer.Option(PRIORITY_DEFAULT, "--priority", help="lower drains first"),
    operator: str = OPERATOR,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> None:
    """Give a wallet credit that usage drains after the included quota."""

    def build(key: str) -> IssueGrant:
        return IssueGrant(
            company_id=company,
            amount=parse_amount(amount),
            reason=reason,
            reference=reference,
            expires_at=aware_or_none(expires_at),
            priority=priority,
            actor=operator,
            idempotency_key=key,
        )

    handle_and_print(build, idempotency_key)


@group.command("void")
def void(
    company: str = COMPANY,
    grant_id: uuid.UUID = typer.Option(..., "--grant", help="the grant's id"),
    operator: str = OPERATOR,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> None:
    """Void an active grant now; its remainder is taken back."""

    def build(key: str) -> VoidGrant:
        return VoidGrant(company_id=company, grant_id=grant_id, actor=operator, idempotency_key=key)

    handle_and_print(build, idempotency_key)
