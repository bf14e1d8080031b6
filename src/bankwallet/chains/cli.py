"""``bankwallet chains ...``: offline key tools for operators and support.

Secrets (recovery phrases, private keys) come from standard input, never from arguments,
which other users can read in the process list. Nothing secret is printed except what the
command is for (``seed`` prints the seed), and an unexpected failure prints its kind only:
a traceback with local variables would show the phrase.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from bankwallet.core.errors import BankwalletError

chains_app = typer.Typer(help="Crypto wallet keys: seeds, addresses, offline signing.",
                         no_args_is_help=True)

MAX_STDIN_CHARS = 4096
MAX_FILE_BYTES = 1024 * 1024

Chain = typer.Option(..., "--chain", help="BTC, ETH, BSC, POLYGON, OKX, TRON, SOL, APT, DOT, "
                                          "KSM or EOS.")
Passphrase = typer.Option("", "--passphrase", help="BIP39 passphrase (the \"25th word\"); "
                          "visible to other local users, prefer --passphrase-stdin.")
PassphraseStdin = typer.Option(False, "--passphrase-stdin",
                               help="Read the passphrase from the line after the phrase.")


@chains_app.command("new-mnemonic")
def new_mnemonic(words: int = typer.Option(12, "--words", help="12 or 24."),
                 language: str = typer.Option("en", "--language", help="en or zh-CN.")) -> None:
    """Print a new random recovery phrase."""
    from bankwallet.chains.mnemonic import generate_mnemonic

    with _guard():
        typer.echo(generate_mnemonic(words, language).phrase)


@chains_app.command("seed")
def seed(passphrase: str = Passphrase, passphrase_stdin: bool = PassphraseStdin) -> None:
    """Print the BIP39 seed (hex) of the recovery phrase on standard input."""
    with _guard():
        mnemonic, passphrase = _read_mnemonic(passphrase, passphrase_stdin)
        typer.echo(mnemonic.seed(passphrase).hex())


@chains_app.command("derive")
def derive(chain: str = Chain,
           path: str | None = typer.Option(None, "--path", help="Derivation path; for BTC its "
                                           "purpose 44/49/84 picks the address type; for "
                                           "sr25519 a substrate path like //0."),
           scheme: str | None = typer.Option(None, "--scheme", help="DOT/KSM: sr25519 "
                                             "(polkadot.js, default), ed25519 (SLIP-10) or "
                                             "ledger (the Ledger app's BIP32-Ed25519)."),
           index: int | None = typer.Option(None, "--index", min=0,
                                            help="Account index on the default path."),
           passphrase: str = Passphrase, passphrase_stdin: bool = PassphraseStdin) -> None:
    """Print the address of the recovery phrase on standard input."""
    from bankwallet.chains.derive import derive_account

    with _guard():
        mnemonic, passphrase = _read_mnemonic(passphrase, passphrase_stdin)
        account = derive_account(chain, mnemonic, passphrase=passphrase, path=path,
                                 scheme=scheme, index=index)
        typer.echo(account.address)


@chains_app.command("sign-tx")
def sign_tx(chain: str = typer.Option("ETH", "--chain", help="An EVM chain (ETH, BSC, "
                                      "POLYGON or OKX), TRON or SOL."),
            tx: Path = typer.Option(..., "--tx", help="The transaction as JSON.")) -> None:
    """Sign a transaction with the private key on standard input.

    EVM (key in hex): legacy EIP-155 when the JSON has gasPrice, EIP-1559 when it has
    maxFeePerGas; prints the raw signed transaction. TRON (key in hex): a TRX transfer
    {"to", "amount_sun", "ref_block_bytes", "ref_block_hash", "expiration_ms",
    "timestamp_ms"}. SOL (key in hex or a base58 64-byte keypair as Phantom exports it): a
    SOL transfer {"to", "lamports", "recent_blockhash"}. TRON and SOL print JSON.
    """
    from bankwallet.chains.errors import TransactionInvalid
    from bankwallet.chains.evm_signing import parse_private_key_hex, sign_transaction
    from bankwallet.chains.registry import Family, get_chain

    with _guard():
        family = get_chain(chain).family
        fields = _read_json(tx, TransactionInvalid)
        if family is Family.TRON:
            from bankwallet.chains import tron_signing

            key = parse_private_key_hex(_read_secret("private key (hex)"))
            tron = tron_signing.sign_transfer(fields, key)
            typer.echo(json.dumps({"txid": tron.txid, "raw_hex": tron.raw_hex,
                                   "raw_data_hex": tron.raw_data_hex,
                                   "signature": tron.signature, "from": tron.sender}))
        elif family is Family.SOL:
            from bankwallet.chains import solana_signing

            key = solana_signing.parse_solana_private_key(_read_secret("private key"))
            sol = solana_signing.sign_transfer(fields, key)
            typer.echo(json.dumps({"signature": sol.signature,
                                   "transaction_base64": sol.transaction_base64,
                                   "transaction_base58": sol.transaction_base58,
                                   "from": sol.sender}))
        else:
            key = parse_private_key_hex(_read_secret("private key (hex)"))
            typer.echo(sign_transaction(fields, key, chain=chain).raw)


@chains_app.command("sign-typed-data")
def sign_typed_data_cmd(file: Path = typer.Option(..., "--file", help="EIP-712 typed data "
                                                  "as JSON (eth_signTypedData_v4).")) -> None:
    """Sign EIP-712 typed data with the private key (hex) on standard input.

    Prints the digest, the signature and the signer as JSON.
    """
    from bankwallet.chains.errors import TypedDataInvalid
    from bankwallet.chains.evm_signing import parse_private_key_hex, sign_typed_data

    with _guard():
        data = _read_json(file, TypedDataInvalid)
        key = parse_private_key_hex(_read_secret("private key (hex)"))
        signed = sign_typed_data(data, key)
        typer.echo(json.dumps({"digest": signed.digest, "signature": signed.signature,
                               "signer": signed.signer}))


@chains_app.command("psbt")
def psbt_cmd(tx: Path = typer.Option(..., "--tx", help="The payment as JSON."),
             passphrase_stdin: bool = PassphraseStdin) -> None:
    """Build and sign a native SegWit (P2WPKH) Bitcoin payment offline, as a PSBT, with the
    recovery phrase on standard input.

    JSON: {"utxos": [{"txid", "vout", "amount_sat", "path": "m/84'/0'/0'/0/0"}],
    "payments": [{"address", "amount_sat"}], "fee_sat", "change_index"} to build and sign, or
    {"psbt": "<base64>"} to sign one built elsewhere. Prints JSON: the signed PSBT, the raw
    transaction for `chains broadcast`, its txid and fee.
    """
    from bankwallet.chains import btc_psbt
    from bankwallet.chains.errors import PsbtInvalid

    with _guard():
        fields = _read_json(tx, PsbtInvalid)
        if not isinstance(fields, dict):
            raise PsbtInvalid("the payment is a JSON object")
        mnemonic, passphrase = _read_mnemonic("", passphrase_stdin)
        psbt = fields.get("psbt")
        if psbt is None:
            psbt = btc_psbt.build_psbt(
                mnemonic, passphrase=passphrase, utxos=_utxos(fields.get("utxos")),
                payments=_payments(fields.get("payments")), fee_sat=_whole(fields, "fee_sat"),
                change_index=_whole(fields, "change_index", 0)).psbt
        if not isinstance(psbt, str):
            raise PsbtInvalid("psbt is base64 text")
        signed = btc_psbt.sign_psbt(psbt, mnemonic, passphrase=passphrase)
        typer.echo(json.dumps({"txid": signed.txid, "raw": signed.raw,
                               "fee_sat": signed.fee_sat, "psbt": psbt}))


@chains_app.command("broadcast")
def broadcast_cmd(chain: str = typer.Option(..., "--chain", help="BTC, TRON or SOL."),
                  node: str | None = typer.Option(None, "--node", help="The node's URL "
                                                  "(default: BANKWALLET_CHAIN_NETWORKS).")
                  ) -> None:
    """Broadcast a transaction signed offline, read from standard input: BTC raw hex (or a
    signed PSBT), TRON `raw_hex`, SOL `transaction_base64` (what sign-tx and psbt print).

    Prints JSON {"txid", "status", "already_known"}; a refusal prints its problem code and the
    node's words on standard error (exit 2).
    """
    from bankwallet.chains import service

    with _guard():
        signed = _read_stdin(service.MAX_RELAY_CHARS, "signed transaction")
        relayed = _run_on_node(chain, node, lambda client: service.broadcast_signed(
            client, chain=chain, signed=signed))
        typer.echo(json.dumps({"txid": relayed.txid, "status": relayed.status,
                               "already_known": relayed.already_known}))


@chains_app.command("tx-status")
def tx_status_cmd(chain: str = typer.Option(..., "--chain", help="BTC, TRON or SOL."),
                  txid: str = typer.Option(..., "--txid", help="As broadcast printed it."),
                  node: str | None = typer.Option(None, "--node", help="The node's URL "
                                                  "(default: BANKWALLET_CHAIN_NETWORKS).")
                  ) -> None:
    """Print a transaction's status on the node as JSON (unknown to the node: pending)."""
    from bankwallet.chains import service

    with _guard():
        relayed = _run_on_node(chain, node, lambda client: service.status_of(
            client, chain=chain, txid=txid))
        typer.echo(json.dumps({"txid": relayed.txid, "status": relayed.status,
                               "block_number": relayed.block_number,
                               "confirmations": relayed.confirmations}))


