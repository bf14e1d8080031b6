"""``bankwallet qr decode|encode``: an EMV merchant-presented QR payload <-> JSON.

``decode`` reads a payload on standard input and prints its fields as JSON; ``encode`` reads
that JSON and prints the payload. A refused payload or JSON exits 2 with one line: the typed
error's message, which names the data object (ID and name) and the rule broken.

The JSON (``crc`` is printed by ``decode`` and ignored by ``encode``, which computes it)::

    {"payload_format": "01", "initiation": "static" | "dynamic" | null,
     "merchant_accounts": {"02": "4000...", "26": {"gui": "CN.BANKWALLET", "data": {"01": ..}}},
     "mcc": "5812", "currency": "156", "amount": "23.72" | null, "country": "CN",
     "merchant_name": "..", "merchant_city": "..",
     "additional_data": {"reference_label": .., "rfu": {..}, "templates": {..}} | null,
     "language": {"language": "ZH", "name": "..", "city": ".." | null, "rfu": {..}} | null,
     "crc": "ABCD"}

and, only when the payload has them, ``postal_code``, ``tip`` ({"kind": "prompt"},
{"kind": "fixed", "amount": "1.00"} or {"kind": "percentage", "rate": "3.00"}), ``rfu``
(IDs 65-79) and ``unreserved`` (IDs 80-99). Decoding then encoding a canonical payload (IDs in
ascending order, amounts without superfluous decimals) gives the same payload back.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

import typer

from bankwallet.qr import emvco
from bankwallet.qr.emvco import (
    AdditionalData,
    ConvenienceFeeFixed,
    ConvenienceFeePercentage,
    GuiTemplate,
    InitiationMethod,
    LanguageTemplate,
    MerchantPresentedQr,
    Tip,
    TipPrompt,
)
from bankwallet.qr.errors import QrError, QrFieldInvalid, QrFieldMissing, QrMalformed

qr_app = typer.Typer(help="EMV merchant-presented QR payloads: decode and encode.",
                     no_args_is_help=True)

# A payload is at most 512 characters; its JSON, with escapes, a few times that.
MAX_STDIN_CHARS = 16 * 1024
EXIT_INVALID = 2

_INITIATIONS = {InitiationMethod.STATIC: "static", InitiationMethod.DYNAMIC: "dynamic"}
_ADDITIONAL_ATTRS = tuple(attr for _, attr, _ in emvco._ADDITIONAL)
# The JSON key of each mandatory root field, with its ID, for "is mandatory" errors.
_MANDATORY = {"mcc": "52", "currency": "53", "country": "58", "merchant_name": "59",
              "merchant_city": "60"}


@qr_app.command("decode")
def decode_command() -> None:
    """Print the fields of the payload on standard input as JSON (exit 2 if it is refused)."""
    with _refusals():
        payload = _read_stdin().strip()
        qr = emvco.decode(payload)
        typer.echo(json.dumps(to_json(qr, crc=payload[-4:]), indent=2, ensure_ascii=False))


@qr_app.command("encode")
def encode_command() -> None:
    """Print the payload of the JSON on standard input, as ``decode`` prints it (exit 2 if
    it is refused). ``crc`` is ignored: the payload's CRC is computed."""
    with _refusals():
        text = _read_stdin()
        try:
            fields = json.loads(text)
        except json.JSONDecodeError as exc:
            raise QrMalformed(f"the input is not JSON ({exc.msg} at character {exc.pos})") \
                from exc
        typer.echo(from_json(fields).encode())


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """Exit 2 with the error's one-line message for a refused payload or JSON."""
    try:
        yield
    except QrError as exc:
        typer.echo(str(exc).splitlines()[0] if str(exc) else exc.code, err=True)
        raise typer.Exit(EXIT_INVALID) from None


def _read_stdin() -> str:
    text = sys.stdin.read(MAX_STDIN_CHARS + 1)
    if len(text) > MAX_STDIN_CHARS:
        raise QrMalformed(f"standard input holds more than {MAX_STDIN_CHARS} characters")
    return text


# -- model -> JSON -------------------------------------------------------------------------------


