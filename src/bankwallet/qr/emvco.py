"""EMVCo merchant-presented QR (MPM) payloads: a typed model, an encoder and a strict decoder.

Follows the EMV QR Code Specification for Payment Systems, Merchant-Presented Mode (v1.0 and
v1.1). A payload is a sequence of data objects, each an ID (two digits), a length (two digits,
counted in characters, not bytes) and a value; some values are themselves such sequences
(templates). ID 00 comes first, the CRC (ID 63) last; everything else may come in any order.

One set of rules serves both directions: ``encode`` builds the payload, checking every value as
it goes, then decodes its own output with ``decode`` and asserts it reads back the same model.
So nothing is encoded that the decoder would refuse.

Amounts are integer minor units with the currency's decimals from Babel (``core.money``), the
same as the ledger's; the conversion to and from the payload's decimal text is integer-only.
"""

from __future__ import annotations

import binascii
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

import pycountry
from babel.numbers import list_currencies

from bankwallet.core.money import minor_digits
from bankwallet.qr.errors import (
    QrCrcMismatch,
    QrFieldInvalid,
    QrFieldMissing,
    QrMalformed,
    QrPayloadTooLong,
)

# The spec: "should not exceed 512 alphanumeric characters". A level-M QR (2331 bytes at most)
# holds that even when every character takes four UTF-8 bytes.
MAX_PAYLOAD_CHARS = 512
MAX_VALUE_CHARS = 99
PAYLOAD_FORMAT_INDICATOR = "01"
CRC_ID = "63"
CRC_HEADER = "6304"
# In the additional data template, this value asks the app to prompt the consumer for it.
PROMPT = "***"
CONSUMER_DATA_REQUEST_LETTERS = "AME"  # address, mobile number, e-mail

_HEX4 = re.compile(r"[0-9A-F]{4}")
# Digits with at most one "." as decimal mark ("98.73", "98", "98." are all valid).
_DECIMAL = re.compile(r"([0-9]*)(?:\.([0-9]*))?")


class InitiationMethod(StrEnum):
    STATIC = "11"  # the same code for many payments
    DYNAMIC = "12"  # a new code for each payment


# -- the model ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GuiTemplate:
    """A template whose subfield 00, the globally unique identifier (an AID, a UUID without
    hyphens or a reverse domain name), says who defines its other subfields (01–99)."""

    gui: str
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TipPrompt:
    """ID 55 = "01": the app asks the consumer for a tip."""


@dataclass(frozen=True, slots=True)
class ConvenienceFeeFixed:
    """ID 55 = "02" with ID 56: a fixed fee in the transaction currency."""

    amount_minor: int


@dataclass(frozen=True, slots=True)
class ConvenienceFeePercentage:
    """ID 55 = "03" with ID 57: a fee of 0.01 % (1 bp) to 99.99 % (9999 bp) of the amount."""

    rate_bp: int


Tip = TipPrompt | ConvenienceFeeFixed | ConvenienceFeePercentage


@dataclass(frozen=True, slots=True)
class AdditionalData:
    """ID 62. Each label may be ``PROMPT`` ("***") for the app to ask the consumer."""

    bill_number: str | None = None
    mobile_number: str | None = None
    store_label: str | None = None
    loyalty_number: str | None = None
    reference_label: str | None = None
    customer_label: str | None = None
    terminal_label: str | None = None
    purpose_of_transaction: str | None = None
    consumer_data_request: str | None = None  # letters of CONSUMER_DATA_REQUEST_LETTERS
    rfu: dict[str, str] = field(default_factory=dict)  # IDs 10–49, kept as read
    templates: dict[str, GuiTemplate] = field(default_factory=dict)  # IDs 50–99


@dataclass(frozen=True, slots=True)
class LanguageTemplate:
    """ID 64: the merchant's name and city in another language (any Unicode characters)."""

    language: str  # ISO 639-1, e.g. "ZH" or "zh", kept as written
    name: str
    city: str | None = None
    rfu: dict[str, str] = field(default_factory=dict)  # IDs 03–99, kept as read


