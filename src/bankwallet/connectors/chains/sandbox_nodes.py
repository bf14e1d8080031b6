"""Sandbox nodes for Bitcoin, TRON, Solana, Aptos and EOS: the subset of each node's API that
the clients (``bitcoin``, ``tron``, ``solana``, ``aptos``, ``eos``) use, served over HTTP as
their own process, validating what they receive as a node would and answering with the node's
own error shapes.

    python -m bankwallet.connectors.chains.sandbox_nodes {btc,tron,sol,apt,eos} --port 18443

- ``btc``: Bitcoin Core JSON-RPC. ``sendrawtransaction`` parses the transaction, looks its
  inputs up in the UTXO set (-25 ``bad-txns-inputs-missingorspent``, -26
  ``txn-mempool-conflict``), checks each P2WPKH witness (key hash and BIP143 signature against
  the spent coin: -26 ``mandatory-script-verify-flag-failed``), the amounts and the fee rate
  (-26 ``min relay fee not met`` / ``mempool min fee not met``), then keeps it in the mempool
  until ``generatetoaddress`` mines it. ``sandbox_fund`` [address, sat] creates a confirmed coin.
- ``tron``: java-tron's ``/wallet/*``. ``broadcasthex`` decodes the protobuf, checks TaPoS
  (the reference block), the expiration, duplicates, that the signature recovers the owner
  address, and the owner's balance; each accepted transaction is packed in a new block.
  ``/sandbox/fund`` {address, amount_sun} credits an account. ``triggerconstantcontract``
  runs ``balanceOf(address)`` of the TRC-20 contracts ``/sandbox/fund_trc20`` {contract,
  address, amount} made ("Smart contract is not exist." for another address).
- ``sol``: Solana JSON-RPC. ``sendTransaction`` decodes a legacy transaction, verifies every
  ed25519 signature over the message (-32003), checks the recent blockhash (-32002
  ``BlockhashNotFound``), the fee payer and System Program transfers, and confirms at once.
  ``requestAirdrop`` funds an account, as on a test validator. ``getTokenAccountsByOwner``
  (jsonParsed, by mint or program) lists SPL token accounts ``sandbox_mintTo`` [owner, mint,
  amount, decimals] made, a new one each time (-32602 "could not find mint" for another).
- ``apt``: an Aptos fullnode's ``/v1``: the ``CoinStore<AptosCoin>`` resource (404
  ``resource_not_found``), the view functions ``0x1::primary_fungible_store::balance`` and
  ``0x1::coin::balance``; ``/sandbox/fund`` {address, octas, store: coin|fa}.
- ``eos``: an Antelope chain API: ``get_info``, ``get_currency_balance``,
  ``get_accounts_by_authorizers`` (404 with ``--history-only``), the history plugin's
  ``get_key_accounts``; ``/sandbox/create_account`` {name, key} and ``/sandbox/issue``
  {account, quantity: "1.0000 EOS"}; fc exceptions as HTTP 500 (``name_type_exception``...).

Everything lives in memory and is forgotten when the process stops. TEST ONLY.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import os
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final

from bankwallet.connectors.chains.varint import read_varint

MAX_REQUEST_BYTES: Final = 1024 * 1024
SAT_PER_BTC: Final = 100_000_000


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data

    def as_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def _dsha(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


# -- Bitcoin Core --------------------------------------------------------------------------------


class BitcoinNode:
    """A one-node regtest-like chain of P2WPKH coins (mainnet addresses, as the wallet uses)."""

    def __init__(self, *, min_relay_fee_rate: int = 1, mempool_min_fee_rate: int = 1,
                 fee_rate: int = 5) -> None:
        self.min_relay_fee_rate = min_relay_fee_rate  # sat/vB
        self.mempool_min_fee_rate = mempool_min_fee_rate
        self.fee_rate = fee_rate  # what estimatesmartfee answers
        self.utxos: dict[tuple[str, int], tuple[int, bytes]] = {}  # confirmed, unspent
        self.spent_by_mempool: dict[tuple[str, int], str] = {}
        self.mempool: dict[str, Any] = {}  # txid → Transaction
        self.confirmed: dict[str, tuple[Any, int]] = {}  # txid → (Transaction, height)
        self.height = 0
        self.block_hashes = [_dsha(b"sandbox genesis").hex()]
        self.methods: dict[str, Callable[[list[Any]], Any]] = {
            "getblockcount": lambda p: self.height,
            "getbestblockhash": lambda p: self.block_hashes[-1],
            "sendrawtransaction": self.send_raw_transaction,
            "getrawtransaction": self.get_raw_transaction,
            "getmempoolentry": self.get_mempool_entry,
            "estimatesmartfee": self.estimate_smart_fee,
            "scantxoutset": self.scan_tx_out_set,
            "generatetoaddress": self.generate_to_address,
            "sandbox_fund": self.fund,
        }

    def handle(self, request: Any) -> dict[str, Any]:
        request_id = request.get("id") if isinstance(request, dict) else None
        try:
            if not isinstance(request, dict) or not isinstance(request.get("method"), str):
                raise RpcError(-32600, "Invalid Request object")
            method = self.methods.get(request["method"])
            if method is None:
                raise RpcError(-32601, "Method not found")
            params = request.get("params") or []
            if not isinstance(params, list):
                raise RpcError(-32602, "Params must be an array")
            return {"result": method(params), "error": None, "id": request_id}
        except RpcError as exc:
            return {"result": None, "error": exc.as_json(), "id": request_id}

    # -- RPCs -----------------------------------------------------------------------------

    def send_raw_transaction(self, params: list[Any]) -> str:
        from embit.transaction import Transaction

        try:
            tx = Transaction.parse(bytes.fromhex(str(params[0])))
        except Exception:
            raise RpcError(-22, "TX decode failed. Make sure the tx has at least one input.")
        txid = tx.txid().hex()
        if txid in self.mempool:
            return txid  # already in the mempool: Core answers its txid again
        if txid in self.confirmed:
            raise RpcError(-27, "Transaction outputs already in utxo set")
        if not tx.vin or not tx.vout:
            raise RpcError(-26, "bad-txns-vin-empty" if not tx.vin else "bad-txns-vout-empty")
        coins = []
        for inp in tx.vin:
            outpoint = (inp.txid.hex(), inp.vout)
            if outpoint in self.spent_by_mempool:
                raise RpcError(-26, "txn-mempool-conflict")
            if outpoint not in self.utxos:
                raise RpcError(-25, "bad-txns-inputs-missingorspent")
            coins.append(self.utxos[outpoint])
        for index, (value, script_pubkey) in enumerate(coins):
            self._verify_p2wpkh(tx, index, value, script_pubkey)
        value_in, value_out = sum(v for v, _ in coins), sum(o.value for o in tx.vout)
        if value_in < value_out:
            raise RpcError(-26, f"bad-txns-in-belowout, value in ({value_in / SAT_PER_BTC:.8f})"
                                f" < value out ({value_out / SAT_PER_BTC:.8f})")
        fee, vsize = value_in - value_out, _vsize(tx)
        if fee < self.min_relay_fee_rate * vsize:
            raise RpcError(-26, f"min relay fee not met, {fee} < {self.min_relay_fee_rate * vsize}")
        if fee < self.mempool_min_fee_rate * vsize:
            raise RpcError(-26, f"mempool min fee not met, {fee} < "
                                f"{self.mempool_min_fee_rate * vsize}")
        for inp in tx.vin:
            self.spent_by_mempool[(inp.txid.hex(), inp.vout)] = txid
        self.mempool[txid] = tx
        return txid

    def _verify_p2wpkh(self, tx: Any, index: int, value: int, script_pubkey: bytes) -> None:
        from embit import ec, script
        from embit.hashes import hash160

        flag = "mandatory-script-verify-flag-failed ({})"
        if len(script_pubkey) != 22 or script_pubkey[:2] != b"\x00\x14":
            raise RpcError(-26, "bad-txns-nonstandard-inputs")
        items = tx.vin[index].witness.items if tx.vin[index].witness else []
        if len(items) != 2:
            raise RpcError(-26, flag.format("Witness program hash mismatch"))
        signature, pubkey = items
        if hash160(pubkey) != script_pubkey[2:]:
            raise RpcError(-26, flag.format("Witness program hash mismatch"))
        if not signature or signature[-1] != 1:  # this node relays SIGHASH_ALL only
            raise RpcError(-26, flag.format("Signature hash type missing or not understood"))
        try:
            key = ec.PublicKey.parse(pubkey)
            sig = ec.Signature.parse(signature[:-1])
        except Exception:
            raise RpcError(-26, flag.format("Non-canonical DER signature")) from None
        code = script.p2pkh_from_p2wpkh(script.Script(script_pubkey))
        if not key.verify(sig, tx.sighash_segwit(index, code, value)):
            raise RpcError(-26, flag.format("Signature must be zero for failed CHECK(MULTI)SIG "
                                            "operation"))

    def get_raw_transaction(self, params: list[Any]) -> Any:
        txid = str(params[0]).lower() if params else ""
        verbose = bool(params[1]) if len(params) > 1 else False
        if txid in self.mempool:
            tx, height = self.mempool[txid], None
        elif txid in self.confirmed:
            tx, height = self.confirmed[txid]
        else:
            raise RpcError(-5, "No such mempool or blockchain transaction. Use gettransaction "
                               "for wallet transactions.")
        raw = tx.serialize().hex()
        if not verbose:
            return raw
        found: dict[str, Any] = {"txid": txid, "hash": txid, "hex": raw, "vsize": _vsize(tx)}
        if height is not None:
            found.update(blockhash=self.block_hashes[height],
                         confirmations=self.height - height + 1)
        return found

    def get_mempool_entry(self, params: list[Any]) -> dict[str, Any]:
        txid = str(params[0]).lower() if params else ""
        if txid not in self.mempool:
            raise RpcError(-5, "Transaction not in mempool")
        return {"vsize": _vsize(self.mempool[txid]), "height": self.height}

    def estimate_smart_fee(self, params: list[Any]) -> dict[str, Any]:
        return {"feerate": self.fee_rate * 1000 / SAT_PER_BTC, "blocks": 2}

    def scan_tx_out_set(self, params: list[Any]) -> dict[str, Any]:
        from embit.script import Script

        if len(params) < 2 or params[0] != "start" or not isinstance(params[1], list):
            raise RpcError(-8, "Invalid action")
        scripts = set()
        for descriptor in params[1]:
            text = str(descriptor)
            if not (text.startswith("addr(") and text.endswith(")")):
                raise RpcError(-5, "this sandbox scans addr(...) descriptors only")
            try:
                scripts.add(Script.from_address(text[5:-1]).data)
            except Exception:
                raise RpcError(-5, f"Invalid address: {text[5:-1]}") from None
        unspents = [{"txid": txid, "vout": vout, "scriptPubKey": spk.hex(),
                     "amount": value / SAT_PER_BTC}
                    for (txid, vout), (value, spk) in self.utxos.items() if spk in scripts]
        total = sum(value for value, spk in self.utxos.values() if spk in scripts)
        return {"success": True, "height": self.height, "unspents": unspents,
                "total_amount": total / SAT_PER_BTC}

    def generate_to_address(self, params: list[Any]) -> list[str]:
        count = int(params[0]) if params else 1
        if not 1 <= count <= 1000:
            raise RpcError(-8, "nblocks must be 1 to 1000")
        for _ in range(count):
            self._mine()
        return self.block_hashes[-count:]

    def fund(self, params: list[Any]) -> dict[str, Any]:
        """A confirmed coin of ``amount`` sat at ``address`` (a coinbase-like transaction)."""
        from embit.script import Script
        from embit.transaction import Transaction, TransactionInput, TransactionOutput

        try:
            address, amount = str(params[0]), int(params[1])
            script_pubkey = Script.from_address(address)
        except Exception:
            raise RpcError(-5, "Invalid address or amount") from None
        if not 0 < amount <= 21_000_000 * SAT_PER_BTC:
            raise RpcError(-3, "Amount out of range")
        tx = Transaction(vin=[TransactionInput(os.urandom(32), 0)],
                         vout=[TransactionOutput(amount, script_pubkey)])
        self._mine(extra=[tx])
        return {"txid": tx.txid().hex(), "vout": 0, "height": self.height}

    def _mine(self, extra: Sequence[Any] = ()) -> None:
        self.height += 1
        self.block_hashes.append(_dsha(self.block_hashes[-1].encode() + os.urandom(8)).hex())
        for tx in [*self.mempool.values(), *extra]:
            txid = tx.txid().hex()
            self.confirmed[txid] = (tx, self.height)
            for inp in tx.vin:
                self.utxos.pop((inp.txid.hex(), inp.vout), None)
                self.spent_by_mempool.pop((inp.txid.hex(), inp.vout), None)
            for vout, out in enumerate(tx.vout):
                self.utxos[(txid, vout)] = (out.value, out.script_pubkey.data)
        self.mempool.clear()


def _vsize(tx: Any) -> int:
    """Virtual size: weight / 4, rounded up (weight = 3 × size without witness + size)."""
    from embit.transaction import Transaction

    total = len(tx.serialize())
    stripped = len(Transaction(tx.version, [type(i)(i.txid, i.vout, i.script_sig, i.sequence)
                                            for i in tx.vin], tx.vout, tx.locktime).serialize())
    return (3 * stripped + total + 3) // 4


# -- TRON ----------------------------------------------------------------------------------------

TRON_BLOCK_MS: Final = 3000
TRON_TRANSFER_TYPE: Final = 1
TRON_MAX_EXPIRATION_MS: Final = 24 * 3600 * 1000


class TronNode:
    """A TRON chain of TRX transfers; a block per accepted transaction."""

    def __init__(self) -> None:
        self.balances: dict[bytes, int] = {}  # 21-byte address → sun
        self.blocks: list[tuple[int, bytes, int]] = []  # (number, id, timestamp ms)
        self.txs: dict[str, dict[str, Any]] = {}  # txid → info
        self.trc20: dict[bytes, dict[bytes, int]] = {}  # contract → holder → base units
        self._new_block()

    def _new_block(self) -> None:
        number = len(self.blocks)
        parent = self.blocks[-1][1] if self.blocks else bytes(32)
        timestamp = max(int(time.time() * 1000),
                        (self.blocks[-1][2] + TRON_BLOCK_MS) if self.blocks else 0)
        digest = hashlib.sha256(parent + number.to_bytes(8, "big")
                                + timestamp.to_bytes(8, "big")).digest()
        self.blocks.append((number, number.to_bytes(8, "big") + digest[8:], timestamp))

    def now_block(self, body: dict[str, Any]) -> dict[str, Any]:
        number, block_id, timestamp = self.blocks[-1]
        parent = self.blocks[-2][1] if len(self.blocks) > 1 else bytes(32)
        return {"blockID": block_id.hex(), "block_header": {"raw_data": {
            "number": number, "timestamp": timestamp, "parentHash": parent.hex(),
            "version": 30}}}

    def get_account(self, body: dict[str, Any]) -> dict[str, Any]:
        address = _tron_address(body.get("address"), bool(body.get("visible")))
        if address is None or address not in self.balances:
            return {}
        account: dict[str, Any] = {"address": _tron_base58(address) if body.get("visible")
                                   else address.hex()}
        if self.balances[address]:
            account["balance"] = self.balances[address]
        return account

    def transaction_info(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.txs.get(str(body.get("value", "")).lower(), {}))

    def fund(self, body: dict[str, Any]) -> dict[str, Any]:
        address = _tron_address(body.get("address"), True)
        amount = body.get("amount_sun")
        if address is None or not isinstance(amount, int) or not 0 < amount < 2**62:
            return {"Error": "sandbox fund: give address (T...) and amount_sun"}
        self.balances[address] = self.balances.get(address, 0) + amount
        self._new_block()
        return {"result": True, "balance": self.balances[address]}

    def fund_trc20(self, body: dict[str, Any]) -> dict[str, Any]:
        """Deploys (the first time) a TRC-20 contract at ``contract`` and credits ``amount``
        base units to ``address``, both base58."""
        contract = _tron_address(body.get("contract"), True)
        address = _tron_address(body.get("address"), True)
        amount = body.get("amount")
        if contract is None or address is None or not isinstance(amount, int) \
                or not 0 < amount < 2**255:
            return {"Error": "sandbox fund_trc20: give contract, address (T...) and amount"}
        holders = self.trc20.setdefault(contract, {})
        holders[address] = holders.get(address, 0) + amount
        self._new_block()
        return {"result": True, "balance": holders[address]}

    def trigger_constant_contract(self, body: dict[str, Any]) -> dict[str, Any]:
        """A constant call, as java-tron runs it: ``balanceOf(address)`` of a TRC-20 contract
        this sandbox holds; another contract is "not exist", another function reverts."""
        visible = bool(body.get("visible"))

        def failed(code: str, message: str) -> dict[str, Any]:
            return {"result": {"code": code, "message": message.encode().hex()},
                    "transaction": {}}

        owner = _tron_address(body.get("owner_address"), visible)
        contract = _tron_address(body.get("contract_address"), visible)
        if owner is None or contract is None:
            return failed("OTHER_ERROR", "Invalid ownerAddress or contractAddress")
        if contract not in self.trc20:
            return failed("CONTRACT_VALIDATE_ERROR", "Smart contract is not exist.")
        selector, parameter = body.get("function_selector"), str(body.get("parameter") or "")
        try:
            argument = bytes.fromhex(parameter)
        except ValueError:
            return {"Error": "class java.lang.IllegalArgumentException : parameter is not hex"}
        ref_block = (self.blocks[-1][0] & 0xFFFF).to_bytes(2, "big").hex()
        done: dict[str, Any] = {"result": {"result": True}, "energy_used": 1019, "transaction": {
            "ret": [{}], "raw_data": {"contract": [{"type": "TriggerSmartContract"}],
                                     "ref_block_bytes": ref_block}}}
        if selector != "balanceOf(address)" or len(argument) != 32 or any(argument[:12]):
            done["transaction"]["ret"] = [{"ret": "FAILED"}]
            done["result"] = {"result": True, "message": b"REVERT opcode executed".hex()}
            done["constant_result"] = [""]
            return done
        held = self.trc20[contract].get(b"\x41" + argument[12:], 0)
        done["constant_result"] = [held.to_bytes(32, "big").hex()]
        return done

    def broadcast_hex(self, body: dict[str, Any]) -> dict[str, Any]:
        from bankwallet.connectors.chains.tron import protobuf_fields

        try:
            data = bytes.fromhex(str(body.get("transaction", "")))
        except ValueError:
            return {"Error": "class java.lang.IllegalArgumentException : not hex"}
        fields = protobuf_fields(data)
        raw = next((v for n, v in fields or () if n == 1 and isinstance(v, bytes)), None)
        if raw is None:
            return {"Error": "class com.google.protobuf.InvalidProtocolBufferException : "
                             "Protocol message had invalid UTF-8."}
        txid = hashlib.sha256(raw).hexdigest()
        signatures = [v for n, v in fields or () if n == 2 and isinstance(v, bytes)]

        def refuse(code: str, message: str) -> dict[str, Any]:
            return {"result": False, "code": code, "message": message, "txid": txid,
                    "transaction": "{}"}

        try:
            tx = _tron_transfer(raw)
        except ValueError as exc:
            return refuse("CONTRACT_VALIDATE_ERROR", f"Contract validate error : {exc}")
        if not self._tapos_ok(tx["ref_block_bytes"], tx["ref_block_hash"]):
            return refuse("TAPOS_ERROR", "Tapos check error")
        head_time = self.blocks[-1][2]
        if tx["expiration"] <= head_time:
            return refuse("TRANSACTION_EXPIRATION_ERROR", "Transaction expired")
        if tx["expiration"] > head_time + TRON_MAX_EXPIRATION_MS:
            return refuse("TRANSACTION_EXPIRATION_ERROR",
                          "Transaction expiration time is too long")
        if txid in self.txs:
            return refuse("DUP_TRANSACTION_ERROR", "Dup transaction")
        signer = _tron_signer(raw, signatures[0]) if len(signatures) == 1 else None
        if signer != tx["owner"]:
            return refuse("SIGERROR", "Validate signature error: "
                          + ("sig error" if signer is None else
                             f"{_tron_base58(signer)} is signed by another key, not the owner "
                             f"{_tron_base58(tx['owner'])}"))
        if tx["owner"] == tx["to"]:
            return refuse("CONTRACT_VALIDATE_ERROR",
                          "Contract validate error : Cannot transfer TRX to yourself.")
        if tx["owner"] not in self.balances:
            return refuse("CONTRACT_VALIDATE_ERROR", "Contract validate error : Validate "
                          "TransferContract error, no OwnerAccount.")
        if self.balances[tx["owner"]] < tx["amount"]:
            return refuse("CONTRACT_VALIDATE_ERROR", "Contract validate error : Validate "
                          "TransferContract error, balance is not sufficient.")
        self.balances[tx["owner"]] -= tx["amount"]
        self.balances[tx["to"]] = self.balances.get(tx["to"], 0) + tx["amount"]
        self._new_block()
        number, _, timestamp = self.blocks[-1]
        self.txs[txid] = {"id": txid, "blockNumber": number, "blockTimeStamp": timestamp,
                          "contractResult": [""], "receipt": {"net_usage": len(data) + 64}}
        return {"result": True, "code": "SUCCESS", "message": "", "txid": txid,
                "transaction": "{}"}

    def _tapos_ok(self, ref_bytes: bytes, ref_hash: bytes) -> bool:
        return any((number & 0xFFFF).to_bytes(2, "big") == ref_bytes
                   and block_id[8:16] == ref_hash for number, block_id, _ in self.blocks[-65536:])


def _tron_transfer(raw: bytes) -> dict[str, Any]:
    from bankwallet.connectors.chains.tron import protobuf_fields

    def fields_of(data: bytes) -> dict[int, Any]:
        parsed = protobuf_fields(data)
        if parsed is None:
            raise ValueError("malformed protobuf")
        return dict(parsed)

    top = fields_of(raw)
    contract = fields_of(top.get(11, b""))
    if contract.get(1, 0) != TRON_TRANSFER_TYPE:
        raise ValueError("this sandbox accepts TransferContract only")
    parameter = fields_of(contract.get(2, b""))
    if parameter.get(1) != b"type.googleapis.com/protocol.TransferContract":
        raise ValueError("parameter is not a TransferContract")
    transfer = fields_of(parameter.get(2, b""))
    owner, to, amount = transfer.get(1, b""), transfer.get(2, b""), transfer.get(3, 0)
    if len(owner) != 21 or len(to) != 21 or owner[0] != 0x41 or to[0] != 0x41:
        raise ValueError("Invalid ownerAddress or toAddress")
    if amount <= 0:
        raise ValueError("Amount must be greater than 0.")
    return {"ref_block_bytes": top.get(1, b""), "ref_block_hash": top.get(4, b""),
            "expiration": top.get(8, 0), "owner": owner, "to": to, "amount": amount}


def _tron_signer(raw: bytes, signature: bytes) -> bytes | None:
    import coincurve

    from bankwallet.chains.tron_signing import tron_address_bytes

    if len(signature) != 65:
        return None
    recovery = signature[64] - 27 if signature[64] >= 27 else signature[64]
    try:
        key = coincurve.PublicKey.from_signature_and_message(
            signature[:64] + bytes([recovery]), hashlib.sha256(raw).digest(), hasher=None)
    except Exception:
        return None
    return tron_address_bytes(key.format(compressed=False))


def _tron_address(value: Any, visible: bool) -> bytes | None:
    from bip_utils import Base58Decoder

    try:
        raw = Base58Decoder.CheckDecode(str(value)) if visible else bytes.fromhex(str(value))
    except Exception:
        return None
    return raw if len(raw) == 21 and raw[0] == 0x41 else None


def _tron_base58(address: bytes) -> str:
    from bip_utils import Base58Encoder

    return Base58Encoder.CheckEncode(address)


# -- Solana --------------------------------------------------------------------------------------

SOL_FEE_LAMPORTS: Final = 5000  # per signature
SOL_RECENT_BLOCKHASHES: Final = 150
SOL_FINALIZED_AFTER: Final = 32
SYSTEM_PROGRAM: Final = bytes(32)
SPL_TOKEN_PROGRAM: Final = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"


def format_minor(amount: int, decimals: int) -> str:
    """Base units as a decimal string without trailing zeros: (1500, 3) → "1.5"."""
    whole, part = divmod(amount, 10**decimals)
    fraction = str(part).rjust(decimals, "0").rstrip("0") if decimals else ""
    return f"{whole}.{fraction}" if fraction else str(whole)


class SolanaNode:
    """A Solana cluster of System Program transfers; every slot makes a new blockhash."""

    def __init__(self) -> None:
        self.slot = 0
        self.balances: dict[bytes, int] = {}
        self.blockhashes: deque[bytes] = deque(maxlen=SOL_RECENT_BLOCKHASHES)
        self.signatures: dict[bytes, tuple[int, Any]] = {}  # signature → (slot, err)
        self.mints: dict[bytes, int] = {}  # SPL mint → decimals
        # token account → (owner, mint, amount in base units)
        self.token_accounts: dict[bytes, tuple[bytes, bytes, int]] = {}
        self._next_slot()
        self.methods: dict[str, Callable[[list[Any]], Any]] = {
            "getHealth": lambda p: "ok",
            "getTokenAccountsByOwner": self.token_accounts_by_owner,
            "sandbox_mintTo": self.mint_to,
            "getSlot": lambda p: self.slot,
            "getBlockHeight": lambda p: self.slot,
            "getLatestBlockhash": self.latest_blockhash,
            "getBalance": self.get_balance,
            "sendTransaction": self.send_transaction,
            "getSignatureStatuses": self.signature_statuses,
            "requestAirdrop": self.request_airdrop,
        }

    def _next_slot(self) -> None:
        self.slot += 1
        self.blockhashes.append(hashlib.sha256(b"sandbox slot %d" % self.slot
                                               + os.urandom(8)).digest())

    def _context(self, value: Any) -> dict[str, Any]:
        return {"context": {"apiVersion": "2.0.0-sandbox", "slot": self.slot}, "value": value}

    def handle(self, request: Any) -> dict[str, Any]:
        request_id = request.get("id") if isinstance(request, dict) else None
        try:
            if not isinstance(request, dict) or not isinstance(request.get("method"), str):
                raise RpcError(-32600, "Invalid request")
            method = self.methods.get(request["method"])
            if method is None:
                raise RpcError(-32601, "Method not found")
            params = request.get("params") or []
            if not isinstance(params, list):
                raise RpcError(-32602, "Invalid params: expected an array")
            return {"jsonrpc": "2.0", "result": method(params), "id": request_id}
        except RpcError as exc:
            return {"jsonrpc": "2.0", "error": exc.as_json(), "id": request_id}

    def latest_blockhash(self, params: list[Any]) -> dict[str, Any]:
        return self._context({"blockhash": _b58(self.blockhashes[-1]),
                              "lastValidBlockHeight": self.slot + SOL_RECENT_BLOCKHASHES})

    def get_balance(self, params: list[Any]) -> dict[str, Any]:
        return self._context(self.balances.get(_sol_pubkey(params[0] if params else ""), 0))

    def request_airdrop(self, params: list[Any]) -> str:
        key = _sol_pubkey(params[0] if params else "")
        lamports = params[1] if len(params) > 1 else None
        if not isinstance(lamports, int) or not 0 < lamports <= 10**18:
            raise RpcError(-32602, "Invalid params: lamports")
        self.balances[key] = self.balances.get(key, 0) + lamports
        signature = os.urandom(64)
        self._next_slot()
        self.signatures[signature] = (self.slot, None)
        return _b58(signature)

    def mint_to(self, params: list[Any]) -> str:
        """[owner, mint, amount, decimals]: a new token account of ``owner`` holding
        ``amount`` base units of ``mint`` (created the first time with ``decimals``)."""
        owner, mint = (_sol_pubkey(params[i] if len(params) > i else "") for i in (0, 1))
        amount = params[2] if len(params) > 2 else None
        decimals = params[3] if len(params) > 3 else 6
        if not isinstance(amount, int) or not 0 < amount < 2**64 \
                or not isinstance(decimals, int) or not 0 <= decimals <= 18:
            raise RpcError(-32602, "Invalid params: amount or decimals")
        if self.mints.setdefault(mint, decimals) != decimals:
            raise RpcError(-32602, "Invalid params: the mint has other decimals")
        account = os.urandom(32)
        self.token_accounts[account] = (owner, mint, amount)
        self._next_slot()
        return _b58(account)

    def token_accounts_by_owner(self, params: list[Any]) -> dict[str, Any]:
        """jsonParsed token accounts of an owner, filtered by ``mint`` or ``programId``."""
        owner = _sol_pubkey(params[0] if params else "")
        selector = params[1] if len(params) > 1 and isinstance(params[1], dict) else None
        config = params[2] if len(params) > 2 and isinstance(params[2], dict) else {}
        if selector is None or len(selector) != 1 or not {"mint", "programId"} >= set(selector):
            raise RpcError(-32602, "Invalid params: expected a mint or programId filter")
        if config.get("encoding") != "jsonParsed":
            raise RpcError(-32602, "Invalid params: this sandbox answers jsonParsed only")
        if "mint" in selector:
            mint: bytes | None = _sol_pubkey(selector["mint"])
            if mint not in self.mints:
                raise RpcError(-32602, "Invalid param: could not find mint")
        else:
            if selector["programId"] != SPL_TOKEN_PROGRAM:
                raise RpcError(-32602, "Invalid param: unrecognized Token program id")
            mint = None
        value = []
        for account, (holder, held_mint, amount) in self.token_accounts.items():
            if holder != owner or (mint is not None and held_mint != mint):
                continue
            decimals = self.mints[held_mint]
            ui = amount / 10**decimals
            value.append({"pubkey": _b58(account), "account": {
                "data": {"program": "spl-token", "space": 165, "parsed": {
                    "type": "account", "info": {
                        "isNative": False, "mint": _b58(held_mint), "owner": _b58(holder),
                        "state": "initialized", "tokenAmount": {
                            "amount": str(amount), "decimals": decimals, "uiAmount": ui,
                            "uiAmountString": format_minor(amount, decimals)}}}},
                "executable": False, "lamports": 2039280, "owner": SPL_TOKEN_PROGRAM,
                "rentEpoch": 18446744073709551615, "space": 165}})
        return self._context(value)

    def signature_statuses(self, params: list[Any]) -> dict[str, Any]:
        from bip_utils import Base58Decoder

        wanted = params[0] if params and isinstance(params[0], list) else []
        if len(wanted) > 256:
            raise RpcError(-32602, "Too many inputs provided; max 256")
        statuses: list[Any] = []
        for text in wanted:
            try:
                found = self.signatures.get(Base58Decoder.Decode(str(text)))
            except Exception:
                raise RpcError(-32602, "Invalid param: Invalid") from None
            if found is None:
                statuses.append(None)
                continue
            slot, err = found
            depth = self.slot - slot
            final = depth >= SOL_FINALIZED_AFTER
            statuses.append({"slot": slot, "confirmations": None if final else depth,
                             "err": err, "status": {"Ok": None} if err is None else {"Err": err},
                             "confirmationStatus": "finalized" if final else "confirmed"})
        return self._context(statuses)

    def send_transaction(self, params: list[Any]) -> str:
        from bip_utils import Base58Decoder
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        config = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
        encoding = config.get("encoding", "base58")
        try:
            text = str(params[0])
            wire = (base64.b64decode(text, validate=True) if encoding == "base64"
                    else Base58Decoder.Decode(text))
        except (IndexError, binascii.Error, ValueError):
            raise RpcError(-32602, f"invalid transaction: invalid {encoding} encoding") from None
        if len(wire) > 1232:
            raise RpcError(-32602, f"base64 encoded solana_sdk::transaction::versioned::"
                                   f"VersionedTransaction too large: {len(wire)} bytes "
                                   "(max: encoded/raw 1644/1232)")
        try:
            signatures, message, parsed = _sol_parse(wire)
        except (IndexError, ValueError) as exc:
            raise RpcError(-32602, "failed to deserialize solana_sdk::transaction::versioned::"
                                   f"VersionedTransaction: {exc}") from None
        keys = parsed["keys"]
        for signature, key in zip(signatures, keys, strict=False):
            try:
                Ed25519PublicKey.from_public_bytes(key).verify(signature, message)
            except (InvalidSignature, ValueError):
                raise RpcError(-32003, "Transaction signature verification failure") from None

        def preflight(err: Any, words: str, logs: Sequence[str] = ()) -> RpcError:
            return RpcError(-32002, f"Transaction simulation failed: {words}", {
                "accounts": None, "err": err, "innerInstructions": None, "logs": list(logs),
                "replacementBlockhash": None, "returnData": None, "unitsConsumed": 0})

        if parsed["blockhash"] not in self.blockhashes:
            raise preflight("BlockhashNotFound", "Blockhash not found")
        if signatures[0] in self.signatures:
            raise preflight("AlreadyProcessed", "This transaction has already been processed")
        payer, fee = keys[0], SOL_FEE_LAMPORTS * len(signatures)
        if payer not in self.balances:
            raise preflight("AccountNotFound", "Attempt to debit an account but found no "
                                               "record of a prior credit.")
        balances = dict(self.balances)
        if balances[payer] < fee:
            raise preflight("InsufficientFundsForFee", "Insufficient funds for fee")
        balances[payer] -= fee
        system = "Program 11111111111111111111111111111111"
        for index, (program, accounts, data) in enumerate(parsed["instructions"]):
            if keys[program] != SYSTEM_PROGRAM or len(data) != 12 or data[:4] != b"\x02\0\0\0":
                raise preflight({"InstructionError": [index, "InvalidInstructionData"]},
                                f"Error processing Instruction {index}: invalid instruction "
                                "data")
            source, target = keys[accounts[0]], keys[accounts[1]]
            if accounts[0] >= parsed["signed"]:
                raise preflight({"InstructionError": [index, "MissingRequiredSignature"]},
                                f"Error processing Instruction {index}: missing required "
                                "signature for instruction")
            lamports = int.from_bytes(data[4:], "little")
            if balances.get(source, 0) < lamports:
                raise preflight(
                    {"InstructionError": [index, {"Custom": 1}]},
                    f"Error processing Instruction {index}: custom program error: 0x1",
                    [f"{system} invoke [1]", f"Transfer: insufficient lamports "
                     f"{balances.get(source, 0)}, need {lamports}",
                     f"{system} failed: custom program error: 0x1"])
            balances[source] -= lamports
            balances[target] = balances.get(target, 0) + lamports
        self.balances = balances
        self._next_slot()
        self.signatures[signatures[0]] = (self.slot, None)
        return _b58(signatures[0])


def _sol_shortvec(data: bytes, at: int) -> tuple[int, int]:
    return read_varint(data, at, max_bytes=3)


def _sol_parse(wire: bytes) -> tuple[list[bytes], bytes, dict[str, Any]]:
    count, at = _sol_shortvec(wire, 0)
    signatures = [wire[at + 64 * i:at + 64 * (i + 1)] for i in range(count)]
    at += 64 * count
    message = wire[at:]
    if not message or message[0] & 0x80:
        raise ValueError("this sandbox takes legacy messages only")
    required, _, _ = message[0], message[1], message[2]
    if required != count or count == 0:
        raise ValueError("signature count does not match the message header")
    n_keys, pos = _sol_shortvec(message, 3)
    keys = [message[pos + 32 * i:pos + 32 * (i + 1)] for i in range(n_keys)]
    pos += 32 * n_keys
    blockhash = message[pos:pos + 32]
    pos += 32
    n_instructions, pos = _sol_shortvec(message, pos)
    instructions = []
    for _ in range(n_instructions):
        program = message[pos]
        n_accounts, pos = _sol_shortvec(message, pos + 1)
        accounts = list(message[pos:pos + n_accounts])
        pos += n_accounts
        n_data, pos = _sol_shortvec(message, pos)
        data = message[pos:pos + n_data]
        pos += n_data
        if program >= n_keys or any(a >= n_keys for a in accounts) or len(accounts) < 2:
            raise ValueError("account index out of range")
        instructions.append((program, accounts, data))
    if pos != len(message) or len(blockhash) != 32 or any(len(k) != 32 for k in keys):
        raise ValueError("io error: unexpected end of file")
    return signatures, message, {"keys": keys, "blockhash": blockhash,
                                 "instructions": instructions, "signed": required}


def _sol_pubkey(value: Any) -> bytes:
    from bip_utils import Base58Decoder

    try:
        key = Base58Decoder.Decode(str(value))
    except Exception:
        key = b""
    if len(key) != 32:
        raise RpcError(-32602, "Invalid param: Invalid")
    return key


def _b58(data: bytes) -> str:
    from bip_utils import Base58Encoder

    return Base58Encoder.Encode(data)


# -- Aptos ---------------------------------------------------------------------------------------

APT_COIN_STORE: Final = "0x1::coin::CoinStore<0x1::aptos_coin::AptosCoin>"
APT_CHAIN_ID: Final = 4  # a local testnet's chain id


class AptosApiError(Exception):
    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message

    def as_json(self) -> dict[str, Any]:
        return {"message": self.message, "error_code": self.error_code, "vm_error_code": None}


class AptosNode:
    """An Aptos fullnode's REST API for APT balances: the legacy ``CoinStore`` resource and
    the primary fungible store of APT (metadata ``0xa``), funded through ``/sandbox/fund``."""

    def __init__(self) -> None:
        self.version = 1
        self.coin_store: dict[str, int] = {}  # long address → octas
        self.fa_store: dict[str, int] = {}

    def ledger_info(self) -> dict[str, Any]:
        return {"chain_id": APT_CHAIN_ID, "epoch": "1", "ledger_version": str(self.version),
                "oldest_ledger_version": "0", "block_height": str(self.version),
                "oldest_block_height": "0", "node_role": "full_node",
                "ledger_timestamp": str(int(time.time() * 1_000_000)), "git_hash": "sandbox"}

    def resource(self, address: str, resource_type: str) -> dict[str, Any]:
        owner = _apt_address(address)
        if not re.match(r"^0x[0-9a-fA-F]+::\w+::\w+(<.+>)?$", resource_type):
            raise AptosApiError(400, "invalid_input", f"Invalid struct tag: {resource_type}")
        if resource_type != APT_COIN_STORE or owner not in self.coin_store:
            raise AptosApiError(404, "resource_not_found",
                                f"Resource not found by Address({owner}), Struct tag"
                                f"({resource_type}) and Ledger version({self.version})")
        return {"type": APT_COIN_STORE, "data": {
            "coin": {"value": str(self.coin_store[owner])}, "frozen": False,
            "deposit_events": {"counter": "1", "guid": {"id": {
                "addr": owner, "creation_num": "2"}}},
            "withdraw_events": {"counter": "0", "guid": {"id": {
                "addr": owner, "creation_num": "3"}}}}}

    def view(self, body: Any) -> list[Any]:
        if not isinstance(body, dict):
            raise AptosApiError(400, "invalid_input", "Failed to parse request body")
        function, types = body.get("function"), body.get("type_arguments")
        arguments = body.get("arguments")
        if not isinstance(types, list) or not isinstance(arguments, list):
            raise AptosApiError(400, "invalid_input", "type_arguments and arguments are lists")
        if function == "0x1::primary_fungible_store::balance":
            if types != ["0x1::fungible_asset::Metadata"] or len(arguments) != 2:
                raise AptosApiError(400, "invalid_input", "Wrong type arguments or arguments")
            owner, metadata = _apt_address(arguments[0]), _apt_address(arguments[1])
            held = self.fa_store.get(owner, 0) if metadata == _apt_address("0xa") else 0
            return [str(held)]
        if function == "0x1::coin::balance":
            if types != ["0x1::aptos_coin::AptosCoin"] or len(arguments) != 1:
                raise AptosApiError(400, "invalid_input", "Wrong type arguments or arguments")
            owner = _apt_address(arguments[0])
            return [str(self.coin_store.get(owner, 0) + self.fa_store.get(owner, 0))]
        raise AptosApiError(400, "invalid_input",
                            f"Function {str(function)[:100]} not found (sandbox)")

    def fund(self, body: Any) -> dict[str, Any]:
        """{address, octas, store: "coin" (the CoinStore, default) or "fa"}."""
        if not isinstance(body, dict):
            raise AptosApiError(400, "invalid_input", "give address, octas and store")
        owner = _apt_address(body.get("address"))
        octas, store = body.get("octas"), body.get("store", "coin")
        if not isinstance(octas, int) or not 0 < octas < 2**64 or store not in ("coin", "fa"):
            raise AptosApiError(400, "invalid_input", "give address, octas and store")
        balances = self.coin_store if store == "coin" else self.fa_store
        balances[owner] = balances.get(owner, 0) + octas
        self.version += 1
        return {"result": True, "balance": balances[owner]}


def _apt_address(value: Any) -> str:
    text = str(value)
    if not re.match(r"^0x[0-9a-fA-F]{1,64}$", text):
        raise AptosApiError(400, "invalid_input", f"Invalid address: {text[:80]}")
    return "0x" + text[2:].lower().rjust(64, "0")


# -- EOS -----------------------------------------------------------------------------------------

EOS_ACCOUNT: Final = re.compile(r"^[a-z1-5.]{0,11}[a-z1-5]$|^[a-z1-5.]{12}[a-j1-5]$")
EOS_CHAIN_ID: Final = hashlib.sha256(b"bankwallet sandbox eos").hexdigest()


class EosApiError(Exception):
    """An fc exception, as an Antelope node answers it (HTTP 500 unless said otherwise)."""

    def __init__(self, code: int, name: str, what: str, message: str,
                 status: int = 500) -> None:
        super().__init__(message)
        self.code, self.name, self.what, self.message = code, name, what, message
        self.status = status

    def as_json(self) -> dict[str, Any]:
        return {"code": self.status, "message": "Internal Service Error"
                if self.status == 500 else "Not Found", "error": {
                    "code": self.code, "name": self.name, "what": self.what,
                    "details": [{"message": self.message, "file": "sandbox",
                                 "line_number": 1, "method": "sandbox"}]}}


class EosNode:
    """An Antelope chain API for EOS balances: accounts (a name and the keys of its owner and
    active permissions) made with ``/sandbox/create_account``, EOS issued with
    ``/sandbox/issue``. ``history_only``: an older node without ``get_accounts_by_authorizers``
    (the history plugin's ``get_key_accounts`` answers instead)."""

    def __init__(self, *, history_only: bool = False) -> None:
        self.history_only = history_only
        self.head = 1
        self.accounts: dict[str, bytes] = {}  # name → its (33-byte) key
        self.balances: dict[str, int] = {}  # name → 10**-4 EOS

    def get_info(self, body: Any) -> dict[str, Any]:
        return {"server_version": "sandbox", "chain_id": EOS_CHAIN_ID,
                "head_block_num": self.head, "last_irreversible_block_num": self.head,
                "head_block_id": self.head.to_bytes(4, "big").hex() + EOS_CHAIN_ID[8:],
                "head_block_time": time.strftime("%Y-%m-%dT%H:%M:%S.000", time.gmtime()),
                "head_block_producer": "eosio", "server_version_string": "v5.0.0-sandbox"}

    def currency_balance(self, body: Any) -> list[str]:
        body = body if isinstance(body, dict) else {}
        code, account = _eos_name(body.get("code")), _eos_name(body.get("account"))
        symbol = body.get("symbol")
        if code != "eosio.token":
            raise EosApiError(3060002, "account_query_exception", "Account Query Exception",
                              f"Fail to retrieve account for {code}")
        if symbol is not None and (not isinstance(symbol, str)
                                   or not re.match(r"^[A-Z]{1,7}$", symbol)):
            raise EosApiError(3010004, "symbol_type_exception", "Invalid symbol",
                              f"Invalid symbol: {str(symbol)[:20]}")
        held = self.balances.get(account)
        if held is None or symbol not in (None, "EOS"):
            return []
        whole, part = divmod(held, 10**4)
        return [f"{whole}.{part:04d} EOS"]

    def accounts_by_authorizers(self, body: Any) -> dict[str, Any]:
        from bankwallet.chains.derive import eos_public_key_k1

        if self.history_only:
            raise EosApiError(3100002, "unknown_block_exception", "Unknown endpoint",
                              "Unknown Endpoint", status=404)
        body = body if isinstance(body, dict) else {}
        keys = [_eos_key(k) for k in body.get("keys") or []]
        found = []
        for name, key in sorted(self.accounts.items()):
            if key in keys:
                for permission in ("active", "owner"):
                    found.append({"account_name": name, "permission_name": permission,
                                  "authorizing_key": eos_public_key_k1(key), "weight": 1,
                                  "threshold": 1})
        return {"accounts": found}

    def key_accounts(self, body: Any) -> dict[str, Any]:
        key = _eos_key(body.get("public_key") if isinstance(body, dict) else None)
        return {"account_names": sorted(n for n, k in self.accounts.items() if k == key)}

    def create_account(self, body: Any) -> dict[str, Any]:
        body = body if isinstance(body, dict) else {}
        name, key = _eos_name(body.get("name")), _eos_key(body.get("key"))
        if name in self.accounts:
            raise EosApiError(3050001, "account_name_exists_exception",
                              "Account name already exists", f"account {name} exists")
        self.accounts[name] = key
        self.head += 1
        return {"result": True, "account": name}

    def issue(self, body: Any) -> dict[str, Any]:
        """{account, quantity: "1.2345 EOS"}: tokens from eosio.token to an account."""
        body = body if isinstance(body, dict) else {}
        account = _eos_name(body.get("account"))
        match = re.match(r"^([0-9]+)\.([0-9]{4}) EOS$", str(body.get("quantity", "")))
        if account not in self.accounts or match is None:
            raise EosApiError(3050003, "eosio_assert_message_exception",
                              "eosio_assert_message assertion failure",
                              "assertion failure with message: to account does not exist "
                              "or the quantity is not x.xxxx EOS")
        amount = int(match.group(1)) * 10**4 + int(match.group(2))
        self.balances[account] = self.balances.get(account, 0) + amount
        self.head += 1
        return {"result": True, "balance": self.balances[account]}


def _eos_name(value: Any) -> str:
    text = str(value or "")
    if not EOS_ACCOUNT.match(text):
        raise EosApiError(3010001, "name_type_exception", "Invalid name",
                          f"Name not properly normalized (name: {text[:20]})")
    return text


def _eos_key(value: Any) -> bytes:
    from bankwallet.chains.addresses import validate_eos_public_key
    from bankwallet.chains.errors import AddressInvalid

    try:
        return validate_eos_public_key(str(value or ""))
    except AddressInvalid:
        raise EosApiError(3010003, "public_key_type_exception", "Invalid public key",
                          f"Invalid public key: {str(value)[:60]}") from None


# -- HTTP ----------------------------------------------------------------------------------------


def create_app(kind: str, node: Any, *, rpc_auth: str | None = None) -> Any:
    """The Starlette app of one node: JSON-RPC on POST / (btc, sol) or java-tron's paths.
    ``rpc_auth`` ("user:password"): the btc node asks for it as Basic auth, as bitcoind does."""
    import orjson
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def read(request: Request) -> Any:
        body = await request.body()
        if len(body) > MAX_REQUEST_BYTES:
            raise RpcError(-32600, "request too large")
        return orjson.loads(body or b"{}")

    def answer(value: Any, status_code: int = 200) -> Response:
        return Response(orjson.dumps(value), status_code=status_code,
                        media_type="application/json")

    expected_auth = ("Basic " + base64.b64encode(rpc_auth.encode()).decode()
                     if rpc_auth else None)

    async def rpc(request: Request) -> Response:
        if expected_auth and request.headers.get("authorization") != expected_auth:
            return Response(status_code=401,
                            headers={"WWW-Authenticate": 'Basic realm="jsonrpc"'})
        try:
            payload = await read(request)
        except (RpcError, orjson.JSONDecodeError):
            return answer({"result": None, "error": {"code": -32700, "message": "Parse error"},
                           "id": None}, 400)
        result = node.handle(payload)
        # Bitcoin Core answers a JSON-RPC 1.0 error with HTTP 500 (2.0: HTTP 200).
        legacy = kind == "btc" and payload.get("jsonrpc") != "2.0"
        return answer(result, 500 if legacy and result.get("error") else 200)

    def tron_route(path: str, handler: Callable[[dict[str, Any]], dict[str, Any]]) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                body = await read(request)
            except (RpcError, orjson.JSONDecodeError):
                return answer({"Error": "class com.alibaba.fastjson.JSONException : syntax"})
            return answer(handler(body if isinstance(body, dict) else {}))
        return Route(path, endpoint, methods=["POST", "GET"])

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "kind": kind})

    routes = [Route("/healthz", healthz, methods=["GET"])]
    if kind == "tron":
        routes += [tron_route("/wallet/getnowblock", node.now_block),
                   tron_route("/wallet/getaccount", node.get_account),
                   tron_route("/wallet/broadcasthex", node.broadcast_hex),
                   tron_route("/wallet/gettransactioninfobyid", node.transaction_info),
                   tron_route("/wallet/triggerconstantcontract",
                              node.trigger_constant_contract),
                   tron_route("/sandbox/fund", node.fund),
                   tron_route("/sandbox/fund_trc20", node.fund_trc20)]
    elif kind == "apt":
        routes += _aptos_routes(node, read, answer)
    elif kind == "eos":
        routes += _eos_routes(node, read, answer)
    else:
        routes.append(Route("/", rpc, methods=["POST"]))
    return Starlette(routes=routes)