def to_json(qr: MerchantPresentedQr, *, crc: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "payload_format": emvco.PAYLOAD_FORMAT_INDICATOR,
        "initiation": _INITIATIONS.get(qr.initiation) if qr.initiation else None,
        "merchant_accounts": {tag: _template_json(v) if isinstance(v, GuiTemplate) else v
                              for tag, v in sorted(qr.merchant_accounts.items())},
        "mcc": qr.mcc,
        "currency": qr.currency_numeric,
        "amount": (emvco.format_amount(qr.amount_minor, qr.currency)
                   if qr.amount_minor is not None else None),
        "country": qr.country,
        "merchant_name": qr.name,
        "merchant_city": qr.city,
        "additional_data": _additional_json(qr.additional_data),
        "language": _language_json(qr.language),
        "crc": crc if crc is not None else qr.encode()[-4:],
    }
    if qr.postal_code is not None:
        out["postal_code"] = qr.postal_code
    if qr.tip is not None:
        out["tip"] = _tip_json(qr.tip, qr.currency)
    if qr.rfu:
        out["rfu"] = dict(qr.rfu)
    if qr.unreserved:
        out["unreserved"] = {tag: _template_json(t) for tag, t in qr.unreserved.items()}
    return out


def _template_json(template: GuiTemplate) -> dict[str, Any]:
    return {"gui": template.gui, "data": dict(template.data)}


def _additional_json(data: AdditionalData | None) -> dict[str, Any] | None:
    if data is None:
        return None
    out: dict[str, Any] = {attr: getattr(data, attr) for attr in _ADDITIONAL_ATTRS
                           if getattr(data, attr) is not None}
    if data.rfu:
        out["rfu"] = dict(data.rfu)
    if data.templates:
        out["templates"] = {tag: _template_json(t) for tag, t in data.templates.items()}
    return out


def _language_json(language: LanguageTemplate | None) -> dict[str, Any] | None:
    if language is None:
        return None
    out: dict[str, Any] = {"language": language.language, "name": language.name,
                           "city": language.city}
    if language.rfu:
        out["rfu"] = dict(language.rfu)
    return out


def _tip_json(tip: Tip, currency: str) -> dict[str, str]:
    match tip:
        case TipPrompt():
            return {"kind": "prompt"}
        case ConvenienceFeeFixed(amount_minor=amount_minor):
            return {"kind": "fixed", "amount": emvco.format_amount(amount_minor, currency)}
        case ConvenienceFeePercentage(rate_bp=rate_bp):
            return {"kind": "percentage", "rate": emvco._format_rate(rate_bp)}
    raise AssertionError(f"not a tip: {tip!r}")


# -- JSON -> model -------------------------------------------------------------------------------


def from_json(fields: Any) -> MerchantPresentedQr:
    """The model of the JSON ``to_json`` prints; a wrong shape is a typed QR error naming the
    data object, as the encoder's own refusals are."""
    if not isinstance(fields, dict):
        raise QrMalformed("the input must be a JSON object")
    for key, tag in _MANDATORY.items():
        if fields.get(key) is None:
            raise QrFieldMissing(f"is mandatory (JSON key {key!r})", field=tag,
                                 field_name=emvco.name_of(tag))
    payload_format = fields.get("payload_format", emvco.PAYLOAD_FORMAT_INDICATOR)
    if payload_format != emvco.PAYLOAD_FORMAT_INDICATOR:
        raise QrFieldInvalid(f"must be {emvco.PAYLOAD_FORMAT_INDICATOR!r}, not "
                             f"{payload_format!r}", field="00", field_name=emvco.name_of("00"))
    currency = emvco._currency_alpha(_text(fields["currency"], "53"))
    amount = fields.get("amount")
    return MerchantPresentedQr(
        merchant_accounts=_accounts(fields.get("merchant_accounts")),
        mcc=_text(fields["mcc"], "52"),
        currency=currency,
        country=_text(fields["country"], "58"),
        name=_text(fields["merchant_name"], "59"),
        city=_text(fields["merchant_city"], "60"),
        amount_minor=(emvco.parse_amount("54", _text(amount, "54"), currency)
                      if amount is not None else None),
        initiation=_initiation(fields.get("initiation")),
        tip=_tip(fields.get("tip"), currency),
        postal_code=(_text(fields["postal_code"], "61")
                     if fields.get("postal_code") is not None else None),
        additional_data=_additional(fields.get("additional_data")),
        language=_language(fields.get("language")),
        rfu=_strings(fields.get("rfu") or {}, "65-79"),
        unreserved={tag: _template(v, tag)
                    for tag, v in _object(fields.get("unreserved") or {}, "80-99").items()},
    )