@dataclass(frozen=True, slots=True)
class MerchantPresentedQr:
    """A merchant-presented QR payload.

    ``merchant_accounts`` maps IDs 02–25 (reserved for card networks: plain values) and 26–51
    (templates with a globally unique identifier) to their content; at least one is required.
    ``currency`` is the ISO 4217 alphabetic code; the payload carries its numeric code.
    """

    merchant_accounts: dict[str, str | GuiTemplate]
    mcc: str
    currency: str
    country: str
    name: str
    city: str
    amount_minor: int | None = None
    initiation: InitiationMethod | None = None
    tip: Tip | None = None
    postal_code: str | None = None
    additional_data: AdditionalData | None = None
    language: LanguageTemplate | None = None
    rfu: dict[str, str] = field(default_factory=dict)  # IDs 65–79, reserved for EMVCo
    unreserved: dict[str, GuiTemplate] = field(default_factory=dict)  # IDs 80–99

    @property
    def currency_numeric(self) -> str:
        return _currency_numeric("53", self.currency)

    @property
    def is_dynamic(self) -> bool:
        return self.initiation == InitiationMethod.DYNAMIC

    def encode(self) -> str:
        return encode(self)

    @classmethod
    def decode(cls, payload: str) -> MerchantPresentedQr:
        return decode(payload)


# -- the rules of each data object ---------------------------------------------------------------


class Format(StrEnum):
    NUMERIC = "N"
    ANS = "ans"  # the common character set: printable ASCII, " " to "~"
    STRING = "S"  # any Unicode characters


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    format: Format
    max_len: int = MAX_VALUE_CHARS
    exact: bool = False  # the length must be max_len
    # A template's characters are checked in its subfields, so that errors name the innermost
    # field; every subfield's format is at least as strict as its template's.
    template: bool = False


_N, _ANS, _S = Format.NUMERIC, Format.ANS, Format.STRING

_ROOT = {
    "00": FieldSpec("Payload Format Indicator", _N, 2, exact=True),
    "01": FieldSpec("Point of Initiation Method", _N, 2, exact=True),
    "52": FieldSpec("Merchant Category Code", _N, 4, exact=True),
    "53": FieldSpec("Transaction Currency", _N, 3, exact=True),
    "54": FieldSpec("Transaction Amount", _ANS, 13),
    "55": FieldSpec("Tip or Convenience Indicator", _N, 2, exact=True),
    "56": FieldSpec("Value of Convenience Fee Fixed", _ANS, 13),
    "57": FieldSpec("Value of Convenience Fee Percentage", _ANS, 5),
    "58": FieldSpec("Country Code", _ANS, 2, exact=True),
    "59": FieldSpec("Merchant Name", _ANS, 25),
    "60": FieldSpec("Merchant City", _ANS, 15),
    "61": FieldSpec("Postal Code", _ANS, 10),
    "62": FieldSpec("Additional Data Field Template", _S, template=True),
    "63": FieldSpec("CRC", _ANS, 4, exact=True),
    "64": FieldSpec("Merchant Information - Language Template", _S, template=True),
}
_NETWORKS = ((3, "Visa"), (5, "Mastercard"), (8, "EMVCo"), (10, "Discover"), (12, "Amex"),
             (14, "JCB"), (16, "UnionPay"), (25, "EMVCo"))  # (last ID of the range, owner)
_ACCOUNT_TEMPLATE = FieldSpec("Merchant Account Information Template", _ANS, template=True)
_RFU_EMVCO = FieldSpec("RFU for EMVCo", _S)
_UNRESERVED = FieldSpec("Unreserved Template", _S, template=True)

_ADDITIONAL = (  # (ID, attribute of AdditionalData, name)
    ("01", "bill_number", "Bill Number"),
    ("02", "mobile_number", "Mobile Number"),
    ("03", "store_label", "Store Label"),
    ("04", "loyalty_number", "Loyalty Number"),
    ("05", "reference_label", "Reference Label"),
    ("06", "customer_label", "Customer Label"),
    ("07", "terminal_label", "Terminal Label"),
    ("08", "purpose_of_transaction", "Purpose of Transaction"),
    ("09", "consumer_data_request", "Additional Consumer Data Request"),
)
_ADDITIONAL_SPECS = {tag: FieldSpec(name, _ANS, 3 if tag == "09" else 25)
                     for tag, _, name in _ADDITIONAL}
