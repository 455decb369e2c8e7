"""``ledger token``: bearer tokens for development."""

from __future__ import annotations

import typer

from ledger_service.api.auth import mint_token
from ledger_service.bootstrap import jwt_keys
from ledger_service.config import Settings


def token(
    company: str = typer.Option(None, "--company", help="company_id claim (tenants)"),
    scopes: str = typer.Option("billing.view", "--scopes", help="comma/space-separated"),
    subject: str = typer.Option("dev", "--sub", help="sub claim: who is calling"),
    ttl_s: int = typer.Option(None, "--ttl-s", help="lifetime; default LEDGER_JWT_TTL_S"),
) -> None:
    """Mint a bearer token (HS256, signed with LEDGER_JWT_SECRET, with its LEDGER_JWT_KEY_ID,
    issuer and audience when set) for development."""
    settings = Settings()
    scope_list = [s for s in scopes.replace(",", " ").split() if s]
    typer.echo(
        mint_token(
            jwt_keys(settings),
            subject=subject,
            company_id=company,
            scopes=scope_list,
            ttl_s=ttl_s or settings.jwt_ttl_s,
        )
    )
