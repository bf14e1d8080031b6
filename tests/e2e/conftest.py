"""Browser journeys against the real server: ``bankwallet serve`` in its own process on a free
port with a fresh SQLite file, driven by the system's headless Chromium through Playwright."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import free_port, skip_or_fail

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2,
         "is_mobile": True, "has_touch": True}
SERVER_START_TIMEOUT_S = 30.0


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("e2e-server")
    port = free_port()
    # tests/e2e/test_chains.py starts the sandbox chain on this port when it runs.
    chain_port = os.environ.setdefault("BANKWALLET_E2E_CHAIN_PORT", str(free_port()))
    env = {**os.environ, "BANKWALLET_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/bankwallet.db",
           "BANKWALLET_ENV": "test", "BANKWALLET_LOG_JSON": "false",
           "BANKWALLET_CHAIN_NETWORKS": f'{{"ETH": "http://127.0.0.1:{chain_port}/"}}'}
    log_path = workdir / "server.log"
    # The work directory is the server's cwd, so a developer's ./.env and ./var stay out of it.
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bankwallet", "serve", "--host", "127.0.0.1", "--port",
             str(port)], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, process, log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the server did not answer /healthz in {SERVER_START_TIMEOUT_S} s:\n"
                f"{log_path.read_text()}")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        skip_or_fail("playwright is not installed (pip install -e '.[dev]')")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                   headless=True, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def phone(browser: Any, server_url: str) -> AsyncIterator[Any]:
    """A fresh phone-sized browser context (its own cookies and service workers)."""
    context = await browser.new_context(base_url=server_url, locale="zh-CN", **PHONE)
    page = await context.new_page()
    yield page
    await context.close()