_PAYMENT_SYSTEM_TEMPLATE = FieldSpec("Payment System Specific Template", _S, template=True)

_LANGUAGE_SPECS = {
    "00": FieldSpec("Language Preference", _ANS, 2, exact=True),
    "01": FieldSpec("Merchant Name - Alternate Language", _S, 25),
    "02": FieldSpec("Merchant City - Alternate Language", _S, 15),
}

_GUI = FieldSpec("Globally Unique Identifier", _ANS, 32)
_NETWORK_SPECIFIC = FieldSpec("Payment Network Specific", _ANS)
_CONTEXT_SPECIFIC = FieldSpec("Context Specific Data", _S)

SpecOf = Callable[[str], FieldSpec | None]  # None: the ID is not allocated at that level


def _root_spec(tag: str) -> FieldSpec:
    if tag in _ROOT:
        return _ROOT[tag]
    number = int(tag)
    if number <= 25:
        owner = next(name for last, name in _NETWORKS if number <= last)
        return FieldSpec(f"Merchant Account Information ({owner})", _ANS)
    if number <= 51:
        return _ACCOUNT_TEMPLATE
    return _RFU_EMVCO if number <= 79 else _UNRESERVED


def _additional_spec(tag: str) -> FieldSpec | None:
    number = int(tag)
    if number == 0:
        return None
    if number <= 9:
        return _ADDITIONAL_SPECS[tag]
    return _RFU_EMVCO if number <= 49 else _PAYMENT_SYSTEM_TEMPLATE


def _language_spec(tag: str) -> FieldSpec:
    return _LANGUAGE_SPECS.get(tag, _RFU_EMVCO)


def _account_sub_spec(tag: str) -> FieldSpec:
    return _GUI if tag == "00" else _NETWORK_SPECIFIC


def _context_sub_spec(tag: str) -> FieldSpec:
    return _GUI if tag == "00" else _CONTEXT_SPECIFIC


def name_of(path: str) -> str:
    """The name of the data object at an ID path such as "62.05" or "29.00"."""
    first, *rest = path.split(".")
    spec: FieldSpec | None = _root_spec(first)
    if rest:
        number = int(first)
        sub_spec: SpecOf = (_additional_spec if first == "62" else _language_spec if first == "64"
                            else _account_sub_spec if number <= 51 else _context_sub_spec)
        spec = sub_spec(rest[0])
        if len(rest) > 1:  # inside a payment system specific template of ID 62
            spec = _context_sub_spec(rest[1])
    return spec.name if spec else "Unallocated"


def _is_numeric(text: str) -> bool:
    return all("0" <= c <= "9" for c in text)


def _is_ans(text: str) -> bool:
    return all(" " <= c <= "~" for c in text)


def _is_string(text: str) -> bool:
    # Control characters, lone surrogates and line/paragraph separators have no place on a
    # consumer's screen (and a lone surrogate cannot even be encoded as UTF-8).
    return all(unicodedata.category(c) not in ("Cc", "Cs", "Zl", "Zp") for c in text)


_FORMAT_CHECKS = {_N: _is_numeric, _ANS: _is_ans, _S: _is_string}
_FORMAT_RULES = {
    _N: "must contain only the digits 0-9 (format N)",
    _ANS: "must contain only printable ASCII characters, ' ' to '~' (format ans)",
    _S: "must not contain control characters or line separators (format S)",
}