def _aptos_routes(node: AptosNode, read: Any, answer: Any) -> list[Any]:
    import orjson
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    def endpoint(handler: Callable[[Request, Any], Any], *, body: bool) -> Any:
        async def run(request: Request) -> Response:
            try:
                payload = await read(request) if body else None
            except (RpcError, orjson.JSONDecodeError):
                return answer(AptosApiError(400, "invalid_input", "Failed to parse request "
                                            "body as JSON").as_json(), 400)
            try:
                return answer(handler(request, payload))
            except AptosApiError as exc:
                return answer(exc.as_json(), exc.status)
        return run

    return [
        Route("/v1", endpoint(lambda r, b: node.ledger_info(), body=False), methods=["GET"]),
        Route("/v1/accounts/{address}/resource/{resource_type:path}", endpoint(
            lambda r, b: node.resource(r.path_params["address"],
                                       r.path_params["resource_type"]), body=False),
              methods=["GET"]),
        Route("/v1/view", endpoint(lambda r, b: node.view(b), body=True), methods=["POST"]),
        Route("/sandbox/fund", endpoint(lambda r, b: node.fund(b), body=True),
              methods=["POST"]),
    ]


def _eos_routes(node: EosNode, read: Any, answer: Any) -> list[Any]:
    import orjson
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    def endpoint(handler: Callable[[Any], Any]) -> Any:
        async def run(request: Request) -> Response:
            try:
                payload = await read(request)
            except (RpcError, orjson.JSONDecodeError):
                error = EosApiError(4, "parse_error_exception", "Parse Error",
                                    "Unable to parse valid input from POST body", status=400)
                return answer(error.as_json(), 400)
            try:
                return answer(handler(payload))
            except EosApiError as exc:
                return answer(exc.as_json(), exc.status)
        return run

    paths = {"/v1/chain/get_info": node.get_info,
             "/v1/chain/get_currency_balance": node.currency_balance,
             "/v1/chain/get_accounts_by_authorizers": node.accounts_by_authorizers,
             "/v1/history/get_key_accounts": node.key_accounts,
             "/sandbox/create_account": node.create_account,
             "/sandbox/issue": node.issue}
    return [Route(path, endpoint(handler), methods=["POST", "GET"])
            for path, handler in paths.items()]


