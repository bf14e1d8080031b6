"""The sandbox chain as a real process (``bankwallet sandbox-chain``) on a free port, shared by
the session; tests use their own recipients so that they do not depend on each other's order."""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from conftest import free_port, skip_or_fail
from servers import bankwallet, running

CHAIN_ID = 1337
DEV_ACCOUNTS = 6
DEV_BALANCE_ETH = 1000
CHAIN_START_TIMEOUT_S = 30.0
WAIT_TIMEOUT_S = 10.0

T = TypeVar("T")


@dataclass(frozen=True)
class ChainProcess:
    url: str
    log_path: Path


@pytest.fixture(scope="session")
def chain_url(chain_process: ChainProcess) -> str:
    return chain_process.url


@pytest.fixture(scope="session")
def chain_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainProcess]:
    if importlib.util.find_spec("eth_tester") is None:
        skip_or_fail("eth-tester is not installed (pip install -e '.[dev]')")
    workdir = tmp_path_factory.mktemp("sandbox-chain")
    port = free_port()
    log_path = workdir / "chain.log"
    with running(bankwallet("sandbox-chain", "--host", "127.0.0.1", "--port", str(port),
                            "--chain-id", str(CHAIN_ID), "--accounts", str(DEV_ACCOUNTS),
                            "--balance-eth", str(DEV_BALANCE_ETH)),
                 url=f"http://127.0.0.1:{port}/", cwd=workdir, log_path=log_path,
                 timeout_s=CHAIN_START_TIMEOUT_S, name="the sandbox chain") as url:
        yield ChainProcess(url, log_path)


@pytest.fixture
async def client(chain_url: str) -> AsyncIterator[Any]:
    from bankwallet.connectors.chains.evm import EvmJsonRpcClient

    async with EvmJsonRpcClient(chain_url, timeout_s=5) as chain_client:
        yield chain_client


@pytest.fixture(scope="session")
def dev_keys() -> list[str]:
    from bankwallet.connectors.chains.sandbox_chain import dev_private_keys

    return dev_private_keys(DEV_ACCOUNTS)


async def rpc(url: str, method: str, *params: Any) -> Any:
    """A raw JSON-RPC call: the whole response object (result or error)."""
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                              "params": list(params)})
    return response.json()


async def wait_for(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool],
                   timeout_s: float = WAIT_TIMEOUT_S) -> T:
    """Poll ``probe`` until ``done`` says so, for at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not done after {timeout_s} s: {value!r}")
        await asyncio.sleep(0.05)