def _check_value(path: str, spec: FieldSpec, value: str) -> None:
    assert isinstance(value, str), f"ID {path}: {value!r} is not a str"
    if not value:
        raise QrFieldInvalid("must not be empty; leave the data object out instead",
                             field=path, field_name=spec.name)
    if len(value) > spec.max_len or (spec.exact and len(value) != spec.max_len):
        size = "exactly" if spec.exact else "at most"
        raise QrFieldInvalid(
            f"must be {size} {spec.max_len} characters long, not {len(value)}",
            field=path, field_name=spec.name)
    if not spec.template and not _FORMAT_CHECKS[spec.format](value):
        raise QrFieldInvalid(_FORMAT_RULES[spec.format], field=path, field_name=spec.name)


# -- CRC and ID-length-value sequences -----------------------------------------------------------


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR.

    ``binascii.crc_hqx`` is exactly this polynomial, unreflected; the initial value is ours.
    """
    return binascii.crc_hqx(data, 0xFFFF)


def crc_hex(body: str) -> str:
    """The CRC of everything before it, "6304" included, over UTF-8 bytes, as 4 uppercase hex."""
    return f"{crc16_ccitt_false(body.encode('utf-8')):04X}"


def _sub(path: str | None, tag: str) -> str:
    return tag if path is None else f"{path}.{tag}"


def _parse(text: str, path: str | None, spec_of: SpecOf) -> dict[str, str]:
    """Reads a sequence of data objects, checking each value's length and format."""
    fields: dict[str, str] = {}
    parent = name_of(path) if path else None
    pos = 0
    while pos < len(text):
        head = text[pos:pos + 4]
        if len(head) < 4 or not _is_numeric(head):
            raise QrMalformed(
                f"expected a two-digit ID and a two-digit length at character {pos}, "
                f"found {head!r}", field=path, field_name=parent)
        tag, length = head[:2], int(head[2:])
        where = _sub(path, tag)
        spec = spec_of(tag)
        if spec is None:
            raise QrFieldInvalid("is not an allocated ID in this template", field=where,
                                 field_name="Unallocated")
        end = pos + 4 + length
        if length == 0:
            raise QrMalformed("has length 00; a value holds 1 to 99 characters",
                              field=where, field_name=spec.name)
        if end > len(text):
            raise QrMalformed(
                f"declares {length} characters but only {len(text) - pos - 4} remain",
                field=where, field_name=spec.name)
        if tag in fields:
            raise QrFieldInvalid("appears more than once; an ID may appear once per template",
                                 field=where, field_name=spec.name)
        value = text[pos + 4:end]
        _check_value(where, spec, value)
        fields[tag] = value
        pos = end
    return fields


def _join(fields: dict[str, str], path: str | None, spec_of: SpecOf) -> str:
    """Writes data objects in ascending ID order, checking each value as ``_parse`` does."""
    parts = []
    for tag, value in sorted(fields.items()):
        where = _sub(path, tag)
        spec = spec_of(tag) if _is_id(tag) else None
        if spec is None:
            raise QrFieldInvalid("is not an allocated ID in this template", field=where,
                                 field_name="Unallocated")
        _check_value(where, spec, value)
        parts.append(f"{tag}{len(value):02d}{value}")
    return "".join(parts)


def _is_id(tag: object) -> bool:
    return isinstance(tag, str) and len(tag) == 2 and _is_numeric(tag)


def _check_id_range(path: str, tag: str, first: int, last: int, name: str) -> None:
    if not (_is_id(tag) and first <= int(tag) <= last):
        raise QrFieldInvalid(f"must be an ID from {first:02d} to {last:02d}",
                             field=f"{path}.{tag}" if path else str(tag), field_name=name)


# -- currencies, countries, languages (ISO tables from pycountry, decimals from Babel) -----------


@lru_cache(maxsize=1)
def _currencies_by_numeric() -> dict[str, str]:
    # Only codes Babel also knows, so that every accepted currency has its decimals.
    known = set(list_currencies())
    return {c.numeric: c.alpha_3 for c in pycountry.currencies if c.alpha_3 in known}


@lru_cache(maxsize=1)
def _currencies_by_alpha() -> dict[str, str]:
    return {alpha: numeric for numeric, alpha in _currencies_by_numeric().items()}


@lru_cache(maxsize=1)
def _countries() -> frozenset[str]:
    return frozenset(c.alpha_2 for c in pycountry.countries)