def make_node(kind: str, *, min_fee_rate: int = 1, history_only: bool = False) -> Any:
    if kind == "btc":
        return BitcoinNode(mempool_min_fee_rate=min_fee_rate)
    if kind == "tron":
        return TronNode()
    if kind == "sol":
        return SolanaNode()
    if kind == "apt":
        return AptosNode()
    if kind == "eos":
        return EosNode(history_only=history_only)
    raise ValueError(kind)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bankwallet.connectors.chains.sandbox_nodes",
                                     description="A sandbox Bitcoin, TRON, Solana, Aptos "
                                                 "or EOS node.")
    parser.add_argument("kind", choices=["btc", "tron", "sol", "apt", "eos"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--min-fee-rate", type=int, default=1,
                        help="btc: the mempool's minimum fee rate, sat/vB")
    parser.add_argument("--rpc-auth", default=None,
                        help="btc: user:password the node asks for (Basic auth)")
    parser.add_argument("--history-only", action="store_true",
                        help="eos: an older node, without get_accounts_by_authorizers")
    args = parser.parse_args(argv)
    node = make_node(args.kind, min_fee_rate=args.min_fee_rate,
                     history_only=args.history_only)
    print(f"sandbox {args.kind} node on http://{args.host}:{args.port}/ (TEST ONLY)", flush=True)
    uvicorn.run(create_app(args.kind, node, rpc_auth=args.rpc_auth), host=args.host,
                port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
