"""``ledger refund``: give back what one usage event was charged, as the API's
``POST /v1/wallets/{id}/refunds`` does (once per usage event). Prints the refund as JSON; errors
print their code and exit 1."""

from __future__ import annotations

import typer

from ledger_service.cli.shared import IDEMPOTENCY_KEY, handle_and_print
from ledger_service.service.refunds import RefundUsage


def refund(
    company: str = typer.Option(..., "--company", help="company id"),
    source: str = typer.Option(..., "--source", help="the usage event's CloudEvents source"),
    usage_id: str = typer.Option(..., "--id", help="the usage event's CloudEvents id"),
    reason: str = typer.Option(..., "--reason"),
    operator: str = typer.Option(..., "--operator", help="who acts (the audit trail's actor)"),
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> None:
    """Refund one billed usage event into the buckets it was drawn from."""

    def build(key: str) -> RefundUsage:
        return RefundUsage(
            company_id=company,
            usage_source=source,
            usage_id=usage_id,
            reason=reason,
            actor=operator,
            idempotency_key=key,
        )

    handle_and_print(build, idempotency_key)
