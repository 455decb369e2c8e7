"""The API contract, fuzzed: ``schemathesis run --checks all`` against a running ``ledger run``
(its own fresh database), as an operator, as a tenant and as an upstream sender.

Every check is on: no 5xx, every status and content type documented, responses matching their
schemas, schema-valid requests accepted or refused only with a status the schema documents for
a business reason (401, 403, 404, 409), schema-invalid ones refused, the ``Allow`` header of a
405 true. The few rules JSON Schema cannot state are listed, with their reasons, in
``tests/contract/schemathesis.toml``. The seed is fixed so that CI is repeatable; set
``LEDGER_CONTRACT_SEED`` (and ``LEDGER_CONTRACT_EXAMPLES``) to explore further.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ledger_service.api.auth import mint_token
from ledger_service.config import DEVELOPMENT_JWT_SECRET
from tests.conftest import temporary_database
from tests.e2e.test_run_command import LEDGER, free_port, wait_ready

pytestmark = pytest.mark.integration
SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
CONFIG = Path(__file__).resolve().parents[1] / "contract" / "schemathesis.toml"
SEED = os.environ.get("LEDGER_CONTRACT_SEED", "20261123")
EXAMPLES = os.environ.get("LEDGER_CONTRACT_EXAMPLES", "30")
RUN_TIMEOUT_S = 600
TENANT = "acme"
ROLES = {
    "operator": (None, ["billing.manage"]),
    "tenant": (TENANT, ["billing.view", "billing.transfer"]),
    "sender": (TENANT, ["billing.usage"]),
}


@dataclass
class Service:
    url: str
    log: Path

    def headers(self, role: str) -> dict[str, str]:
        company, scopes = ROLES[role]
        token = mint_token(DEVELOPMENT_JWT_SECRET, subject=f"contract-{role}",
                           company_id=company, scopes=scopes, ttl_s=3600)  # fmt: skip
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def service(admin_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """``ledger run`` with a unit of account configured (so the schema names it), its output
    in a file (thousands of requests would fill a pipe), and the tenant's wallet opened."""
    port = free_port()
    log = tmp_path_factory.mktemp("contract") / "ledger-run.log"
    with temporary_database(admin_database_url) as database_url, log.open("w") as output:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")} | {
            "LEDGER_DATABASE_URL": database_url,
            "LEDGER_HTTP_PORT": str(port),
            "LEDGER_HTTP_HOST": "127.0.0.1",
            "LEDGER_EMBEDDED_KAFKA_PORT": str(free_port()),
            "LEDGER_CREDIT_RATES": '{"CREDIT": {"INR": "10"}}',
        }
        process = subprocess.Popen([LEDGER, "run"], env=env, stdout=output, stderr=output,
                                   text=True)  # fmt: skip
        try:
            wait_ready(process, port)
            running = Service(f"http://127.0.0.1:{port}", log)
            _open_wallets(running)
            yield running
        finally:
            process.terminate()
            process.wait(timeout=30)


def _open_wallets(service: Service) -> None:
    writes = [
        ("/v1/wallets", {"company_id": TENANT, "currency": "INR", "postpaid_limit": "100",
                         "rate_card": {"marketing": "0.5", "utility": "0.1"}}),
        ("/v1/wallets", {"company_id": "globex", "currency": "INR"}),
        (f"/v1/wallets/{TENANT}/senders", {"waba_id": f"{TENANT}-waba-1"}),
    ]  # fmt: skip
    with httpx.Client(base_url=service.url, headers=service.headers("operator")) as client:
        for number, (path, body) in enumerate(writes):
            response = client.post(path, json=body, headers={"Idempotency-Key": f"seed-{number}"})
            assert response.status_code == 201, response.text


def _config(role: str, directory: Path) -> Path:
    """The shared exceptions; a tenant's and a sender's path company is their own (another
    company's is a 404 the operator run already covers)."""
    text = CONFIG.read_text()
    if ROLES[role][0] is not None:
        text += f'\n[parameters]\n"path.company_id" = "{ROLES[role][0]}"\n'
    config = directory / "schemathesis.toml"
    config.write_text(text)
    return config


@pytest.mark.parametrize("role", list(ROLES))
def test_schemathesis_finds_no_failure(service: Service, role: str, tmp_path: Path) -> None:
    operations = len(_operations(service))
    header = service.headers(role)["Authorization"]
    command = [
        SCHEMATHESIS, "--config-file", str(_config(role, tmp_path)), "run",
        f"{service.url}/openapi.json", "--checks", "all", "--header", f"Authorization: {header}",
        "--max-examples", EXAMPLES, "--seed", SEED, "--workers", "1", "--no-color",
        "--generation-database", "none",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S, check=False)  # fmt: skip
    report = done.stdout + done.stderr
    assert done.returncode == 0, f"{report[-30000:]}\n(service log: {service.log})"
    tested = re.search(r"Tested: (\d+)", report)
    assert tested is not None, report[-5000:]
    assert int(tested.group(1)) == operations, report[-5000:]
    assert re.search(r"\d+ generated, \d+ passed", report), report[-5000:]


def _operations(service: Service) -> list[tuple[str, str]]:
    paths = httpx.get(f"{service.url}/openapi.json").json()["paths"]
    return [(method, path) for path, item in paths.items() for method in item]
