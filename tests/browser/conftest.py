"""Browser tests: Debian's Chromium driven by Playwright against a real ``ledger run`` (its
own fresh database, its embedded broker on a free port).

Playwright cannot download its own browser here, so the tests drive ``/usr/bin/chromium``
(``.ci/run`` installs Debian's ``chromium`` when missing). With ``CI=true`` a missing browser
fails the run; elsewhere the browser tests skip with one loud line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from ledger_service.api.auth import mint_token
from ledger_service.config import DEVELOPMENT_JWT_SECRET
from tests.conftest import temporary_database
from tests.e2e.test_run_command import free_port, start, stop, wait_ready

CHROMIUM = os.environ.get("LEDGER_TEST_CHROMIUM", "/usr/bin/chromium")
LEDGER = str(Path(sys.executable).parent / "ledger")
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts" / "browser"
# The flags that keep Chromium from reaching for Google's hosts on this closed network.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


PageFactory = Callable[[], Page]


@dataclass
class Ledger:
    """A running ``ledger run``: its address, environment and embedded broker."""

    url: str
    env: dict[str, str]
    kafka: str

    def operator_headers(self) -> dict[str, str]:
        token = mint_token(
            DEVELOPMENT_JWT_SECRET, subject="setup", company_id=None,
            scopes=["billing.manage"], ttl_s=600,
        )  # fmt: skip
        return {"Authorization": f"Bearer {token}"}

    def login_link(self, *args: str) -> str:
        """``ledger login-link ...`` as an operator runs it; its last line is the URL."""
        done = subprocess.run(
            [LEDGER, "login-link", *args], env=self.env, capture_output=True, text=True,
            timeout=60, check=True,
        )  # fmt: skip
        return done.stdout.strip().splitlines()[-1]

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.operator_headers(), timeout=10)


@pytest.fixture(scope="session")
def chromium() -> str:
    if shutil.which(CHROMIUM) is None:
        message = f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        print(f"\n!!! SKIPPING BROWSER TESTS: {message} !!!", file=sys.stderr)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="module")
def ledger(admin_database_url: str, chromium: str) -> Iterator[Ledger]:
    port, kafka_port = free_port(), free_port()
    with temporary_database(admin_database_url) as database_url:
        env = {
            "LEDGER_DATABASE_URL": database_url,
            "LEDGER_EMBEDDED_KAFKA_PORT": str(kafka_port),
            "LEDGER_PROJECTION_POLL_INTERVAL_MS": "50",
        }
        process = start(env, port)
        try:
            wait_ready(process, port)
            full_env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
            full_env |= env | {"LEDGER_HTTP_PORT": str(port), "LEDGER_HTTP_HOST": "127.0.0.1"}
            yield Ledger(f"http://127.0.0.1:{port}", full_env, f"127.0.0.1:{kafka_port}")
        finally:
            stop(process)


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def new_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[PageFactory]:
    """Pages in fresh browser contexts (one person each); each is screenshot at the end of
    its test into .artifacts/browser/<test>-<n>.png."""
    contexts = []

    def factory() -> Page:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        return context.new_page()

    yield factory
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for number, context in enumerate(contexts):
        for page in context.pages:
            page.screenshot(path=ARTIFACTS / f"{request.node.name}-{number}.png", full_page=True)
        context.close()