@chains_app.command("recent-block")
def recent_block_cmd(chain: str = typer.Option(..., "--chain", help="TRON or SOL."),
                     node: str | None = typer.Option(None, "--node", help="The node's URL "
                                                     "(default: BANKWALLET_CHAIN_NETWORKS)."),
                     expires_in_s: int = typer.Option(600, "--expires-in-s", min=60,
                                                      max=24 * 3600,
                                                      help="TRON: how long the signed "
                                                      "transfer stays valid.")) -> None:
    """Print, as JSON, the fields a TRON or SOL transfer is signed against (a recent block):
    merge them into the --tx file of sign-tx on the offline machine."""
    from bankwallet.chains import service
    from bankwallet.connectors.chains.base import ChainFailure

    async def fetch(client: Any) -> Any:
        if service.relayed_chain(chain) == "TRON":
            block = await client.reference_block()
            if isinstance(block, ChainFailure):
                return service.relay_ok(block)
            return {"ref_block_bytes": block.ref_block_bytes,
                    "ref_block_hash": block.ref_block_hash,
                    "timestamp_ms": block.timestamp_ms,
                    "expiration_ms": block.timestamp_ms + expires_in_s * 1000}
        if service.relayed_chain(chain) == "SOL":
            recent = await client.latest_blockhash()
            if isinstance(recent, ChainFailure):
                return service.relay_ok(recent)
            return {"recent_blockhash": recent.blockhash}
        raise service.ChainNotRelayed("a recent block is needed for TRON and SOL only")

    with _guard():
        typer.echo(json.dumps(_run_on_node(chain, node, fetch)))


