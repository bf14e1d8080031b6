"""Receive links and their QR codes.

``ethereum:`` follows EIP-681 with the chain id (``ethereum:0x…@56?value=<wei>``),
``bitcoin:`` BIP21 (amount in BTC), ``solana:`` Solana Pay (amount in SOL). TRON, Aptos,
Polkadot, Kusama and EOS have no ratified scheme; their links use the same shape as BIP21
(``tron:T…?amount=1.5``), which the common multi-chain wallets read, and a wallet that does
not can still scan the bare address from the link's path.
"""

from __future__ import annotations

import io
from urllib.parse import quote

import segno

from bankwallet.chains.addresses import validate_address
from bankwallet.chains.errors import AmountInvalid
from bankwallet.chains.registry import Family, get_chain
from bankwallet.core.errors import InvalidInput

MAX_AMOUNT_MINOR = 2**256 - 1
MAX_TEXT_CHARS = 200


def receive_uri(chain: str, address: str, *, amount_minor: int | None = None,
                label: str | None = None, message: str | None = None) -> str:
    """A link asking for ``amount_minor`` (satoshi, wei, lamports, …) to ``address``."""
    spec = get_chain(chain)
    address = validate_address(spec.symbol, address)
    if amount_minor is not None and not (isinstance(amount_minor, int)
                                         and 0 < amount_minor <= MAX_AMOUNT_MINOR):
        raise AmountInvalid("an amount is a positive whole number of the smallest unit")
    if spec.family is Family.EVM:
        # EIP-681 has no label or message; the value is in wei.
        query = {"value": str(amount_minor)} if amount_minor else {}
        return _join(f"ethereum:{address}@{spec.evm_chain_id}", query)
    query = {}
    if amount_minor:
        query["amount"] = minor_to_decimal(amount_minor, spec.decimals)
    if label:
        query["label"] = _text(label, "label")
    if message:
        query["message"] = _text(message, "message")
    return _join(f"{spec.uri_scheme}:{address}", query)


def minor_to_decimal(amount_minor: int, decimals: int) -> str:
    """150000000, 8 -> "1.5": no exponent, no trailing zeros (BIP21 forbids exponents)."""
    whole, fraction = divmod(amount_minor, 10**decimals)
    digits = str(fraction).rjust(decimals, "0").rstrip("0") if decimals else ""
    return f"{whole}.{digits}" if digits else str(whole)


def qr_svg(uri: str, *, scale: int = 4) -> str:
    """An SVG QR code of ``uri``, error correction level M, black on white."""
    buffer = io.BytesIO()
    segno.make(uri, error="m", micro=False).save(buffer, kind="svg", scale=scale,
                                                  xmldecl=False, svgns=True)
    return buffer.getvalue().decode()


def qr_png(uri: str, *, scale: int = 6) -> bytes:
    buffer = io.BytesIO()
    segno.make(uri, error="m", micro=False).save(buffer, kind="png", scale=scale)
    return buffer.getvalue()


def _text(value: str, name: str) -> str:
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidInput(f"the {name} is longer than {MAX_TEXT_CHARS} characters")
    return value


def _join(base: str, query: dict[str, str]) -> str:
    if not query:
        return base
    return base + "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