@lru_cache(maxsize=1)
def _languages() -> frozenset[str]:
    return frozenset(lang.alpha_2 for lang in pycountry.languages if hasattr(lang, "alpha_2"))


def _currency_numeric(path: str, alpha: str) -> str:
    numeric = _currencies_by_alpha().get(alpha)
    if numeric is None:
        raise QrFieldInvalid(f"{alpha!r} is not an ISO 4217 alphabetic currency code",
                             field=path, field_name=_ROOT["53"].name)
    return numeric


def _currency_alpha(numeric: str) -> str:
    alpha = _currencies_by_numeric().get(numeric)
    if alpha is None:
        raise QrFieldInvalid(f"{numeric!r} is not an ISO 4217 numeric currency code",
                             field="53", field_name=_ROOT["53"].name)
    return alpha


# -- amounts: integer minor units <-> decimal text -----------------------------------------------


def format_amount(amount_minor: int, currency: str) -> str:
    """Minor units as the payload's decimal text: 2372 CNY -> "23.72", 500 JPY -> "500"."""
    assert isinstance(amount_minor, int) and not isinstance(amount_minor, bool), amount_minor
    assert amount_minor > 0, amount_minor
    digits = minor_digits(currency)
    if digits == 0:
        return str(amount_minor)
    whole, fraction = divmod(amount_minor, 10**digits)
    return f"{whole}.{fraction:0{digits}d}"


def parse_amount(tag: str, text: str, currency: str) -> int:
    """The payload's decimal text as minor units; no more decimals than the currency has."""
    name = _ROOT[tag].name
    match = _DECIMAL.fullmatch(text)
    if match is None or not (match[1] or match[2]):
        raise QrFieldInvalid("must be digits 0-9 with at most one '.' as the decimal mark",
                             field=tag, field_name=name)
    whole, fraction = match[1], match[2] or ""
    digits = minor_digits(currency)
    if len(fraction) > digits:
        raise QrFieldInvalid(
            f"has {len(fraction)} decimals but {currency} has {digits}",
            field=tag, field_name=name)
    minor = int(whole or "0") * 10**digits + int(fraction.ljust(digits, "0") or "0")
    if minor == 0:
        raise QrFieldInvalid("must not be zero", field=tag, field_name=name)
    return minor


def _format_positive_amount(tag: str, amount_minor: int, currency: str) -> str:
    assert isinstance(amount_minor, int) and not isinstance(amount_minor, bool), amount_minor
    if amount_minor <= 0:
        raise QrFieldInvalid("must be greater than zero", field=tag, field_name=_ROOT[tag].name)
    return format_amount(amount_minor, currency)


def _format_rate(rate_bp: int) -> str:
    assert isinstance(rate_bp, int) and not isinstance(rate_bp, bool), rate_bp
    if not 1 <= rate_bp <= 9999:
        raise QrFieldInvalid("must be from 00.01 to 99.99 (1 to 9999 bp)",
                             field="57", field_name=_ROOT["57"].name)
    whole, fraction = divmod(rate_bp, 100)
    return f"{whole}.{fraction:02d}"


def _parse_rate(text: str) -> int:
    name = _ROOT["57"].name
    match = _DECIMAL.fullmatch(text)
    if match is None or not (match[1] or match[2]):
        raise QrFieldInvalid("must be digits 0-9 with at most one '.' as the decimal mark",
                             field="57", field_name=name)
    whole, fraction = match[1], match[2] or ""
    if len(fraction) > 2:
        raise QrFieldInvalid("must have at most 2 decimals", field="57", field_name=name)
    rate_bp = int(whole or "0") * 100 + int(fraction.ljust(2, "0"))
    if not 1 <= rate_bp <= 9999:
        raise QrFieldInvalid("must be from 00.01 to 99.99", field="57", field_name=name)
    return rate_bp


# -- decoding -------------------------------------------------------------------------------------


