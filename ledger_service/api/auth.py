"""Bearer JWT authentication (HS256) and the three scopes of the API.

Tokens carry ``sub`` (who), ``company_id`` (whose data a tenant may see) and ``scopes``
(a list, or a space-separated string as in OAuth). ``billing.view`` lets a tenant read and
request top-ups for its own company only; ``billing.manage`` is the operator scope and reaches
every company. ``billing.usage`` is the scope of the upstream messaging services: they place and
release holds, for every company or (with ``company_id``) for one. ``billing.transfer`` lets a
tenant send transfers (gifts) from its own company's wallet. A tenant naming another
company gets 404 as if it did not exist: a 403 would tell
it that the company is a customer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from ledger_service.api.errors import ApiError

ALGORITHM = "HS256"
SCOPE_VIEW = "billing.view"
SCOPE_MANAGE = "billing.manage"
SCOPE_USAGE = "billing.usage"
SCOPE_TRANSFER = "billing.transfer"
LEEWAY_S = 30


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    company_id: str | None
    scopes: frozenset[str]

    @property
    def is_operator(self) -> bool:
        return SCOPE_MANAGE in self.scopes

    def can_see(self, company_id: str) -> bool:
        return self.is_operator or (SCOPE_VIEW in self.scopes and self.company_id == company_id)

    def can_spend(self, company_id: str) -> bool:
        """Spend from a wallet (place and release holds, consume features): operators, and
        upstream services (``billing.usage``) for any company, or their own when bound to one."""
        return self.is_operator or (
            SCOPE_USAGE in self.scopes and self.company_id in (None, company_id)
        )

    def can_transfer_from(self, company_id: str) -> bool:
        """Send a transfer from ``company_id``'s wallet: operators, and that company's
        tenants holding ``billing.transfer``."""
        return self.is_operator or (SCOPE_TRANSFER in self.scopes and self.company_id == company_id)


@dataclass(frozen=True, slots=True)
class JwtKeys:
    """How bearer tokens are signed and checked.

    ``secret`` signs (and checks) tokens; its ``key_id``, when set, goes in their ``kid``
    header. ``previous`` maps the key ids of earlier secrets to them: still accepted, never used
    to sign, so a secret can be rotated with two keys valid at once (a token names its key by
    ``kid``; one without is tried against each). ``issuer`` and ``audience``, when set, are
    required in every token (``iss``, ``aud``) and checked."""

    secret: str
    key_id: str | None = None
    previous: Mapping[str, str] = field(default_factory=dict)
    issuer: str | None = None
    audience: str | None = None

    def candidates(self, kid: object) -> list[str]:
        """The secrets a token with this ``kid`` header may be signed with."""
        if kid is None:
            return [self.secret, *self.previous.values()]
        if kid == self.key_id:
            return [self.secret]
        if isinstance(kid, str) and kid in self.previous:
            return [self.previous[kid]]
        raise _unauthenticated(f"invalid token: unknown key id {str(kid)[:64]!r}")


def mint_token(
    secret: str | JwtKeys,
    *,
    subject: str,
    company_id: str | None,
    scopes: list[str],
    ttl_s: int,
) -> str:
    keys = secret if isinstance(secret, JwtKeys) else JwtKeys(secret)
    now = int(time.time())
    claims: dict[str, Any] = {"sub": subject, "scopes": scopes, "iat": now, "exp": now + ttl_s}
    if company_id is not None:
        claims["company_id"] = company_id
    if keys.issuer is not None:
        claims["iss"] = keys.issuer
    if keys.audience is not None:
        claims["aud"] = keys.audience
    headers = None if keys.key_id is None else {"kid": keys.key_id}
    return jwt.encode(claims, keys.secret, algorithm=ALGORITHM, headers=headers)


class Authenticator:
    """Verifies bearer tokens, remembering the ones already verified until they expire.

    Verifying a token (HMAC, base64, JSON) costs ~75 us, a large share of a balance read; a
    client sends the same token many times. The cache is bounded and simply cleared when full.
    ``keys`` says which secrets, issuer and audience a token must match (``JwtKeys``).
    """

    cache_size_max = 10_000

    def __init__(self, keys: JwtKeys | str) -> None:
        self.keys = keys if isinstance(keys, JwtKeys) else JwtKeys(keys)
        self._verified: dict[str, tuple[Principal, float]] = {}

    def __call__(self, authorization: str | None) -> Principal:
        if authorization is not None:
            cached = self._verified.get(authorization)
            if cached is not None and cached[1] > time.time():
                return cached[0]
        principal, expires_at = verify(authorization, self.keys)
        if len(self._verified) >= self.cache_size_max:
            self._verified.clear()
        assert authorization is not None
        self._verified[authorization] = (principal, expires_at)
        return principal


def _unauthenticated(message: str) -> ApiError:
    return ApiError(401, "UNAUTHENTICATED", message, {"WWW-Authenticate": "Bearer"})


def authenticate(authorization: str | None, secret: str | JwtKeys) -> Principal:
    return verify(authorization, secret)[0]


def verify(authorization: str | None, keys: str | JwtKeys) -> tuple[Principal, float]:
    """The caller and the time its token expires; ``ApiError`` 401 when it is not valid:
    malformed, signed by no key of ``keys`` (its ``kid`` names one, or each is tried),
    expired (``exp`` required), not valid yet (``nbf``), or of another issuer or audience."""
    keys = keys if isinstance(keys, JwtKeys) else JwtKeys(keys)
    if not authorization:
        raise _unauthenticated("a bearer token is required")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthenticated("the Authorization header must be 'Bearer <token>'")
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.InvalidTokenError as exc:
        raise _unauthenticated(f"invalid token: {exc}") from None
    required = [
        "sub",
        "exp",
        *(["iss"] if keys.issuer else []),
        *(["aud"] if keys.audience else []),
    ]
    for key in keys.candidates(kid):
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                options={"require": required},
                issuer=keys.issuer,
                audience=keys.audience,
                leeway=LEEWAY_S,
            )
        except jwt.InvalidSignatureError:
            continue  # another key's, perhaps
        except jwt.ExpiredSignatureError:
            raise _unauthenticated("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise _unauthenticated("the token is not valid yet (nbf)") from None
        except jwt.InvalidTokenError as exc:
            raise _unauthenticated(f"invalid token: {exc}") from None
        return _principal_of(claims), float(claims["exp"])
    raise _unauthenticated("invalid token: Signature verification failed")


def _principal_of(claims: dict[str, Any]) -> Principal:
    scopes = claims.get("scopes", [])
    if isinstance(scopes, str):
        scopes = scopes.split()
    company = claims.get("company_id")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise _unauthenticated("invalid token: scopes must be a list of strings")
    if company is not None and not isinstance(company, str):
        raise _unauthenticated("invalid token: company_id must be a string")
    principal = Principal(str(claims["sub"]), company, frozenset(scopes))
    if not principal.is_operator and SCOPE_VIEW in principal.scopes and company is None:
        raise _unauthenticated("invalid token: a billing.view token needs company_id")
    return principal


def require_view(principal: Principal) -> None:
    if not (principal.is_operator or SCOPE_VIEW in principal.scopes):
        raise ApiError(403, "INSUFFICIENT_SCOPE", f"needs scope {SCOPE_VIEW} or {SCOPE_MANAGE}")


def require_usage(principal: Principal) -> None:
    if not (principal.is_operator or SCOPE_USAGE in principal.scopes):
        raise ApiError(403, "INSUFFICIENT_SCOPE", f"needs scope {SCOPE_USAGE} or {SCOPE_MANAGE}")


def require_transfer(principal: Principal) -> None:
    if not (principal.is_operator or SCOPE_TRANSFER in principal.scopes):
        raise ApiError(403, "INSUFFICIENT_SCOPE", f"needs scope {SCOPE_TRANSFER} or {SCOPE_MANAGE}")


def require_manage(principal: Principal) -> None:
    if not principal.is_operator:
        raise ApiError(403, "INSUFFICIENT_SCOPE", f"needs scope {SCOPE_MANAGE}")
