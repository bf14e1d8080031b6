"""Polkadot and Kusama balances: the storage key and the SCALE value against published vectors,
and ``SubstrateRpcClient`` against sandbox Substrate nodes running as real processes (which
store accounts under the published ``System.Account`` prefix, written out on their side)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bankwallet.chains.addresses import validate_address
from bankwallet.connectors.chains import sandbox_substrate
from bankwallet.connectors.chains.base import InvalidRequest, NetworkUnreachable, ProviderError
from bankwallet.connectors.chains.substrate import (
    KNOWN_GENESIS,
    SYSTEM_ACCOUNT_PREFIX,
    AccountInfo,
    ChainIdentity,
    SubstrateRpcClient,
    WrongNetwork,
    account_id,
    blake2_128_concat,
    decode_account_info,
    encode_account_info,
    ss58_address,
    system_account_key,
    twox128,
    xxh64,
)
from tests.conftest import free_port
from tests.connectors_chains.nodes import (  # noqa: F401
    dot_node,
    ksm_node,
    rpc,
    substrate_fund,
    substrate_node,
)

# //Alice's sr25519 public key, and its System.Account key as published in Substrate's docs
# (docs.substrate.io "Querying storage"), gossamer's RPC tests and brave-core's Polkadot
# wallet tests (components/brave_wallet/browser/polkadot/polkadot_substrate_rpc_unittest.cc).
ALICE = bytes.fromhex("d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d")
ALICE_ACCOUNT_KEY = (
    "26aa394eea5630e07c48ae0c9558cef7b99d880ec681799c0cf30e8886371da9"
    "de1e86a9a8c739864cf3cc5ec2bea59f"  # blake2b-128 of the account id, then the id
    "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d")
# brave-core's test: Alice's AccountInfo on Westend, with the values it asserts.
ALICE_WESTEND_VALUE = (
    "76030000020000000100000000000000b18ac01b0300000000000000000000008030a55c79b500000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000080")
ALICE_DOT = "15oF4uVJwmo4TdGW7VfQxNLavjCXviqxT9S1MgbjMNHr6Sp5"  # SS58 format 0
ALICE_KSM = "HNZata7iMYWmk5RvZRTiAsSDhV8366zq2YGb3tLH5Upf74F"  # SS58 format 2
DOT = 10**10
KSM = 10**12


def dot_address(byte: int) -> str:
    return ss58_address("DOT", bytes([byte]) * 32)


def ksm_address(byte: int) -> str:
    return ss58_address("KSM", bytes([byte]) * 32)


# -- hashing and SCALE: published vectors --------------------------------------------------------


def test_xxh64_reference_vectors() -> None:
    assert xxh64(b"") == 0xEF46DB3751D8E999
    assert xxh64(b"abc") == 0x44BC2CF5AD770999
    # 39 and 100 bytes: the 32-byte stripe loop runs.
    assert xxh64(b"Nobody inspects the spammish repetition") == 0xFBCEA83C8A378BF1
    assert xxh64(b"The quick brown fox jumps over the lazy dog") == 0x0B242D361FDA71BC
    assert xxh64(bytes(range(100))) == 0x6AC1E58032166597


def test_twox128_matches_substrate() -> None:
    # sp-io's twox_128 tests; the Balances/FreeBalance prefixes of Substrate's storage docs.
    assert twox128(b"").hex() == "99e9d85137db46ef4bbea33613baafd5"
    assert twox128(b"Hello world!").hex() == "b27dfd7f223f177f2a13647b533599af"
    assert twox128(b"Balances").hex() == "c2261276cc9d1f8598ea4b6a74b15c2f"
    assert twox128(b"FreeBalance").hex() == "6482b9ade7bc6657aaca787ba1add3b4"
    assert twox128(b"System").hex() == "26aa394eea5630e07c48ae0c9558cef7"
    assert twox128(b"Account").hex() == "b99d880ec681799c0cf30e8886371da9"


def test_system_account_storage_key_vector() -> None:
    assert SYSTEM_ACCOUNT_PREFIX.hex() == (
        "26aa394eea5630e07c48ae0c9558cef7b99d880ec681799c0cf30e8886371da9")
    assert blake2_128_concat(ALICE).hex() == ALICE_ACCOUNT_KEY[64:]
    assert system_account_key(ALICE).hex() == ALICE_ACCOUNT_KEY
    # The sandbox node writes the layout out on its side: both give the published key.
    assert sandbox_substrate.account_key(ALICE).hex() == ALICE_ACCOUNT_KEY
    with pytest.raises(ValueError):
        system_account_key(ALICE[:31])


def test_account_info_scale_vector() -> None:
    info = decode_account_info(bytes.fromhex(ALICE_WESTEND_VALUE))
    assert info == AccountInfo(nonce=886, consumers=2, providers=1, sufficients=0,
                               free=13_350_505_137, reserved=199_532_850_000_000, frozen=0,
                               flags=1 << 127)
    assert encode_account_info(info).hex() == ALICE_WESTEND_VALUE
    assert sandbox_substrate.scale_account_info(
        886, 2, 1, 0, 13_350_505_137, 199_532_850_000_000, 0, 1 << 127).hex() \
        == ALICE_WESTEND_VALUE
    for wrong in (bytes.fromhex(ALICE_WESTEND_VALUE)[:-1], bytes(81), b""):
        with pytest.raises(ValueError):
            decode_account_info(wrong)
    with pytest.raises(ValueError):
        encode_account_info(AccountInfo(free=2**128))


def test_ss58_addresses_decode_to_the_account_id() -> None:
    assert ss58_address("DOT", ALICE) == ALICE_DOT
    assert ss58_address("KSM", ALICE) == ALICE_KSM
    assert account_id("DOT", ALICE_DOT) == ALICE == account_id("KSM", ALICE_KSM)
    # The wallet's own address validation accepts what the client reads.
    assert validate_address("DOT", ALICE_DOT) == ALICE_DOT
    assert account_id("DOT", ALICE_KSM) is None  # Kusama's prefix
    assert account_id("DOT", ALICE_DOT[:-1] + "6") is None  # checksum
    assert account_id("DOT", "0x" + ALICE.hex()) is None


# -- the sandbox node and the client against it -----------------------------------------------


def test_the_sandbox_node_answers_as_a_substrate_node() -> None:
    node = sandbox_substrate.SubstrateNode("DOT")
    assert node.genesis == sandbox_substrate.sandbox_genesis("DOT") not in KNOWN_GENESIS["DOT"]

    def call(method: str, *params: object) -> dict[str, object]:
        return node.handle({"jsonrpc": "2.0", "id": 7, "method": method, "params": list(params)})

    assert call("author_submitExtrinsic", "0x00")["error"]["code"] == -32601
    assert call("state_getStorage", "nothex")["error"]["code"] == -32602
    assert call("sandbox_setBalance", ALICE_KSM, DOT)["error"]["code"] == -32602
    assert call("chain_getBlockHash", 0)["result"] == node.genesis
    assert call("chain_getBlockHash", 1)["result"] is None
    first = call("sandbox_setBalance", ALICE_DOT, 2 * DOT)["result"]
    assert call("chain_getBlockHash")["result"] == first == call("chain_getBlockHash", 1)["result"]
    assert call("chain_getHeader")["result"]["number"] == "0x1"
    value = call("state_getStorage", "0x" + ALICE_ACCOUNT_KEY)["result"]
    assert decode_account_info(bytes.fromhex(value[2:])).free == 2 * DOT
    # At the genesis block the account did not exist yet.
    assert call("state_getStorage", "0x" + ALICE_ACCOUNT_KEY, node.genesis)["result"] is None
    assert call("state_getStorage", "0x" + ALICE_ACCOUNT_KEY[:-2])["result"] is None
    assert call("system_properties")["result"] == {
        "ss58Format": 0, "tokenDecimals": 10, "tokenSymbol": "DOT"}


async def test_balance_from_a_node_that_answers_as_polkadot(dot_node: str) -> None:  # noqa: F811
    holder = dot_address(1)
    substrate_fund(dot_node, holder, 12 * DOT + 3456789012)
    async with SubstrateRpcClient("DOT", dot_node, timeout_s=5) as client:
        assert await client.identify() == ChainIdentity(
            "Polkadot", "0x91b171bb158e2d3848fa23a9f1c25182fb8e20313b2c1eb49219da7a70ce90c3")
        balance = await client.get_balance(holder)
        assert balance.balance_minor == 12 * DOT + 3456789012 and balance.address == holder
        account = await client.get_account(holder)
        assert account.providers == 1 and account.flags == 1 << 127
        assert await client.best_block_number() >= 1
    # The node holds it under the published key: a raw query finds it there.
    key = "0x" + SYSTEM_ACCOUNT_PREFIX.hex() + blake2_128_concat(bytes([1]) * 32).hex()
    raw = rpc(dot_node, "state_getStorage", key)
    assert decode_account_info(bytes.fromhex(raw[2:])).free == 12 * DOT + 3456789012


async def test_an_account_without_an_entry_has_nothing(dot_node: str) -> None:  # noqa: F811
    never, reaped = dot_address(2), dot_address(3)
    substrate_fund(dot_node, reaped, 5 * DOT)
    substrate_fund(dot_node, reaped, DOT - 1)  # below the existential deposit: reaped
    key = "0x" + system_account_key(bytes([3]) * 32).hex()
    assert rpc(dot_node, "state_getStorage", key) is None
    async with SubstrateRpcClient("DOT", dot_node, timeout_s=5) as client:
        assert (await client.get_balance(never)).balance_minor == 0
        assert (await client.get_balance(reaped)).balance_minor == 0
        assert await client.get_account(never) == AccountInfo()
        # A Kusama address (or none) is refused before the node is asked.
        assert isinstance(await client.get_balance(ksm_address(2)), InvalidRequest)
        assert isinstance(await client.get_balance("not an address"), InvalidRequest)


async def test_a_local_network_is_accepted_only_where_configured(
        ksm_node: str) -> None:  # noqa: F811
    holder = ksm_address(4)
    substrate_fund(ksm_node, holder, 7 * KSM + 1)
    local = sandbox_substrate.sandbox_genesis("KSM")
    async with SubstrateRpcClient("KSM", ksm_node, timeout_s=5) as client:
        wrong = await client.get_balance(holder)
        assert isinstance(wrong, WrongNetwork) and wrong.code == "wrong_network"
        assert "Kusama Sandbox" in wrong.message and not wrong.retryable
    async with SubstrateRpcClient("KSM", f"{ksm_node}#genesis={local}", timeout_s=5) as client:
        assert client.url == ksm_node  # the fragment stays here
        assert (await client.get_balance(holder)).balance_minor == 7 * KSM + 1
    async with SubstrateRpcClient("KSM", ksm_node, timeout_s=5,
                                  genesis_hash=local.upper().replace("0X", "0x")) as client:
        assert (await client.get_balance(holder)).balance_minor == 7 * KSM + 1


async def test_the_wrong_chain_is_the_wrong_network(
        dot_node: str, tmp_path: Path) -> None:  # noqa: F811
    # A Polkadot node configured as Kusama: its genesis is Polkadot's.
    async with SubstrateRpcClient("KSM", dot_node, timeout_s=5) as client:
        wrong = await client.get_balance(ksm_address(5))
        assert isinstance(wrong, WrongNetwork) and "'Polkadot'" in wrong.message
    # A test network (its own genesis, seeded from the command line) configured as Polkadot.
    other = "0x" + "ab" * 32
    holder = dot_address(6)
    with substrate_node("DOT", tmp_path, "--genesis", other,
                        "--balance", f"{holder}={3 * DOT}") as url:
        async with SubstrateRpcClient("DOT", url, timeout_s=5) as client:
            assert isinstance(await client.get_balance(holder), WrongNetwork)
        async with SubstrateRpcClient("DOT", url, timeout_s=5, genesis_hash=other) as client:
            assert (await client.get_balance(holder)).balance_minor == 3 * DOT


async def test_an_unreachable_node() -> None:
    async with SubstrateRpcClient("DOT", f"http://127.0.0.1:{free_port()}/",
                                  timeout_s=2) as client:
        failure = await client.get_balance(ALICE_DOT)
        assert isinstance(failure, NetworkUnreachable) and failure.retryable


async def test_malformed_answers_are_provider_errors() -> None:
    genesis = next(iter(KNOWN_GENESIS["DOT"]))
    answers: dict[str, object] = {"system_chain": "Polkadot", "chain_getBlockHash": genesis}

    def node(request: httpx.Request) -> httpx.Response:
        import json

        body = json.loads(request.content)
        if body["method"] in answers:
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"],
                                             "result": answers[body["method"]]})
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"],
                                         "error": {"code": -32601,
                                                   "message": "Method not found"}})

    transport = httpx.MockTransport(node)
    for value in ("0x1234", "nothex", 5):
        answers["state_getStorage"] = value
        async with SubstrateRpcClient("DOT", "http://node/", transport=transport) as client:
            assert isinstance(await client.get_balance(ALICE_DOT), ProviderError)
    del answers["state_getStorage"]
    async with SubstrateRpcClient("DOT", "http://node/", transport=transport) as client:
        failure = await client.get_balance(ALICE_DOT)
        assert isinstance(failure, ProviderError) and failure.rpc_code == -32601
    answers["chain_getBlockHash"] = "0x12"
    async with SubstrateRpcClient("DOT", "http://node/", transport=transport) as client:
        assert isinstance(await client.check_network(), ProviderError)
    with pytest.raises(ValueError):
        SubstrateRpcClient("DOT", "http://node/#genesis=0x12")
    with pytest.raises(ValueError):
        SubstrateRpcClient("ETH", "http://node/")
