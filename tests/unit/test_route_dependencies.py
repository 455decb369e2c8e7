"""Every ``/v1`` route declares the shared dependencies its role needs: a caller (401 without
a token), the operator scope on operator routes (403 for a tenant), and an Idempotency-Key on
every write. Read from the routes' declared dependencies, so a new route that forgets one fails
here rather than in production."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from ledger_service.api.app import create_app
from ledger_service.api.routes import RESOURCE_ROUTERS
from ledger_service.api.routes.dependencies import operator, principal
from tests.fakes import InMemoryLedger

ROUTES = [route for r in RESOURCE_ROUTERS for route in r.routes if isinstance(route, APIRoute)]
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from calls(sub)


def headers(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.header_params}
    for sub in dependant.dependencies:
        names |= headers(sub)
    return names


def name(route: APIRoute) -> str:
    return f"{sorted(route.methods or ())} {route.path}"


def test_the_router_has_the_expected_endpoints() -> None:
    # A floor, not an exact count: a new endpoint must not need this test edited.
    assert len(ROUTES) >= 16


@pytest.mark.parametrize("route", ROUTES, ids=name)
def test_every_route_authenticates_its_caller(route: APIRoute) -> None:
    assert principal in set(calls(route.dependant))


@pytest.mark.parametrize("route", ROUTES, ids=name)
def test_operator_only_routes_require_the_operator_scope(route: APIRoute) -> None:
    operator_only = route.tags == ["operator"]
    assert (operator in set(calls(route.dependant))) == operator_only


KEYED_BY_THEIR_BODY = {"/wallets/{company_id}/consume", "/companies/{company_id}/pools/migrate"}
"""Writes keyed without the header: consumption is one charge per ``reference``, whatever the
header says (a second key for one reference could only charge it twice); a pool migration keys
each step by its company and pool."""


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if WRITE_METHODS & (r.methods or set())], ids=name
)
def test_every_write_takes_an_idempotency_key(route: APIRoute) -> None:
    keyed_by_header = "Idempotency-Key" in headers(route.dependant)
    assert keyed_by_header != (route.path in KEYED_BY_THEIR_BODY)


KEYED_BY_THEIR_REFERENCE = {
    "/v1/wallets/{company_id}/holds",
    "/v1/wallets/{company_id}/holds/{hold_id}",
}
"""Holds: the reference (or the hold) keys them when the header is absent."""


PROVIDERS_CALL_THESE = ("/v1/payments/webhooks/", "/v1/payments/mock/checkout/")
"""Payment providers' webhooks (keyed by their event id) and the mock checkout's form."""


def test_the_schema_says_which_writes_require_an_idempotency_key() -> None:
    spec = create_app(InMemoryLedger()).openapi()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            exempt = path.removeprefix("/v1") in KEYED_BY_THEIR_BODY
            if method.upper() not in WRITE_METHODS or exempt:
                continue
            if path.startswith(PROVIDERS_CALL_THESE):
                continue
            parameters = operation.get("parameters", [])
            (key,) = [p for p in parameters if p["name"] == "Idempotency-Key"]
            assert key["required"] is (path not in KEYED_BY_THEIR_REFERENCE), (method, path)
            assert key["in"] == "header"
