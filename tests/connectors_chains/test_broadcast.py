"""Broadcast for Bitcoin, TRON and Solana: transactions signed offline with the wallet's own
signing code, relayed by the clients to sandbox nodes running as real processes, which check
them as a node would (the witness signature against the spent coin, the TRON signature against
the owner, the ed25519 signature and the recent blockhash)."""

from __future__ import annotations

import asyncio

from embit.transaction import Transaction

from bankwallet.chains import solana_signing, tron_signing
from bankwallet.chains.btc_psbt import Payment, Utxo, build_psbt, sign_psbt
from bankwallet.chains.derive import derive_keys
from bankwallet.chains.mnemonic import parse_mnemonic
from bankwallet.connectors.chains.base import (
    BroadcastClient,
    FeeTooLow,
    InputsMissingOrSpent,
    InsufficientFunds,
    InvalidTransaction,
    NetworkUnreachable,
    SentTransaction,
    TransactionExpired,
    TxStatus,
)
from bankwallet.connectors.chains.bitcoin import BitcoinCoreClient, btc_to_sat
from bankwallet.connectors.chains.bitcoin import map_rpc_error as map_btc_error
from bankwallet.connectors.chains.solana import SolanaRpcClient
from bankwallet.connectors.chains.solana import map_rpc_error as map_sol_error
from bankwallet.connectors.chains.tron import TronHttpClient, map_return
from tests.chains.vectors import ABANDON_ABOUT
from tests.conftest import free_port
from tests.connectors_chains.nodes import (  # noqa: F401
    btc_node,
    rpc,
    sol_node,
    tron_fund,
    tron_node,
)

ABANDON = parse_mnemonic(ABANDON_ABOUT)
PAY_TO = "bc1qhkfq3zahaqkkzx5mjnamwjsfpq2jk7z00ppggv"
TRON_KEY = bytes.fromhex("2d8f68944bdbfbc0769542fba8fc2d2a3de67393334471624364c7006da2aa54")
TRON_TO = "THTR75o8xXAgCTQqpiot2AFRAjvW1tSbVV"
SOL_TO = "EN2sCsJ1WDV8UFqsiTXHcUPUxQ4juE71eCknHYYMifkd"


def _btc_address(path: str) -> str:
    return derive_keys("BTC", ABANDON, path=path)[0].address


def _fund_btc(url: str, path: str, amount_sat: int) -> Utxo:
    coin = rpc(url, "sandbox_fund", _btc_address(path), amount_sat)
    return Utxo(coin["txid"], coin["vout"], amount_sat, path)


def _signed_btc(coin: Utxo, amount_sat: int = 50_000, fee_sat: int = 1_000) -> tuple[str, str]:
    draft = build_psbt(ABANDON, utxos=[coin], payments=[Payment(PAY_TO, amount_sat)],
                       fee_sat=fee_sat)
    signed = sign_psbt(draft.psbt, ABANDON)
    return signed.raw, signed.txid


async def test_clients_are_broadcast_clients(btc_node: str) -> None:
    for client in (BitcoinCoreClient(btc_node), TronHttpClient(btc_node),
                   SolanaRpcClient(btc_node)):
        assert isinstance(client, BroadcastClient)
        await client.aclose()


# -- Bitcoin ---------------------------------------------------------------------------------


async def test_btc_psbt_broadcast_and_confirmed(btc_node: str) -> None:
    coin = _fund_btc(btc_node, "m/84'/0'/0'/0/0", 100_000)
    raw, txid = _signed_btc(coin)
    async with BitcoinCoreClient(btc_node, timeout_s=5) as client:
        assert (await client.get_balance(_btc_address(coin.path))).balance_minor >= 100_000
        assert await client.send_raw_transaction(raw) == SentTransaction(txid)
        assert await client.send_raw_transaction(raw) == SentTransaction(txid)  # in mempool
        assert (await client.get_receipt(txid)).status is TxStatus.PENDING
        rpc(btc_node, "generatetoaddress", 1, PAY_TO)
        receipt = await client.get_receipt(txid)
        assert receipt.status is TxStatus.CONFIRMED and receipt.confirmations == 1
        assert receipt.block_number == await client.block_count()
        # Sent again once mined: the node says so, and it is the same transaction.
        assert await client.send_raw_transaction(raw) == SentTransaction(txid, True)
        assert (await client.get_balance(PAY_TO)).balance_minor >= 50_000
        assert await client.estimate_fee_rate() >= 1


