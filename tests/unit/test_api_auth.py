"""Bearer tokens: verification, the verified-token cache, scopes, and `ledger token`."""

from __future__ import annotations

import time

import jwt
import pytest
from typer.testing import CliRunner

from ledger_service.api import auth
from ledger_service.api.auth import Authenticator, JwtKeys, Principal, mint_token
from ledger_service.api.errors import ApiError
from ledger_service.cli import cli
from ledger_service.config import DEVELOPMENT_JWT_SECRET

SECRET = "unit-test-secret-of-at-least-32-chars"


def bearer(claims: dict[str, object], secret: str = SECRET) -> str:
    return "Bearer " + jwt.encode(claims, secret, algorithm="HS256")


def test_a_tenant_sees_only_its_company_and_an_operator_every_company() -> None:
    tenant = Principal("u", "acme", frozenset({"billing.view"}))
    operator = Principal("o", None, frozenset({"billing.manage"}))
    assert tenant.can_see("acme")
    assert not tenant.can_see("globex")
    assert operator.can_see("globex")
    assert not Principal("x", "acme", frozenset({"other"})).can_see("acme")


def test_scopes_may_be_a_space_separated_string() -> None:
    exp = int(time.time()) + 60
    principal = Authenticator(SECRET)(
        bearer({"sub": "u", "company_id": "acme", "scopes": "billing.view x", "exp": exp})
    )
    assert principal.scopes == {"billing.view", "x"}


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "u", "company_id": "acme", "scopes": ["billing.view"]},  # no exp
        {"company_id": "acme", "scopes": ["billing.view"], "exp": 2**40},  # no sub
        {"sub": "u", "scopes": ["billing.view"], "exp": 2**40},  # a tenant with no company
        {"sub": "u", "company_id": 7, "scopes": ["billing.view"], "exp": 2**40},
        {"sub": "u", "company_id": "acme", "scopes": [1], "exp": 2**40},
        {"sub": "u", "company_id": "acme", "scopes": ["billing.view"], "exp": 1},  # expired
    ],
)
def test_invalid_claims_are_401(claims: dict[str, object]) -> None:
    with pytest.raises(ApiError) as error:
        Authenticator(SECRET)(bearer(claims))
    assert (error.value.status, error.value.code) == (401, "UNAUTHENTICATED")


def test_a_cached_token_is_verified_again_once_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verified: list[str | None] = []
    real_verify = auth.verify

    def counting_verify(header: str | None, keys: JwtKeys | str) -> tuple[Principal, float]:
        verified.append(header)
        return real_verify(header, keys)

    monkeypatch.setattr(auth, "verify", counting_verify)
    authenticate = Authenticator(SECRET)
    header = bearer({"sub": "u", "company_id": "acme", "scopes": [], "exp": time.time() + 5})
    assert authenticate(header).subject == "u"
    assert authenticate(header).subject == "u"
    assert len(verified) == 1, "the second call should come from the cache"
    later = time.time() + 3600
    monkeypatch.setattr(auth.time, "time", lambda: later)
    # (pyjwt reads its own clock, so here the token verifies again; what matters is that it
    # is checked again rather than served from the cache.)
    authenticate(header)
    assert len(verified) == 2


def test_a_token_signed_with_another_secret_is_401_even_after_a_good_one() -> None:
    authenticate = Authenticator(SECRET)
    claims = {"sub": "u", "company_id": "acme", "scopes": [], "exp": int(time.time()) + 60}
    authenticate(bearer(claims))
    with pytest.raises(ApiError):
        authenticate(bearer(claims, secret="x" * 40))


def test_ledger_token_mints_a_token_for_the_configured_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LEDGER_JWT_SECRET", raising=False)
    result = CliRunner().invoke(cli, ["token", "--company", "acme", "--scopes", "billing.view"])
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.output.strip(), DEVELOPMENT_JWT_SECRET, algorithms=["HS256"])
    assert (claims["company_id"], claims["scopes"]) == ("acme", ["billing.view"])
    operator = mint_token(SECRET, subject="o", company_id=None, scopes=["billing.manage"], ttl_s=60)
    assert Authenticator(SECRET)("Bearer " + operator).is_operator


def test_while_a_secret_is_rotated_both_keys_are_valid_and_named_by_kid() -> None:
    old, new, other = "o" * 32, "n" * 32, "x" * 32
    rotating = Authenticator(JwtKeys(new, key_id="2026-11", previous={"2026-10": old}))

    def token(keys: JwtKeys) -> str:
        minted = mint_token(keys, subject="s", company_id="acme", scopes=["billing.view"],
                            ttl_s=60)  # fmt: skip
        return f"Bearer {minted}"

    assert jwt.get_unverified_header(token(JwtKeys(new, key_id="2026-11")).split()[1])["kid"] == (
        "2026-11"
    )
    for valid in (JwtKeys(old, key_id="2026-10"), JwtKeys(new, key_id="2026-11"), JwtKeys(old)):
        assert rotating(token(valid)).company_id == "acme"
    for invalid in (JwtKeys(other), JwtKeys(other, key_id="2026-11"), JwtKeys(old, "2026-09")):
        with pytest.raises(ApiError) as refused:
            rotating(token(invalid))
        assert refused.value.status == 401
    with pytest.raises(ApiError):
        Authenticator(new)(token(JwtKeys(old)))


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"iss": "https://idp.example", "aud": "ledger"}, None),
        ({"iss": "https://other.example", "aud": "ledger"}, "iss"),
        ({"iss": "https://idp.example", "aud": "another-api"}, "aud"),
        ({"aud": "ledger"}, "iss"),
        ({"iss": "https://idp.example"}, "aud"),
        # Times relative to when the test runs (resolved below), not to when it was collected:
        # the suite takes longer than the 600 s these were once computed with.
        ({"iss": "https://idp.example", "aud": "ledger", "nbf": 600}, "nbf"),
        ({"iss": "https://idp.example", "aud": "ledger", "exp": -600}, "exp"),
    ],
)
def test_issuer_audience_and_validity_window_are_checked_when_configured(
    claims: dict[str, object], reason: str | None
) -> None:
    keys = JwtKeys(SECRET, issuer="https://idp.example", audience="ledger")
    now = time.time()
    timed = {k: now + v for k, v in claims.items() if k in ("nbf", "exp") and isinstance(v, int)}
    token = bearer({"sub": "u", "company_id": "acme", "scopes": ["billing.view"],
                    "exp": now + 60} | claims | timed)  # fmt: skip
    if reason is None:
        assert Authenticator(keys)(token).company_id == "acme"
        assert mint_token(keys, subject="s", company_id=None, scopes=[], ttl_s=60)
        return
    with pytest.raises(ApiError) as refused:
        Authenticator(keys)(token)
    assert refused.value.status == 401
