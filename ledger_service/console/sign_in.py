"""Login links, session cookies and CSRF tokens, signed with ``itsdangerous``.

* A **login link** carries a random link id, the subject, the company (tenants) and the scopes,
  and its own expiry. Its signature and expiry are checked here; that it is used only once is
  the ledger's job (``service.console.RedeemLoginLink``), so it holds across API replicas.
* The **session cookie** carries the session id and the same principal, signed and time-stamped;
  it is refused once older than the session lifetime. Signing out deletes it.
* A **CSRF token** is the session id signed under another salt: a form posted from another site
  cannot know it, and a token of one session is worthless in another.

Each kind has its own salt, so one can never be passed off as another (nor as an API token).
This is the seam for OpenID Connect later: a provider's callback would build the same
``Session`` that a login link builds.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from ledger_service.api.auth import SCOPE_MANAGE, SCOPE_VIEW, Principal
from ledger_service.domain.errors import InvalidArgument
from ledger_service.domain.ids import check_key

CONSOLE_SCOPES = frozenset({SCOPE_VIEW, SCOPE_MANAGE})
"""What a console user may hold; ``billing.usage`` is for senders' machines, not people."""


class LinkRefused(Exception):
    """A login link that is forged, malformed or expired (its message says which)."""


@dataclass(frozen=True, slots=True)
class LoginLink:
    link_id: str
    subject: str
    company_id: str | None
    scopes: tuple[str, ...]
    expires_at: float


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    subject: str
    company_id: str | None
    scopes: tuple[str, ...]

    @property
    def principal(self) -> Principal:
        return Principal(self.subject, self.company_id, frozenset(self.scopes))


def check_principal(subject: str, company_id: str | None, scopes: tuple[str, ...]) -> None:
    """The rules the API applies to tokens, for a console user: raises ``ValueError``."""
    if not subject or len(subject) > 200:
        raise ValueError("the subject must be 1-200 characters")
    unknown = set(scopes) - CONSOLE_SCOPES
    if unknown or not scopes:
        raise ValueError(f"console scopes are {sorted(CONSOLE_SCOPES)}, got {sorted(scopes)}")
    if company_id is not None:
        try:
            check_key(company_id, "company_id")
        except InvalidArgument as exc:
            raise ValueError(exc.message) from None
    elif SCOPE_MANAGE not in scopes:
        raise ValueError("a billing.view sign-in needs --company")


class ConsoleSigner:
    def __init__(self, secret: str, *, session_ttl_s: int) -> None:
        self.session_ttl_s = session_ttl_s
        self._links = URLSafeSerializer(secret, salt="ledger-console-login-link")
        self._sessions = URLSafeTimedSerializer(secret, salt="ledger-console-session")
        self._csrf = URLSafeSerializer(secret, salt="ledger-console-csrf")

    def mint_link(
        self, *, subject: str, company_id: str | None, scopes: tuple[str, ...], ttl_s: int
    ) -> str:
        check_principal(subject, company_id, scopes)
        payload = {
            "id": secrets.token_urlsafe(16),
            "sub": subject,
            "company_id": company_id,
            "scopes": list(scopes),
            "exp": time.time() + ttl_s,
        }
        return str(self._links.dumps(payload))

    def read_link(self, token: str, now: float | None = None) -> LoginLink:
        try:
            payload: Any = self._links.loads(token)
        except BadSignature:
            raise LinkRefused("this login link is not valid (altered or incomplete)") from None
        link = LoginLink(
            link_id=str(payload["id"]),
            subject=str(payload["sub"]),
            company_id=payload["company_id"],
            scopes=tuple(payload["scopes"]),
            expires_at=float(payload["exp"]),
        )
        if link.expires_at < (time.time() if now is None else now):
            raise LinkRefused("this login link has expired; ask for a new one")
        return link

    def session_cookie(self, session: Session) -> str:
        payload = [session.session_id, session.subject, session.company_id, list(session.scopes)]
        return str(self._sessions.dumps(payload))

    def read_session(self, cookie: str | None) -> Session | None:
        """The signed-in session, or None (no cookie, a forged one, or one too old)."""
        if not cookie:
            return None
        try:
            payload: Any = self._sessions.loads(cookie, max_age=self.session_ttl_s)
        except (BadSignature, SignatureExpired):
            return None
        session_id, subject, company_id, scopes = payload
        return Session(str(session_id), str(subject), company_id, tuple(scopes))

    def csrf_token(self, session: Session) -> str:
        return str(self._csrf.dumps(session.session_id))

    def csrf_valid(self, session: Session, token: str | None) -> bool:
        if not token:
            return False
        try:
            return bool(self._csrf.loads(token) == session.session_id)
        except BadSignature:
            return False
