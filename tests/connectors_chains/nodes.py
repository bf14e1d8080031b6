"""Start a sandbox Bitcoin, TRON or Solana node (``connectors.chains.sandbox_nodes``) as a real
process on a free port; shared by the connector, service and CLI tests."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.servers import running



@contextlib.contextmanager
def sandbox_node(kind: str, workdir: Path, *extra: str) -> Iterator[str]:
    """The node's base URL (ends with /) while the block runs; the process is stopped after."""
    port = free_port()
    with running([sys.executable, "-m", "bankwallet.connectors.chains.sandbox_nodes", kind,
                  "--host", "127.0.0.1", "--port", str(port), *extra],
                 url=f"http://127.0.0.1:{port}/", cwd=workdir,
                 log_path=workdir / f"{kind}-node.log", name=f"the {kind} node") as url:
        yield url


def rpc(url: str, method: str, *params: object) -> object:
    """A raw JSON-RPC call to a btc or sol node (sandbox funding, mining): the result."""
    answer = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                   "params": list(params)}, timeout=5).json()  # auth from URL
    assert answer.get("error") is None, answer
    return answer["result"]


def tron_fund(url: str, address: str, amount_sun: int) -> None:
    answer = httpx.post(f"{url}sandbox/fund", json={"address": address,
                                                    "amount_sun": amount_sun}, timeout=5)
    assert answer.json().get("result") is True, answer.text


BTC_RPC_AUTH = "bankwallet:s3cret"


@pytest.fixture(scope="session")
def btc_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Its URL carries the RPC credentials, as bitcoind's would. A mempool floor of 2 sat/vB,
    so that a 1 sat/vB payment is refused for its fee."""
    with sandbox_node("btc", tmp_path_factory.mktemp("btc"), "--min-fee-rate", "2",
                      "--rpc-auth", BTC_RPC_AUTH) as url:
        yield url.replace("http://", f"http://{BTC_RPC_AUTH}@")


@pytest.fixture(scope="session")
def tron_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sandbox_node("tron", tmp_path_factory.mktemp("tron")) as url:
        yield url


@pytest.fixture(scope="session")
def sol_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sandbox_node("sol", tmp_path_factory.mktemp("sol")) as url:
        yield url


@contextlib.contextmanager
def substrate_node(chain: str, workdir: Path, *extra: str) -> Iterator[str]:
    """A sandbox Polkadot or Kusama node (``connectors.chains.sandbox_substrate``): its URL
    (ends with /) while the block runs; the process is stopped after."""
    port = free_port()
    with running([sys.executable, "-m", "bankwallet.connectors.chains.sandbox_substrate",
                  "--chain", chain, "--host", "127.0.0.1", "--port", str(port), *extra],
                 url=f"http://127.0.0.1:{port}/", cwd=workdir,
                 log_path=workdir / f"{chain.lower()}-node.log",
                 name=f"the {chain} node") as url:
        yield url


def substrate_fund(url: str, address: str, planck: int) -> None:
    """Seed a sandbox Substrate account's free balance (``sandbox_setBalance``)."""
    rpc(url, "sandbox_setBalance", address, planck)


@pytest.fixture(scope="session")
def dot_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Answers as the live Polkadot relay chain does (its genesis hash): a mainnet fork."""
    with substrate_node("DOT", tmp_path_factory.mktemp("dot"), "--genesis", "mainnet") as url:
        yield url


@pytest.fixture(scope="session")
def ksm_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local Kusama network of its own (``sandbox_substrate.sandbox_genesis("KSM")``)."""
    with substrate_node("KSM", tmp_path_factory.mktemp("ksm")) as url:
        yield url


# -- balances: TRC-20, SPL, Aptos and EOS (``test_balances``) -------------------------------------


def tron_fund_trc20(url: str, contract: str, address: str, amount: int) -> None:
    answer = httpx.post(f"{url}sandbox/fund_trc20", json={
        "contract": contract, "address": address, "amount": amount}, timeout=5)
    assert answer.json().get("result") is True, answer.text


def apt_fund(url: str, address: str, octas: int, store: str = "coin") -> None:
    answer = httpx.post(f"{url}sandbox/fund", json={"address": address, "octas": octas,
                                                    "store": store}, timeout=5)
    assert answer.json().get("result") is True, answer.text


def eos_create_account(url: str, name: str, public_key: str) -> None:
    answer = httpx.post(f"{url}sandbox/create_account", json={"name": name, "key": public_key},
                        timeout=5)
    assert answer.json().get("result") is True, answer.text


def eos_issue(url: str, account: str, quantity: str) -> None:
    answer = httpx.post(f"{url}sandbox/issue", json={"account": account, "quantity": quantity},
                        timeout=5)
    assert answer.json().get("result") is True, answer.text


@pytest.fixture(scope="session")
def apt_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sandbox_node("apt", tmp_path_factory.mktemp("apt")) as url:
        yield url


@pytest.fixture(scope="session")
def eos_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sandbox_node("eos", tmp_path_factory.mktemp("eos")) as url:
        yield url


@pytest.fixture(scope="session")
def eos_history_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An older EOS node: key accounts through the history plugin only."""
    with sandbox_node("eos", tmp_path_factory.mktemp("eos-history"), "--history-only") as url:
        yield url