def _run_on_node(chain: str, node: str | None, work: Any) -> Any:
    import asyncio

    from bankwallet.chains import service

    symbol = service.relayed_chain(chain)
    if node is None:
        from bankwallet.settings import get_settings

        node = service.ChainConfig.from_settings(get_settings()).node_urls.get(symbol)
        if node is None:
            raise service.NetworkNotConfigured(
                f"no {symbol} node configured: give --node URL or set "
                f"BANKWALLET_CHAIN_NETWORKS='{{\"{symbol}\": \"http://...\"}}'")
    if not node.startswith(("http://", "https://")):
        raise typer.BadParameter("--node is an http:// or https:// URL")

    async def run() -> Any:
        client = service.relay_client_for(symbol, node)
        try:
            return await work(client)
        finally:
            await client.aclose()

    return asyncio.run(run())


def _utxos(value: Any) -> list[Any]:
    from bankwallet.chains.btc_psbt import Utxo
    from bankwallet.chains.errors import PsbtInvalid

    if not isinstance(value, list) or not all(isinstance(u, dict) for u in value):
        raise PsbtInvalid("utxos is a list of {txid, vout, amount_sat, path}")
    try:
        return [Utxo(str(u["txid"]).lower(), _whole(u, "vout"), _whole(u, "amount_sat"),
                     str(u["path"])) for u in value]
    except KeyError as exc:
        raise PsbtInvalid(f"a coin has no {exc.args[0]}") from None