async def test_btc_tampered_transaction_is_refused(btc_node: str) -> None:
    coin = _fund_btc(btc_node, "m/84'/0'/0'/0/1", 80_000)
    raw, _ = _signed_btc(coin)
    tx = Transaction.parse(bytes.fromhex(raw))
    tx.vout[0].value += 1_000  # pay more than was signed for: the witness no longer matches
    async with BitcoinCoreClient(btc_node, timeout_s=5) as client:
        refused = await client.send_raw_transaction(tx.serialize().hex())
        assert isinstance(refused, InvalidTransaction)
        assert refused.rpc_code == -26 and "mandatory-script-verify-flag-failed" in \
            refused.message
        # A coin the node never saw (or that is spent): -25.
        unknown = Utxo("cd" * 32, 0, 80_000, "m/84'/0'/0'/0/1")
        missing = await client.send_raw_transaction(_signed_btc(unknown)[0])
        assert isinstance(missing, InputsMissingOrSpent) and missing.rpc_code == -25
        # 1 sat/vB is under this node's mempool floor of 2.
        low = await client.send_raw_transaction(_signed_btc(coin, fee_sat=150)[0])
        assert isinstance(low, FeeTooLow) and "mempool min fee not met" in low.message
        garbage = await client.send_raw_transaction("00")
        assert isinstance(garbage, InvalidTransaction)
        # The real payment still goes; a second spend of the same coin conflicts.
        assert isinstance(await client.send_raw_transaction(raw), SentTransaction)
        double = await client.send_raw_transaction(_signed_btc(coin, amount_sat=40_000)[0])
        assert isinstance(double, InputsMissingOrSpent) and "conflict" in double.message


def test_btc_error_mapping() -> None:
    assert isinstance(map_btc_error({"code": -26, "message": "insufficient fee, rejecting "
                                     "replacement"}), FeeTooLow)
    assert isinstance(map_btc_error({"code": -25, "message": "Missing inputs"}),
                      InputsMissingOrSpent)
    assert isinstance(map_btc_error({"code": -22, "message": "TX decode failed"}),
                      InvalidTransaction)
    assert map_btc_error({"code": -28, "message": "Loading block index..."}).retryable
    assert not map_btc_error({"code": -26, "message": "non-final"}).retryable
    assert btc_to_sat(0.00012345) == 12_345
    assert btc_to_sat("21") == 21 * 10**8


# -- TRON ------------------------------------------------------------------------------------


async def _tron_signed(client: TronHttpClient, *, amount_sun: int = 1_500_000,
                       **changes: object) -> tron_signing.SignedTronTransaction:
    block = await client.reference_block()
    tx = {"to": TRON_TO, "amount_sun": amount_sun, "ref_block_bytes": block.ref_block_bytes,
          "ref_block_hash": block.ref_block_hash, "timestamp_ms": block.timestamp_ms,
          "expiration_ms": block.timestamp_ms + 60_000}
    tx.update(changes)
    return tron_signing.sign_transfer(tx, TRON_KEY)


async def test_tron_transfer_broadcast_and_confirmed(tron_node: str) -> None:
    async with TronHttpClient(tron_node, timeout_s=5) as client:
        signed = await _tron_signed(client)
        short = await client.send_raw_transaction(signed.raw_hex)  # never funded yet
        assert isinstance(short, InsufficientFunds) and "no OwnerAccount" in short.message
        tron_fund(tron_node, signed.sender, 10_000_000)
        before = (await client.get_balance(TRON_TO)).balance_minor
        assert await client.send_raw_transaction(signed.raw_hex) == SentTransaction(signed.txid)
        again = await client.send_raw_transaction(signed.raw_hex)
        assert again == SentTransaction(signed.txid, already_known=True)
        receipt = await client.get_receipt(signed.txid)
        assert receipt.status is TxStatus.CONFIRMED and receipt.confirmations >= 1
        assert (await client.get_balance(TRON_TO)).balance_minor == before + 1_500_000
        assert (await client.get_receipt("00" * 32)).status is TxStatus.PENDING
        too_much = await client.send_raw_transaction(
            (await _tron_signed(client, amount_sun=10**12)).raw_hex)
        assert isinstance(too_much, InsufficientFunds)


async def test_tron_tampered_and_stale_transactions_are_refused(tron_node: str) -> None:
    async with TronHttpClient(tron_node, timeout_s=5) as client:
        signed = await _tron_signed(client, amount_sun=1_000_001)
        tron_fund(tron_node, signed.sender, 10_000_000)
        # Another key's signature over the same raw_data: it recovers someone else.
        other = tron_signing.sign_transfer(
            {"to": TRON_TO, "amount_sun": 1, "ref_block_bytes": "0000",
             "ref_block_hash": "00" * 8, "timestamp_ms": 1, "expiration_ms": 2}, b"\x07" * 32)
        forged = signed.raw_hex.replace(signed.signature, other.signature)
        refused = await client.send_raw_transaction(forged)
        assert isinstance(refused, InvalidTransaction) and "SIGERROR" in refused.message
        stale = await _tron_signed(client, ref_block_hash="ff" * 8)
        assert isinstance(await client.send_raw_transaction(stale.raw_hex), TransactionExpired)
        block = await client.reference_block()
        expired = await _tron_signed(client, timestamp_ms=block.timestamp_ms - 120_000,
                                     expiration_ms=block.timestamp_ms - 60_000)
        result = await client.send_raw_transaction(expired.raw_hex)
        assert isinstance(result, TransactionExpired) and "expired" in result.message


def test_tron_return_mapping() -> None:
    hex_message = "Validate signature error".encode().hex()  # broadcasttransaction's shape
    assert "Validate signature error" in map_return("SIGERROR", hex_message).message
    assert isinstance(map_return("BANDWITH_ERROR", "no bandwidth"), InsufficientFunds)
    assert map_return("SERVER_BUSY", "").retryable


