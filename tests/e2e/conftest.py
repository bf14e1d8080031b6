"""Browser journeys against the real server: ``bankwallet serve`` in its own process on a free
port with a fresh SQLite file, driven by the system's headless Chromium through Playwright."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import servers

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
    # The work directory is the server's cwd, so a developer's ./.env and ./var stay out of it.
    with servers.running(servers.serve_argv(port), url=f"http://127.0.0.1:{port}", env=env,
                         cwd=workdir, log_path=workdir / "server.log",
                         timeout_s=SERVER_START_TIMEOUT_S) as url:
        yield url


def wallet_env(workdir: Path, **extra: str) -> dict[str, str]:
    """The environment of a server (or a command) of its own in ``workdir``: none of this
    process's BANKWALLET_ variables, a fresh SQLite file and key file there, and ``extra``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("BANKWALLET_")},
            "BANKWALLET_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/bankwallet.db",
            "BANKWALLET_ENV": "test", "BANKWALLET_LOG_JSON": "false",
            "BANKWALLET_KEY_FILE": str(workdir / "keys.json"), **extra}


@contextlib.contextmanager
def serving_demo_data(workdir: Path) -> Iterator[str]:
    """``bankwallet demo`` fills a fresh database in ``workdir``, then ``bankwallet serve``
    serves it on a free port; yields the server's URL."""
    port = free_port()
    env = wallet_env(workdir)
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        # Same cwd and key file as the server, so it can read what the demo sealed.
        loaded = subprocess.run(servers.bankwallet("demo"), cwd=workdir, env=env, stdout=log,
                                stderr=subprocess.STDOUT, timeout=SERVER_START_TIMEOUT_S * 4)
    if loaded.returncode != 0:
        pytest.fail(f"bankwallet demo exited with {loaded.returncode}:\n"
                    f"{log_path.read_text()}")
    with servers.running(servers.serve_argv(port), url=f"http://127.0.0.1:{port}", env=env,
                         cwd=workdir, log_path=log_path,
                         timeout_s=SERVER_START_TIMEOUT_S) as url:
        yield url


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


@pytest.fixture(scope="session")
def demo_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Another real server, on a database first filled by ``bankwallet demo``: customers with
    funded wallets (``bankwallet.demo.CUSTOMERS``, password ``bankwallet.demo.PASSWORD``), for
    journeys that spend money without a bank behind the wallet."""
    with serving_demo_data(tmp_path_factory.mktemp("e2e-demo-server")) as url:
        yield url