def decode(payload: str) -> MerchantPresentedQr:
    """Reads a payload, refusing with a typed error anything that breaks a rule of the spec."""
    root = _parse_payload(payload)
    for tag in ("52", "53", "58", "59", "60"):
        if tag not in root:
            raise QrFieldMissing("is mandatory", field=tag, field_name=_ROOT[tag].name)
    if root["00"] != PAYLOAD_FORMAT_INDICATOR:
        raise QrFieldInvalid(f"must be {PAYLOAD_FORMAT_INDICATOR!r}, not {root['00']!r}",
                             field="00", field_name=_ROOT["00"].name)
    currency = _currency_alpha(root["53"])
    if root["58"] not in _countries():
        raise QrFieldInvalid(f"{root['58']!r} is not an ISO 3166-1 alpha-2 country code",
                             field="58", field_name=_ROOT["58"].name)
    return MerchantPresentedQr(
        merchant_accounts=_decode_accounts(root),
        mcc=root["52"],
        currency=currency,
        country=root["58"],
        name=root["59"],
        city=root["60"],
        amount_minor=parse_amount("54", root["54"], currency) if "54" in root else None,
        initiation=_decode_initiation(root.get("01")),
        tip=_decode_tip(root, currency),
        postal_code=root.get("61"),
        additional_data=_decode_additional(root["62"]) if "62" in root else None,
        language=_decode_language(root["64"]) if "64" in root else None,
        rfu={tag: value for tag, value in root.items() if 65 <= int(tag) <= 79},
        unreserved={tag: _decode_template(tag, value, _context_sub_spec)
                    for tag, value in root.items() if int(tag) >= 80},
    )


def _parse_payload(payload: str) -> dict[str, str]:
    """Bounds, then the CRC (before parsing, as a reader checks integrity), then the structure."""
    assert isinstance(payload, str), type(payload)
    if len(payload) > MAX_PAYLOAD_CHARS:
        raise QrPayloadTooLong(f"has {len(payload)} characters; at most {MAX_PAYLOAD_CHARS}")
    try:
        payload.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: no bytes to check a CRC over
        raise QrMalformed("is not valid Unicode text") from exc
    crc = _ROOT[CRC_ID].name
    if len(payload) < 8 or payload[-8:-4] != CRC_HEADER:
        raise QrFieldMissing(
            f"must be the last data object: {CRC_HEADER!r} and four hexadecimal characters",
            field=CRC_ID, field_name=crc)
    given = payload[-4:]
    if not _HEX4.fullmatch(given):
        raise QrFieldInvalid(f"must be four uppercase hexadecimal characters, not {given!r}",
                             field=CRC_ID, field_name=crc)
    computed = crc_hex(payload[:-4])
    if given != computed:
        raise QrCrcMismatch(f"the payload says {given} but its content computes to {computed}",
                            field=CRC_ID, field_name=crc)
    root = _parse(payload, None, _root_spec)
    first, last = next(iter(root)), next(reversed(root))
    if first != "00":
        error = QrFieldInvalid if "00" in root else QrFieldMissing
        raise error("is mandatory and must be the first data object",
                    field="00", field_name=_ROOT["00"].name)
    if last != CRC_ID:
        raise QrMalformed("must be the last data object", field=CRC_ID, field_name=crc)
    return root


def _decode_initiation(value: str | None) -> InitiationMethod | None:
    if value is None:
        return None
    if value not in tuple(InitiationMethod):
        raise QrFieldInvalid(f"must be '11' (static) or '12' (dynamic), not {value!r}",
                             field="01", field_name=_ROOT["01"].name)
    return InitiationMethod(value)


def _decode_accounts(root: dict[str, str]) -> dict[str, str | GuiTemplate]:
    accounts: dict[str, str | GuiTemplate] = {}
    for tag, value in root.items():
        number = int(tag)
        if 2 <= number <= 25:
            accounts[tag] = value
        elif 26 <= number <= 51:
            accounts[tag] = _decode_template(tag, value, _account_sub_spec)
    if not accounts:
        raise QrFieldMissing("at least one merchant account (ID 02 to 51) is mandatory",
                             field="02-51", field_name="Merchant Account Information")
    return accounts


