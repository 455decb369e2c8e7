"""Signing in with a one-time login link, signing out, and the console's front door."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from ledger_service.console.sign_in import LinkRefused, LoginLink, Session
from ledger_service.console.web import (
    SESSION_COOKIE,
    NotSignedIn,
    PageError,
    Viewer,
    checked_form,
    console_of,
    redirect,
    render,
    run,
    signed_in,
)
from ledger_service.service.console import RedeemLoginLink

router = APIRouter()
Token = Annotated[str, Query(min_length=1, max_length=2000)]


def home_of(session: Session) -> str:
    if session.principal.is_operator:
        return "/ops/topups"
    return f"/companies/{session.company_id}"


@router.get("/", response_model=None)
async def front_door(request: Request) -> RedirectResponse | HTMLResponse:
    try:
        session = await signed_in(request)
    except NotSignedIn:
        return render(request, "signed_out.html", None)
    return redirect(home_of(session))


def _link(request: Request, token: str) -> LoginLink:
    try:
        return console_of(request).signer.read_link(token)
    except LinkRefused as exc:
        raise PageError(401, "LOGIN_LINK_INVALID", str(exc)) from None


@router.get("/sign-in")
async def sign_in_page(request: Request, token: Token) -> HTMLResponse:
    """A button rather than an instant sign-in: mail scanners that open links must not spend
    a one-time link."""
    return render(request, "sign_in.html", None, link=_link(request, token), token=token)


@router.post("/sign-in")
async def sign_in(
    request: Request, token: Annotated[str, Form(min_length=1, max_length=2000)]
) -> RedirectResponse:
    if request.headers.get("sec-fetch-site") not in (None, "same-origin", "none"):
        # Login CSRF: another site posting its own link would sign this browser into it.
        raise PageError(403, "CROSS_SITE_SIGN_IN", "open the login link itself to sign in")
    link = _link(request, token)
    session = Session(secrets.token_urlsafe(18), link.subject, link.company_id, link.scopes)
    await run(
        request,
        RedeemLoginLink(
            link_id=link.link_id,
            company_id=link.company_id,
            scopes=link.scopes,
            actor=link.subject,
            idempotency_key=session.session_id,
        ),
    )
    console = console_of(request)
    response = redirect(home_of(session))
    response.set_cookie(
        SESSION_COOKIE,
        console.signer.session_cookie(session),
        max_age=console.signer.session_ttl_s,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=console.cookie_secure,
    )
    return response


@router.post("/sign-out")
async def sign_out(request: Request, session: Viewer) -> RedirectResponse:
    await checked_form(request, session)
    response = redirect("/")
    response.delete_cookie(SESSION_COOKIE, path="/console", httponly=True, samesite="strict")
    return response
