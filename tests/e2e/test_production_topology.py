"""The production topology as processes: `ledger serve` x2, `consume` x2, `project` and `react`
started separately with the environment deploy/compose.yaml gives them (LEDGER_ENVIRONMENT=
production, real secrets) on a real PostgreSQL and broker, after `ledger migrate`. A top-up goes
through both API replicas, usage through the consumer group, alerts come out on the
notifications topic, `ledger verify` passes, every metric the dashboard and alerts name is
served by some role, and every process stops on SIGTERM with exit 0 within its bound."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ledger_service.api.auth import mint_token
from ledger_service.ingestion.topics import ensure_topics
from tests.conftest import free_port, temporary_database
from tests.integration.ingestion_support import produce, read_all, usage_event
from tests.unit.test_deploy import alert_expressions, dashboard_queries, metric_names_in

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
LEDGER = str(Path(sys.executable).parent / "ledger")
ROLES = ("serve", "serve", "consume", "consume", "project", "react")
READY_TIMEOUT_S = 60
STOP_BOUND_S = 25.0  # LEDGER_SHUTDOWN_TIMEOUT_S (20) and the time to exit
MESSAGES = 120


def compose_environment() -> dict[str, str]:
    """What deploy/compose.yaml gives every ledger role, its ${...} references unresolved."""
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    return {key: str(value) for key, value in compose["x-ledger-environment"].items()}


class Role:
    def __init__(self, name: str, env: dict[str, str], port: int, logs: Path) -> None:
        self.name, self.port = name, port
        self.log = logs / f"{name}-{port}.log"
        with self.log.open("wb") as out:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [LEDGER, name], env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def topology(
    admin_database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> Iterator[tuple[list[Role], dict[str, str]]]:
    suffix = uuid.uuid4().hex[:8]
    with temporary_database(admin_database_url) as database_url:
        given = compose_environment()
        overrides = {  # the addresses and secrets of this machine instead of Compose's
            "LEDGER_DATABASE_URL": database_url,
            "LEDGER_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "LEDGER_USAGE_TOPIC": f"usage-{suffix}",
            "LEDGER_DLQ_TOPIC": f"dlq-{suffix}",
            "LEDGER_NOTIFICATIONS_TOPIC": f"notifications-{suffix}",
            "LEDGER_CONSUMER_GROUP": f"group-{suffix}",
            "LEDGER_JWT_SECRET": secrets.token_hex(32),
            "LEDGER_CONSOLE_SECRET": secrets.token_hex(32),
            "LEDGER_PAYMENTS_PROVIDER": "none",
        }
        unresolved = {k for k, v in given.items() if "${" in v} - set(overrides)
        assert not unresolved, f"Compose variables this test does not set: {unresolved}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
        env |= given | overrides | {
            "LEDGER_HTTP_HOST": "127.0.0.1",
            "LEDGER_PROJECTION_POLL_INTERVAL_MS": "50",
            "LEDGER_REACTIONS_POLL_INTERVAL_MS": "50",
            "LEDGER_LOG_LEVEL": "info",
            # Six processes share this machine's PostgreSQL (100 connections) with the rest of
            # the suite: smaller pools than production's.
            "LEDGER_DB_POOL_SIZE": "2",
            "LEDGER_DB_POOL_OVERFLOW_MAX": "2",
            "LEDGER_READ_POOL_SIZE_MAX": "2",
        }  # fmt: skip
        asyncio.run(
            ensure_topics(
                kafka_bootstrap,
                {
                    overrides["LEDGER_USAGE_TOPIC"]: 6,
                    overrides["LEDGER_DLQ_TOPIC"]: 1,
                    overrides["LEDGER_NOTIFICATIONS_TOPIC"]: 6,
                },
            )
        )  # fmt: skip  (the kafka-topics one-shot service)
        migrated = subprocess.run(
            [LEDGER, "migrate"], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert migrated.returncode == 0, migrated.stderr
        roles: list[Role] = []
        try:
            for name in ROLES:
                port = free_port()
                port_setting = "LEDGER_HTTP_PORT" if name == "serve" else "LEDGER_OPS_PORT"
                roles.append(Role(name, env | {port_setting: str(port)}, port, tmp_path))
            for role in roles:
                wait_ready(role)
            yield roles, env
        finally:
            for role in roles:
                if role.process.poll() is None:
                    role.process.kill()
                    role.process.wait(timeout=10)


def wait_ready(role: Role) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        assert role.process.poll() is None, f"{role.name} exited: {role.output()}"
        try:
            if role.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{role.name} not ready in {READY_TIMEOUT_S} s: {role.output()}")


def call(role: Role, method: str, path: str, token: str, **kwargs: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
    response = httpx.request(
        method, f"http://127.0.0.1:{role.port}{path}", headers=headers, timeout=10, **kwargs
    )
    assert response.status_code < 300, (path, response.text)
    return dict(response.json())


def test_the_roles_as_separate_processes_bill_alert_verify_and_stop_cleanly(
    topology: tuple[list[Role], dict[str, str]], kafka_bootstrap: str
) -> None:
    roles, env = topology
    api_a, api_b = roles[0], roles[1]
    secret = env["LEDGER_JWT_SECRET"]
    company = f"co-{uuid.uuid4().hex[:8]}"
    sender = f"{company}-w1"
    operator = mint_token(secret, subject="ops", company_id=None, scopes=["billing.manage"],
                          ttl_s=600)  # fmt: skip
    tenant = mint_token(secret, subject=f"u@{company}", company_id=company,
                        scopes=["billing.view"], ttl_s=600)  # fmt: skip

    call(api_a, "POST", "/v1/wallets", operator, json={
        "company_id": company, "currency": "USD", "postpaid_limit": "100",
        "rate_card": {"marketing": "1"},
    })  # fmt: skip
    call(api_b, "POST", f"/v1/wallets/{company}/senders", operator, json={"waba_id": sender})
    call(api_a, "PATCH", f"/v1/wallets/{company}", operator,
         json={"alerts": {"low_balance_threshold": "50"}})  # fmt: skip
    topup = call(api_b, "POST", "/v1/topup-requests", tenant,
                 json={"company_id": company, "amount": "100", "currency": "USD"})  # fmt: skip
    call(api_a, "POST", f"/v1/topup-requests/{topup['id']}/approve", operator)
    paid = call(api_b, "POST", f"/v1/topup-requests/{topup['id']}/mark-paid", operator,
                json={"payment_reference": "bank-1"})  # fmt: skip
    for api in (api_a, api_b):
        wallet = call(api, "GET", f"/v1/wallets/{company}?min_position={paid['position']}", tenant)
        assert wallet["balance"] == "100", api.port

    events = [usage_event(company, sender, event_id=f"m{i}") for i in range(MESSAGES)]
    asyncio.run(produce(kafka_bootstrap, env["LEDGER_USAGE_TOPIC"], events))
    deadline = time.monotonic() + 60
    while call(api_a, "GET", f"/v1/wallets/{company}", tenant)["balance"] != "-20":
        assert time.monotonic() < deadline, "the consumers did not bill every message"
        time.sleep(0.3)
    usage = call(api_b, "GET", f"/v1/wallets/{company}/usage?group_by=sender", tenant)
    assert [(u["key"], u["billable_count"]) for u in usage["items"]] == [(sender, MESSAGES)]

    records = asyncio.run(read_all(kafka_bootstrap, env["LEDGER_NOTIFICATIONS_TOPIC"], 4, 30))
    types = {json.loads(r.value)["type"] for r in records}
    assert {"ledger.topup.invoiced", "ledger.topup.completed", "ledger.alert.low_balance_warning",
            "ledger.alert.balance_below_zero"} <= types, types  # fmt: skip

    served: set[str] = set()
    for role in roles:
        served |= set(re.findall(r"^# TYPE (ledger_[a-z_]+) ", role.get("/metrics").text, re.M))
    named = metric_names_in(*dashboard_queries(), *alert_expressions())
    assert named <= served, sorted(named - served)

    verified = subprocess.run(
        [LEDGER, "verify"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr

    for role in roles:
        role.process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    for role in roles:
        remaining = max(STOP_BOUND_S - (time.monotonic() - started), 0.1)
        try:
            code = role.process.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{role.name} still running after SIGTERM: {role.output()}"
            ) from None
        assert code == 0, f"{role.name} exited {code}: {role.output()}"
        assert "service_stopped" in role.output(), role.name
