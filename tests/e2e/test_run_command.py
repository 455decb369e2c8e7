"""`ledger run` as a user starts it: a real process, real HTTP, SIGTERM to stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration
LEDGER = str(Path(sys.executable).parent / "ledger")
START_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    full_env |= {
        "LEDGER_HTTP_PORT": str(port),
        "LEDGER_HTTP_HOST": "127.0.0.1",
        "LEDGER_EMBEDDED_KAFKA_PORT": str(free_port()),
    } | env
    return subprocess.Popen(
        [LEDGER, "run"], env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_ready(process: subprocess.Popen[str], port: int) -> httpx.Response:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"ledger run exited early: {process.communicate()}")
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        if response.status_code == 200:
            return response
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"not ready within {START_TIMEOUT_S}s: {process.communicate()}")


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == 0, stderr
    return stderr


def check_serves_and_stops(env: dict[str, str]) -> str:
    port = free_port()
    process = start(env, port)
    try:
        ready = wait_ready(process, port)
        assert ready.json()["checks"]["event_store"] == "ok"
        assert ready.json()["checks"]["projections"] == "ok"
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
    finally:
        stderr = stop(process)
    # Not on a TTY: every log line is JSON.
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert lines, stderr
    return stderr


def test_run_on_a_configured_database(database_url: str) -> None:
    check_serves_and_stops({"LEDGER_DATABASE_URL": database_url})


def test_run_on_the_embedded_default_keeps_data_and_stops_postgres(tmp_path: Path) -> None:
    env = {"LEDGER_DATA_DIR": str(tmp_path / ".ledger-data")}
    stderr = check_serves_and_stops(env)
    assert "embedded_postgres_started" in stderr
    pg_dir = tmp_path / ".ledger-data" / "postgres"
    assert (pg_dir / "PG_VERSION").exists()
    assert not (pg_dir / "postmaster.pid").exists(), "embedded PostgreSQL left running"
    # A second start finds the same data directory and serves again.
    check_serves_and_stops(env)


def test_run_ingests_what_publish_sample_produces_on_the_embedded_broker(
    database_url: str,
) -> None:
    import psycopg

    port, kafka_port = free_port(), free_port()
    env = {
        "LEDGER_DATABASE_URL": database_url,
        "LEDGER_EMBEDDED_KAFKA_PORT": str(kafka_port),
        "LEDGER_USAGE_TOPIC": f"e2e-usage-{port}",
        "LEDGER_DLQ_TOPIC": f"e2e-dlq-{port}",
    }
    process = start(env, port)
    try:
        wait_ready(process, port)
        tool_env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")} | env
        published = subprocess.run(
            [
                LEDGER,
                "publish-sample",
                "--companies",
                "3",
                "--senders-per-company",
                "2",
                "--events",
                "300",
                "--duplicates-pct",
                "10",
                "--seed",
                "5",
            ],
            env=tool_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert "published 300 events" in published.stdout
        deadline = time.monotonic() + 60
        with psycopg.connect(database_url, autocommit=True) as conn:
            while True:
                row = conn.execute(
                    "SELECT count(*) FROM ledger_usage_keys WHERE company_id LIKE 'sample-%'"
                ).fetchone()
                consumed = conn.execute(
                    "SELECT coalesce(sum(notification_id), 0) FROM notification_tracking "
                    "WHERE application_name LIKE %s",
                    (f"kafka:e2e-usage-{port}:%",),
                ).fetchone()
                if (consumed and consumed[0] >= 300) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        assert consumed is not None
        assert consumed[0] == 300
        assert row is not None
        # Every unique event once: the seeded stream repeats the same number verbatim.
        from ledger_service.ingestion.sample import SampleShape, sample_events

        unique = len(
            {value for _, value in sample_events(SampleShape(3, 2), 300, duplicates_pct=10, seed=5)}
        )
        assert row[0] == unique < 300
    finally:
        stop(process)


def test_a_card_topup_paid_on_the_mock_checkout_of_ledger_run(database_url: str) -> None:
    """The mock provider end to end, as a developer meets it after `make run`: the checkout
    link points at the running service, whose Pay button credits the wallet."""
    from ledger_service.api.auth import mint_token
    from ledger_service.config import DEVELOPMENT_JWT_SECRET

    def token(company: str | None, scope: str) -> dict[str, str]:
        jwt = mint_token(DEVELOPMENT_JWT_SECRET, subject="e2e", company_id=company,
                         scopes=[scope], ttl_s=600)  # fmt: skip
        return {"Authorization": f"Bearer {jwt}", "Idempotency-Key": os.urandom(8).hex()}

    port = free_port()
    company = f"card-{port}"
    process = start({"LEDGER_DATABASE_URL": database_url}, port)
    try:
        wait_ready(process, port)
        base = f"http://127.0.0.1:{port}"
        opened = httpx.post(f"{base}/v1/wallets", headers=token(None, "billing.manage"), json={
            "company_id": company, "currency": "USD", "mode": "shared", "postpaid_limit": "0",
            "included_quota": "0", "rate_card": {"marketing": "0.05"}})  # fmt: skip
        assert opened.status_code == 201, opened.text
        topup = httpx.post(f"{base}/v1/topup-requests", headers=token(company, "billing.view"),
                           json={"company_id": company, "amount": "40", "currency": "USD",
                                 "payment_method": "card"}).json()  # fmt: skip
        checkout = topup["payment_order"]["checkout_url"]
        assert checkout.startswith(f"{base}/v1/payments/mock/checkout/")
        assert "Pay 40 USD" in httpx.get(checkout).text
        assert "succeeded" in httpx.post(f"{checkout}/pay").text
        deadline = time.monotonic() + 30
        while True:
            wallet = httpx.get(f"{base}/v1/wallets/{company}",
                               headers=token(company, "billing.view")).json()  # fmt: skip
            if wallet["buckets"]["prepaid"] == "40" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert wallet["buckets"]["prepaid"] == "40"
    finally:
        stop(process)
