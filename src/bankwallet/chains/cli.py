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
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # never let a traceback (with locals) print a secret
        typer.echo(f"error: unexpected {type(exc).__name__} (details withheld: they may "
                   "hold a secret)", err=True)
        raise typer.Exit(1) from None