def _payments(value: Any) -> list[Any]:
    from bankwallet.chains.btc_psbt import Payment
    from bankwallet.chains.errors import PsbtInvalid

    if not isinstance(value, list) or not all(isinstance(p, dict) for p in value):
        raise PsbtInvalid("payments is a list of {address, amount_sat}")
    try:
        return [Payment(str(p["address"]), _whole(p, "amount_sat")) for p in value]
    except KeyError as exc:
        raise PsbtInvalid(f"a payment has no {exc.args[0]}") from None


def _whole(fields: dict[str, Any], name: str, default: int | None = None) -> int:
    from bankwallet.chains.errors import PsbtInvalid

    value = fields.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PsbtInvalid(f"{name} is a whole number")
    return value


@chains_app.command("validate-address")
def validate_address_cmd(address: str, chain: str = Chain) -> None:
    """Print the address in canonical form, or why it is not valid (exit 2)."""
    from bankwallet.chains.addresses import validate_address

    with _guard():
        typer.echo(validate_address(chain, address))


@chains_app.command("receive-uri")
def receive_uri_cmd(address: str, chain: str = Chain,
                    amount_minor: int | None = typer.Option(
                        None, "--amount-minor", min=1,
                        help="In the smallest unit: satoshi, wei, lamports, ..."),
                    qr_svg: Path | None = typer.Option(None, "--qr-svg",
                                                        help="Also write a QR code here.")) -> None:
    """Print a payment link (EIP-681, BIP21, Solana Pay, ...) for the address."""
    from bankwallet.chains import uri

    with _guard():
        link = uri.receive_uri(chain, address, amount_minor=amount_minor)
        if qr_svg is not None:
            qr_svg.write_text(uri.qr_svg(link), encoding="utf-8")
        typer.echo(link)


def _read_mnemonic(passphrase: str, passphrase_stdin: bool) -> tuple[Any, str]:
    from bankwallet.chains.mnemonic import parse_mnemonic

    text = _read_secret("recovery phrase")
    if passphrase_stdin:
        if passphrase:
            raise typer.BadParameter("give --passphrase or --passphrase-stdin, not both")
        text, _, passphrase = text.partition("\n")
        passphrase = passphrase.rstrip("\r\n")
    return parse_mnemonic(text), passphrase


def _read_stdin(limit: int, what: str) -> str:
    if sys.stdin.isatty():
        typer.echo(f"{what} (end with Ctrl-D):", err=True)
    text = sys.stdin.read(limit + 1)
    if len(text) > limit:
        raise typer.BadParameter(f"standard input is longer than {limit} characters")
    return text.strip()


def _read_secret(what: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(f"{what}: ")
    text = sys.stdin.read(MAX_STDIN_CHARS + 1)
    if len(text) > MAX_STDIN_CHARS:
        raise typer.BadParameter(f"standard input is longer than {MAX_STDIN_CHARS} characters")
    return text.strip("\r\n")


def _read_json(path: Path, error: type[BankwalletError]) -> Any:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise error(f"{path} is larger than {MAX_FILE_BYTES} bytes")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path} is not valid JSON: {exc}") from None


@contextlib.contextmanager
def _guard() -> Iterator[None]:
    try:
        yield
    except (typer.Exit, typer.Abort, typer.BadParameter):
        raise
    except BankwalletError as exc:
        node_message = exc.extra.get("node_message")  # a node's refusal: its rule, no secret
        typer.echo(f"error: {exc.code}: {exc.detail}"
                   + (f" (node: {node_message})" if node_message else ""), err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # never let a traceback (with locals) print a secret
        typer.echo(f"error: unexpected {type(exc).__name__} (details withheld: they may "
                   "hold a secret)", err=True)
        raise typer.Exit(1) from None