def _decode_template(path: str, value: str, sub_spec: SpecOf) -> GuiTemplate:
    fields = _parse(value, path, sub_spec)
    if "00" not in fields:
        raise QrFieldMissing("is mandatory in this template", field=f"{path}.00",
                             field_name=_GUI.name)
    gui = fields.pop("00")
    return GuiTemplate(gui=gui, data=fields)


def _decode_tip(root: dict[str, str], currency: str) -> Tip | None:
    indicator = root.get("55")
    if indicator not in (None, "01", "02", "03"):
        raise QrFieldInvalid(f"must be '01', '02' or '03', not {indicator!r}",
                             field="55", field_name=_ROOT["55"].name)
    wanted = {"02": "56", "03": "57"}.get(indicator or "")
    for tag, needs in (("56", "02"), ("57", "03")):
        if tag in root and tag != wanted:
            raise QrFieldInvalid(
                f"must be absent unless ID 55 (Tip or Convenience Indicator) is {needs!r}",
                field=tag, field_name=_ROOT[tag].name)
    if wanted and wanted not in root:
        raise QrFieldMissing(f"is mandatory when ID 55 (Tip or Convenience Indicator) is "
                             f"{indicator!r}", field=wanted, field_name=_ROOT[wanted].name)
    if indicator is None:
        return None
    if indicator == "01":
        return TipPrompt()
    if indicator == "02":
        return ConvenienceFeeFixed(parse_amount("56", root["56"], currency))
    return ConvenienceFeePercentage(_parse_rate(root["57"]))


def _decode_additional(value: str) -> AdditionalData:
    fields = _parse(value, "62", _additional_spec)
    request = fields.get("09")
    if request is not None:
        _check_consumer_data_request(request)
    return AdditionalData(
        **{attr: fields.get(tag) for tag, attr, _ in _ADDITIONAL},
        rfu={tag: v for tag, v in fields.items() if 10 <= int(tag) <= 49},
        templates={tag: _decode_template(f"62.{tag}", v, _context_sub_spec)
                   for tag, v in fields.items() if int(tag) >= 50},
    )


def _check_consumer_data_request(request: str) -> None:
    if not set(request) <= set(CONSUMER_DATA_REQUEST_LETTERS) or len(set(request)) != len(request):
        raise QrFieldInvalid(
            "must be letters 'A' (address), 'M' (mobile number) and 'E' (e-mail), each at most "
            f"once, not {request!r}", field="62.09", field_name=_ADDITIONAL_SPECS["09"].name)


def _decode_language(value: str) -> LanguageTemplate:
    fields = _parse(value, "64", _language_spec)
    for tag in ("00", "01"):
        if tag not in fields:
            raise QrFieldMissing("is mandatory in the language template", field=f"64.{tag}",
                                 field_name=_LANGUAGE_SPECS[tag].name)
    language = fields["00"]
    if language.lower() not in _languages():
        raise QrFieldInvalid(f"{language!r} is not an ISO 639-1 language code",
                             field="64.00", field_name=_LANGUAGE_SPECS["00"].name)
    return LanguageTemplate(
        language=language, name=fields["01"], city=fields.get("02"),
        rfu={tag: v for tag, v in fields.items() if int(tag) >= 3})


# -- encoding -------------------------------------------------------------------------------------


def encode(qr: MerchantPresentedQr) -> str:
    """The payload of a model; refuses, with the decoder's errors, a model that breaks a rule."""
    fields = _encode_fields(qr)
    body = _join(fields, None, _root_spec) + CRC_HEADER
    payload = body + crc_hex(body)
    if len(payload) > MAX_PAYLOAD_CHARS:
        raise QrPayloadTooLong(f"would have {len(payload)} characters; at most "
                               f"{MAX_PAYLOAD_CHARS}")
    # Every semantic rule (currency, country, tip, templates) lives in the decoder: run it on
    # our own output, then check it reads back exactly what we were given.
    decoded = decode(payload)
    assert decoded == qr, f"{qr!r} encodes to {payload!r}, which decodes to {decoded!r}"
    return payload