def _text(value: Any, tag: str) -> str:
    if not isinstance(value, str):
        raise QrFieldInvalid(f"must be a JSON string, not {json.dumps(value)}", field=tag,
                             field_name=emvco.name_of(tag.split("-")[0]))
    return value


def _object(value: Any, tag: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise QrFieldInvalid("must be a JSON object", field=tag,
                             field_name=emvco.name_of(tag.split("-")[0]))
    return value


def _strings(value: Any, tag: str) -> dict[str, str]:
    return {k: _text(v, f"{tag}.{k}" if "-" not in tag else k)
            for k, v in _object(value, tag).items()}


def _initiation(value: Any) -> InitiationMethod | None:
    if value is None:
        return None
    for method, word in _INITIATIONS.items():
        if value in (word, method.value):
            return method
    raise QrFieldInvalid(f"must be 'static' or 'dynamic', not {json.dumps(value)}",
                         field="01", field_name=emvco.name_of("01"))


def _accounts(value: Any) -> dict[str, str | GuiTemplate]:
    if not value:
        raise QrFieldMissing("at least one merchant account (ID 02 to 51) is mandatory",
                             field="02-51", field_name="Merchant Account Information")
    accounts: dict[str, str | GuiTemplate] = {}
    for tag, account in _object(value, "02-51").items():
        accounts[tag] = (_template(account, tag) if isinstance(account, dict)
                         else _text(account, tag))
    return accounts


def _template(value: Any, tag: str) -> GuiTemplate:
    template = _object(value, tag)
    return GuiTemplate(gui=_text(template.get("gui"), f"{tag}.00"),
                       data=_strings(template.get("data") or {}, tag))


def _additional(value: Any) -> AdditionalData | None:
    if value is None:
        return None
    data = dict(_object(value, "62"))
    rfu = _strings(data.pop("rfu", None) or {}, "62")
    templates = {tag: _template(t, f"62.{tag}")
                 for tag, t in _object(data.pop("templates", None) or {}, "62").items()}
    unknown = sorted(set(data) - set(_ADDITIONAL_ATTRS))
    if unknown:
        raise QrFieldInvalid(f"has unknown keys {', '.join(unknown)}; the keys are "
                             f"{', '.join(_ADDITIONAL_ATTRS)}, rfu and templates",
                             field="62", field_name=emvco.name_of("62"))
    tags = {attr: tag for tag, attr, _ in emvco._ADDITIONAL}
    return AdditionalData(**{attr: _text(v, f"62.{tags[attr]}") for attr, v in data.items()
                             if v is not None}, rfu=rfu, templates=templates)


def _language(value: Any) -> LanguageTemplate | None:
    if value is None:
        return None
    data = _object(value, "64")
    for key, tag in (("language", "64.00"), ("name", "64.01")):
        if data.get(key) is None:
            raise QrFieldMissing(f"is mandatory in the language template (JSON key {key!r})",
                                 field=tag, field_name=emvco.name_of(tag))
    city = data.get("city")
    return LanguageTemplate(language=_text(data["language"], "64.00"),
                            name=_text(data["name"], "64.01"),
                            city=_text(city, "64.02") if city is not None else None,
                            rfu=_strings(data.get("rfu") or {}, "64"))


def _tip(value: Any, currency: str) -> Tip | None:
    if value is None:
        return None
    data = _object(value, "55")
    kind = data.get("kind")
    if kind == "prompt":
        return TipPrompt()
    if kind == "fixed":
        return ConvenienceFeeFixed(emvco.parse_amount("56", _text(data.get("amount"), "56"),
                                                      currency))
    if kind == "percentage":
        return ConvenienceFeePercentage(emvco._parse_rate(_text(data.get("rate"), "57")))
    raise QrFieldInvalid(f"kind must be 'prompt', 'fixed' or 'percentage', not "
                         f"{json.dumps(kind)}", field="55", field_name=emvco.name_of("55"))