# -- Solana ----------------------------------------------------------------------------------


async def _sol_signed(client: SolanaRpcClient, key: bytes, *, lamports: int = 1_000_000,
                      blockhash: str | None = None) -> solana_signing.SignedSolanaTransaction:
    recent = blockhash or (await client.latest_blockhash()).blockhash
    return solana_signing.sign_transfer({"to": SOL_TO, "lamports": lamports,
                                         "recent_blockhash": recent}, key)


async def test_sol_transfer_broadcast_and_confirmed(sol_node: str) -> None:
    key = bytes(range(32))
    async with SolanaRpcClient(sol_node, timeout_s=5) as client:
        signed = await _sol_signed(client, key)
        unfunded = await client.send_raw_transaction(signed.transaction_base64)
        assert isinstance(unfunded, InsufficientFunds) and unfunded.data == "AccountNotFound"
        rpc(sol_node, "requestAirdrop", signed.sender, 2 * 10**9)
        sent = await client.send_raw_transaction(signed.transaction_base64)
        assert sent == SentTransaction(signed.signature)
        again = await client.send_raw_transaction(signed.transaction_base64)
        assert again == SentTransaction(signed.signature, already_known=True)
        receipt = await client.get_receipt(signed.signature)
        assert receipt.status is TxStatus.CONFIRMED and receipt.block_number
        assert (await client.get_balance(SOL_TO)).balance_minor >= 1_000_000
        assert (await client.get_balance(signed.sender)).balance_minor == \
            2 * 10**9 - 1_000_000 - 5_000
        overdraft = await _sol_signed(client, key, lamports=10**12)
        result = await client.send_raw_transaction(overdraft.transaction_base64)
        assert isinstance(result, InsufficientFunds) and "0x1" in result.message


async def test_sol_tampered_and_stale_transactions_are_refused(sol_node: str) -> None:
    key = bytes(range(1, 33))
    async with SolanaRpcClient(sol_node, timeout_s=5) as client:
        signed = await _sol_signed(client, key)
        rpc(sol_node, "requestAirdrop", signed.sender, 10**9)
        import base64

        wire = bytearray(base64.b64decode(signed.transaction_base64))
        wire[-1] ^= 1  # another amount than the one signed
        tampered = await client.send_raw_transaction(base64.b64encode(wire).decode())
        assert isinstance(tampered, InvalidTransaction) and tampered.rpc_code == -32003
        stale = await _sol_signed(client, key, blockhash="11111111111111111111111111111111")
        result = await client.send_raw_transaction(stale.transaction_base64)
        assert isinstance(result, TransactionExpired) and "Blockhash not found" in \
            result.message
        assert isinstance(await client.send_raw_transaction("not base64!"), InvalidTransaction)
        pending = await client.get_receipt(signed.signature)  # never sent
        assert pending.status is TxStatus.PENDING


def test_sol_error_mapping() -> None:
    assert isinstance(map_sol_error({"code": -32002, "message": "x", "data": {
        "err": "InsufficientFundsForFee"}}), InsufficientFunds)
    assert map_sol_error({"code": -32005, "message": "Node is behind"}).retryable
    assert isinstance(map_sol_error({"code": -32002, "message": "x", "data": {
        "err": {"InstructionError": [0, "InvalidAccountData"]}}}), InvalidTransaction)


# -- no node -----------------------------------------------------------------------------------


async def test_unreachable_node_is_a_clear_failure() -> None:
    url = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
    clients = ((BitcoinCoreClient(url, timeout_s=2), PAY_TO),
               (TronHttpClient(url, timeout_s=2), TRON_TO),
               (SolanaRpcClient(url, timeout_s=2), SOL_TO))
    for client, address in clients:
        async with client:
            balance = await asyncio.wait_for(client.get_balance(address), 10)
            assert isinstance(balance, NetworkUnreachable) and balance.retryable
            assert url not in balance.message
    async with BitcoinCoreClient(url, timeout_s=2) as btc:
        coin = Utxo("ab" * 32, 0, 90_000, "m/84'/0'/0'/0/0")
        assert isinstance(await btc.send_raw_transaction(_signed_btc(coin)[0]),
                          NetworkUnreachable)
        # Bytes that are no transaction are refused before anything is sent.
        assert isinstance(await btc.send_raw_transaction("zz"), InvalidTransaction)


async def test_btc_credentials_go_as_basic_auth_never_in_a_message(btc_node: str) -> None:
    from tests.connectors_chains.nodes import BTC_RPC_AUTH

    wrong = btc_node.replace(BTC_RPC_AUTH, "bankwallet:wrong")
    async with BitcoinCoreClient(wrong, timeout_s=5) as client:
        assert "wrong" not in client.url
        refused = await client.block_count()
        assert not isinstance(refused, int) and "401" in refused.message
        assert "wrong" not in refused.message
    async with BitcoinCoreClient(btc_node, timeout_s=5) as client:
        assert BTC_RPC_AUTH not in client.url
        assert isinstance(await client.block_count(), int)
