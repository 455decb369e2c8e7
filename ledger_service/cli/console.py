"""``ledger login-link``: a one-time URL that signs a browser into the console."""

from __future__ import annotations

import re

import typer

from ledger_service.cli.shared import load_settings
from ledger_service.console.sign_in import ConsoleSigner

_DURATION = re.compile(r"(\d+)([smhd]?)")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
TTL_S_MAX = 86400


def parse_duration(text: str) -> int:
    """``900``, ``900s``, ``15m``, ``2h``, ``1d`` as seconds (1 s to 1 day)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise typer.BadParameter(f"{text!r} is not a duration such as 15m, 2h or 900s")
    seconds = int(match.group(1)) * _SECONDS[match.group(2)]
    if not 1 <= seconds <= TTL_S_MAX:
        raise typer.BadParameter("a login link lives between 1 second and 1 day")
    return seconds


def login_link(
    company: str = typer.Option(None, "--company", help="the tenant's company (billing.view)"),
    scopes: str = typer.Option("billing.view", "--scopes", help="billing.view or billing.manage"),
    subject: str = typer.Option(None, "--sub", help="who signs in; default: <company>-user"),
    ttl: str = typer.Option(None, "--ttl", help="lifetime, e.g. 15m; default 15m"),
) -> None:
    """Print a one-time URL that signs a browser into the console (used once, then refused)."""
    settings = load_settings()
    scope_list = tuple(s for s in scopes.replace(",", " ").split() if s)
    ttl_s = settings.console_login_link_ttl_s if ttl is None else parse_duration(ttl)
    signer = ConsoleSigner(
        settings.console_signing_secret, session_ttl_s=settings.console_session_ttl_s
    )
    try:
        token = signer.mint_link(
            subject=subject or f"{company or 'operator'}-user",
            company_id=company,
            scopes=scope_list,
            ttl_s=ttl_s,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"{settings.public_url}/console/sign-in?token={token}")