def _encode_fields(qr: MerchantPresentedQr) -> dict[str, str]:
    fields = {"00": PAYLOAD_FORMAT_INDICATOR}
    if qr.initiation is not None:
        fields["01"] = str(qr.initiation)
    fields |= _encode_accounts(qr.merchant_accounts)
    fields |= {"52": qr.mcc, "53": _currency_numeric("53", qr.currency), "58": qr.country,
               "59": qr.name, "60": qr.city}
    if qr.amount_minor is not None:
        fields["54"] = _format_positive_amount("54", qr.amount_minor, qr.currency)
    fields |= _encode_tip(qr.tip, qr.currency)
    if qr.postal_code is not None:
        fields["61"] = qr.postal_code
    if qr.additional_data is not None:
        fields["62"] = _encode_additional(qr.additional_data)
    if qr.language is not None:
        fields["64"] = _encode_language(qr.language)
    for tag, value in qr.rfu.items():
        _check_id_range("", tag, 65, 79, _RFU_EMVCO.name)
        fields[tag] = value
    for tag, template in qr.unreserved.items():
        _check_id_range("", tag, 80, 99, _UNRESERVED.name)
        fields[tag] = _encode_template(tag, template, _context_sub_spec)
    return fields


def _encode_accounts(accounts: dict[str, str | GuiTemplate]) -> dict[str, str]:
    fields = {}
    for tag, account in accounts.items():
        _check_id_range("", tag, 2, 51, "Merchant Account Information")
        if int(tag) >= 26 and isinstance(account, GuiTemplate):
            fields[tag] = _encode_template(tag, account, _account_sub_spec)
        elif int(tag) <= 25 and isinstance(account, str):
            fields[tag] = account
        else:
            shape = "a GuiTemplate" if int(tag) >= 26 else "a plain str value"
            raise QrFieldInvalid(f"must be {shape}", field=tag, field_name=name_of(tag))
    if not fields:
        raise QrFieldMissing("at least one merchant account (ID 02 to 51) is mandatory",
                             field="02-51", field_name="Merchant Account Information")
    return fields


def _encode_template(path: str, template: GuiTemplate, sub_spec: SpecOf) -> str:
    for tag in template.data:
        _check_id_range(path, tag, 1, 99, name_of(f"{path}.01"))
    return _join({"00": template.gui, **template.data}, path, sub_spec)


def _encode_tip(tip: Tip | None, currency: str) -> dict[str, str]:
    match tip:
        case None:
            return {}
        case TipPrompt():
            return {"55": "01"}
        case ConvenienceFeeFixed(amount_minor=amount_minor):
            return {"55": "02", "56": _format_positive_amount("56", amount_minor, currency)}
        case ConvenienceFeePercentage(rate_bp=rate_bp):
            return {"55": "03", "57": _format_rate(rate_bp)}
    raise AssertionError(f"not a tip: {tip!r}")


def _encode_additional(data: AdditionalData) -> str:
    fields = {tag: getattr(data, attr) for tag, attr, _ in _ADDITIONAL
              if getattr(data, attr) is not None}
    for tag, value in data.rfu.items():
        _check_id_range("62", tag, 10, 49, _RFU_EMVCO.name)
        fields[tag] = value
    for tag, template in data.templates.items():
        _check_id_range("62", tag, 50, 99, _PAYMENT_SYSTEM_TEMPLATE.name)
        fields[tag] = _encode_template(f"62.{tag}", template, _context_sub_spec)
    if not fields:
        raise QrFieldInvalid("must hold at least one data object; leave it out instead",
                             field="62", field_name=_ROOT["62"].name)
    return _join(fields, "62", _additional_spec)


def _encode_language(language: LanguageTemplate) -> str:
    fields = {"00": language.language, "01": language.name}
    if language.city is not None:
        fields["02"] = language.city
    for tag, value in language.rfu.items():
        _check_id_range("64", tag, 3, 99, _RFU_EMVCO.name)
        fields[tag] = value
    return _join(fields, "64", _language_spec)
