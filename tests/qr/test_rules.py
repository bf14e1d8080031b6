"""Every rule, broken once, on decode and on encode: a typed error that names the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bankwallet.qr import (
    AdditionalData,
    ConvenienceFeeFixed,
    ConvenienceFeePercentage,
    GuiTemplate,
    LanguageTemplate,
    MerchantPresentedQr,
    QrError,
    decode,
)
from bankwallet.qr.emvco import name_of

from .payloads import ACCOUNT, BASE, build, tlv, with_crc


def refused(call: Callable[[], object], code: str, field: str | None, fragment: str) -> QrError:
    with pytest.raises(QrError) as caught:
        call()
    error = caught.value
    assert error.code == code, error.detail
    assert error.field == field, error.detail
    assert fragment in error.rule, error.detail
    if field is not None:
        assert error.field_name
        assert error.detail.startswith(f"ID {field} ({error.field_name}): ")
        named_by_id = "an ID from" not in error.rule and error.field_name != "Unallocated"
        if "-" not in field and named_by_id:
            assert error.field_name == name_of(field)
    return error


def _lowercase_crc_payload() -> str:
    for n in range(100):
        payload = build(replace={"59": f"SHOP {n}"})
        if any(c in "ABCDEF" for c in payload[-4:]):
            return payload[:-4] + payload[-4:].lower()
    raise AssertionError("no CRC with a letter in 100 tries")


def _base_body() -> str:
    return tlv(*BASE)


DECODE_CASES: list[tuple[str, str, str, str | None, str]] = [
    # (case, payload, code, field, part of the rule)
    ("crc wrong", build()[:-4] + ("0000" if build()[-4:] != "0000" else "1111"),
     "qr_crc_mismatch", "63", "the payload says"),
    ("crc lowercase", _lowercase_crc_payload(), "qr_field_invalid", "63", "uppercase"),
    ("crc absent", _base_body(), "qr_field_missing", "63", "must be the last"),
    ("crc not last", build() + "610512345", "qr_field_missing", "63", "must be the last"),
    ("crc twice", with_crc(_base_body() + "6304ABCD"), "qr_field_invalid", "63",
     "more than once"),
    ("empty payload", "", "qr_field_missing", "63", "must be the last"),
    ("too long", "0" * 513, "qr_payload_too_long", None, "at most 512"),
    ("lone surrogate", tlv(*BASE[:-1], ("60", "BEIJING \ud800")) + "6304ABCD", "qr_malformed", None,
     "not valid Unicode"),
    ("id not digits", with_crc(_base_body() + "AB0212"), "qr_malformed", None,
     "two-digit ID"),
    ("length zero", with_crc(_base_body() + "6100"), "qr_malformed", "61", "length 00"),
    ("length past the end", with_crc(_base_body() + "612012345"), "qr_malformed", "61",
     "declares 20 characters"),
    ("00 missing", build(drop=("00",)), "qr_field_missing", "00", "first"),
    ("00 not first", with_crc(tlv(("01", "12"), ("00", "01"), *BASE[2:])), "qr_field_invalid",
     "00", "first"),
    ("00 value", build(replace={"00": "02"}), "qr_field_invalid", "00", "must be '01'"),
    ("01 value", build(replace={"01": "13"}), "qr_field_invalid", "01", "'11' (static)"),
    ("01 length", build(replace={"01": "111"}), "qr_field_invalid", "01", "exactly 2"),
    ("01 format", build(replace={"01": "1A"}), "qr_field_invalid", "01", "digits"),
    ("no merchant account", build(drop=("26",)), "qr_field_missing", "02-51",
     "at least one merchant account"),
    ("account template without GUI", build(replace={"26": tlv(("01", "X"))}),
     "qr_field_missing", "26.00", "mandatory"),
    ("GUI longer than 32", build(replace={"26": tlv(("00", "A" * 33))}), "qr_field_invalid",
     "26.00", "at most 32"),
    ("account template not a template", build(replace={"26": "not a template"}),
     "qr_malformed", "26", "two-digit ID"),
    ("account subfield twice", build(replace={"26": tlv(("00", "a.b"), ("01", "x"), ("01", "y"))}),
     "qr_field_invalid", "26.01", "more than once"),
    ("account subfield not ans", build(replace={"26": tlv(("00", "a.b"), ("01", "北京"))}),
     "qr_field_invalid", "26.01", "printable ASCII"),
    ("network account not ans", build(add=[("02", "4000 1234 ☕")]), "qr_field_invalid", "02",
     "printable ASCII"),
    ("account template too long", build(add=[("27", "0")]), "qr_malformed", "27",
     "two-digit ID"),
    ("52 missing", build(drop=("52",)), "qr_field_missing", "52", "mandatory"),
    ("52 not numeric", build(replace={"52": "58A2"}), "qr_field_invalid", "52", "digits"),
    ("52 length", build(replace={"52": "581"}), "qr_field_invalid", "52", "exactly 4"),
    ("53 missing", build(drop=("53",)), "qr_field_missing", "53", "mandatory"),
    ("53 unknown", build(replace={"53": "000"}), "qr_field_invalid", "53", "ISO 4217"),
    ("53 length", build(replace={"53": "15"}), "qr_field_invalid", "53", "exactly 3"),
    ("54 zero", build(add=[("54", "0")]), "qr_field_invalid", "54", "must not be zero"),
    ("54 zero with decimals", build(add=[("54", "0.00")]), "qr_field_invalid", "54",
     "must not be zero"),
    ("54 comma", build(add=[("54", "12,50")]), "qr_field_invalid", "54", "decimal mark"),
    ("54 sign", build(add=[("54", "-5")]), "qr_field_invalid", "54", "decimal mark"),
    ("54 space", build(add=[("54", "1 000")]), "qr_field_invalid", "54", "decimal mark"),
    ("54 two marks", build(add=[("54", "1.2.3")]), "qr_field_invalid", "54", "decimal mark"),
    ("54 mark alone", build(add=[("54", ".")]), "qr_field_invalid", "54", "decimal mark"),
    ("54 too many decimals", build(add=[("54", "1.234")]), "qr_field_invalid", "54",
     "has 3 decimals but CNY has 2"),
    ("54 decimals for JPY", build(replace={"53": "392"}, add=[("54", "1.5")]),
     "qr_field_invalid", "54", "has 1 decimals but JPY has 0"),
    ("54 too long", build(add=[("54", "12345678901234")]), "qr_field_invalid", "54",
     "at most 13"),
    ("54 full-width digits", build(add=[("54", "１２")]), "qr_field_invalid", "54",
     "printable ASCII"),
    ("55 value", build(add=[("55", "04")]), "qr_field_invalid", "55", "'01', '02' or '03'"),
    ("56 missing for 02", build(add=[("55", "02")]), "qr_field_missing", "56",
     "mandatory when ID 55"),
    ("56 without 55", build(add=[("56", "1.00")]), "qr_field_invalid", "56",
     "absent unless ID 55"),
    ("56 with tip prompt", build(add=[("55", "01"), ("56", "1.00")]), "qr_field_invalid", "56",
     "absent unless ID 55"),
    ("56 zero", build(add=[("55", "02"), ("56", "0")]), "qr_field_invalid", "56",
     "must not be zero"),
    ("56 too many decimals", build(add=[("55", "02"), ("56", "0.001")]), "qr_field_invalid",
     "56", "has 3 decimals"),
    ("57 with fixed fee", build(add=[("55", "02"), ("56", "1"), ("57", "5")]),
     "qr_field_invalid", "57", "absent unless ID 55"),
    ("57 missing for 03", build(add=[("55", "03")]), "qr_field_missing", "57",
     "mandatory when ID 55"),
    ("57 without 55", build(add=[("57", "5")]), "qr_field_invalid", "57",
     "absent unless ID 55"),
    ("57 100 percent", build(add=[("55", "03"), ("57", "100")]), "qr_field_invalid", "57",
     "00.01 to 99.99"),
    ("57 zero", build(add=[("55", "03"), ("57", "00.00")]), "qr_field_invalid", "57",
     "00.01 to 99.99"),
    ("57 three decimals", build(add=[("55", "03"), ("57", "5.001")]), "qr_field_invalid", "57",
     "at most 2 decimals"),
    ("57 percent sign", build(add=[("55", "03"), ("57", "5%")]), "qr_field_invalid", "57",
     "decimal mark"),
    ("57 too long", build(add=[("55", "03"), ("57", "10.000")]), "qr_field_invalid", "57",
     "at most 5"),
    ("58 missing", build(drop=("58",)), "qr_field_missing", "58", "mandatory"),
    ("58 unknown", build(replace={"58": "XX"}), "qr_field_invalid", "58", "ISO 3166-1"),
    ("58 lowercase", build(replace={"58": "cn"}), "qr_field_invalid", "58", "ISO 3166-1"),
    ("58 alpha-3", build(replace={"58": "CHN"}), "qr_field_invalid", "58", "exactly 2"),
    ("59 missing", build(drop=("59",)), "qr_field_missing", "59", "mandatory"),
    ("59 26 characters", build(replace={"59": "A" * 26}), "qr_field_invalid", "59",
     "at most 25"),
    ("59 Chinese", build(replace={"59": "最佳运输"}), "qr_field_invalid", "59",
     "printable ASCII"),
    ("59 control character", build(replace={"59": "BEST\x07TRANSPORT"}), "qr_field_invalid",
     "59", "printable ASCII"),
    ("59 twice", build(add=[("59", "OTHER")]), "qr_field_invalid", "59", "more than once"),
    ("60 missing", build(drop=("60",)), "qr_field_missing", "60", "mandatory"),
    ("60 16 characters", build(replace={"60": "B" * 16}), "qr_field_invalid", "60",
     "at most 15"),
    ("61 11 characters", build(add=[("61", "1" * 11)]), "qr_field_invalid", "61",
     "at most 10"),
    ("62.00 unallocated", build(add=[("62", tlv(("00", "x")))]), "qr_field_invalid", "62.00",
     "not an allocated ID"),
    ("62.05 26 characters", build(add=[("62", tlv(("05", "R" * 26)))]), "qr_field_invalid",
     "62.05", "at most 25"),
    ("62.01 newline", build(add=[("62", tlv(("01", "INV\n1")))]), "qr_field_invalid", "62.01",
     "printable ASCII"),
    ("62.05 twice", build(add=[("62", tlv(("05", "A"), ("05", "B")))]), "qr_field_invalid",
     "62.05", "more than once"),
    ("62.09 repeated letter", build(add=[("62", tlv(("09", "MM")))]), "qr_field_invalid",
     "62.09", "each at most once"),
    ("62.09 unknown letter", build(add=[("62", tlv(("09", "X")))]), "qr_field_invalid",
     "62.09", "'A' (address)"),
    ("62.09 four letters", build(add=[("62", tlv(("09", "AMEA")))]), "qr_field_invalid",
     "62.09", "at most 3"),
    ("62.50 without GUI", build(add=[("62", tlv(("50", tlv(("01", "x")))))]),
     "qr_field_missing", "62.50.00", "mandatory"),
    ("62 not a template", build(add=[("62", "hello")]), "qr_malformed", "62", "two-digit ID"),
    ("64.00 missing", build(add=[("64", tlv(("01", "最佳运输")))]), "qr_field_missing", "64.00",
     "mandatory"),
    ("64.01 missing", build(add=[("64", tlv(("00", "ZH")))]), "qr_field_missing", "64.01",
     "mandatory"),
    ("64.00 unknown language", build(add=[("64", tlv(("00", "XX"), ("01", "最佳")))]),
     "qr_field_invalid", "64.00", "ISO 639-1"),
    ("64.01 26 characters", build(add=[("64", tlv(("00", "ZH"), ("01", "最" * 26)))]),
     "qr_field_invalid", "64.01", "at most 25"),
    ("64.02 16 characters", build(add=[("64", tlv(("00", "ZH"), ("01", "最"), ("02", "北" * 16)))]),
     "qr_field_invalid", "64.02", "at most 15"),
    ("64.01 control character", build(add=[("64", tlv(("00", "ZH"), ("01", "最\x00")))]),
     "qr_field_invalid", "64.01", "control characters"),
    ("65 control character", build(add=[("65", "RFU\x1b")]), "qr_field_invalid", "65",
     "control characters"),
    ("80 without GUI", build(add=[("80", tlv(("01", "x")))]), "qr_field_missing", "80.00",
     "mandatory"),
]


@pytest.mark.parametrize(("payload", "code", "field", "fragment"),
                         [case[1:] for case in DECODE_CASES], ids=[c[0] for c in DECODE_CASES])
def test_decode_refuses(payload: str, code: str, field: str | None, fragment: str) -> None:
    refused(lambda: decode(payload), code, field, fragment)


def test_the_base_payload_of_these_cases_is_valid() -> None:
    qr = decode(build())
    assert qr.merchant_accounts == {"26": GuiTemplate(gui="com.example.pay",
                                                      data={"01": "MERCHANT-0042"})}
    assert ACCOUNT[0] == "26"


def test_unknown_ids_in_allowed_ranges_are_kept() -> None:
    payload = build(add=[
        ("07", "EMVCO-RESERVED"),
        ("65", "RFU ROOT"),
        ("62", tlv(("05", "REF"), ("11", "RFU 62"), ("60", tlv(("00", "x.y"), ("99", "z"))))),
        ("64", tlv(("00", "zh"), ("01", "最佳"), ("07", "RFU 64"))),
        ("99", tlv(("00", "org.example"), ("42", "context"))),
    ])
    qr = decode(payload)
    assert qr.merchant_accounts["07"] == "EMVCO-RESERVED"
    assert qr.rfu == {"65": "RFU ROOT"}
    assert qr.additional_data == AdditionalData(
        reference_label="REF", rfu={"11": "RFU 62"},
        templates={"60": GuiTemplate(gui="x.y", data={"99": "z"})})
    assert qr.language == LanguageTemplate(language="zh", name="最佳", rfu={"07": "RFU 64"})
    assert qr.unreserved == {"99": GuiTemplate(gui="org.example", data={"42": "context"})}
    assert decode(qr.encode()) == qr


# -- encode: the same rules, on the model ---------------------------------------------------------

VALID = decode(build())


def model(**changes: Any) -> MerchantPresentedQr:
    fields = {name: getattr(VALID, name) for name in MerchantPresentedQr.__dataclass_fields__}
    return MerchantPresentedQr(**{**fields, **changes})


ENCODE_CASES: list[tuple[str, dict[str, Any], str, str | None, str]] = [
    ("name 26 characters", {"name": "A" * 26}, "qr_field_invalid", "59", "at most 25"),
    ("name empty", {"name": ""}, "qr_field_invalid", "59", "must not be empty"),
    ("name Chinese", {"name": "最佳运输"}, "qr_field_invalid", "59", "printable ASCII"),
    ("city 16 characters", {"city": "B" * 16}, "qr_field_invalid", "60", "at most 15"),
    ("postal code 11", {"postal_code": "1" * 11}, "qr_field_invalid", "61", "at most 10"),
    ("mcc letters", {"mcc": "58A2"}, "qr_field_invalid", "52", "digits"),
    ("mcc length", {"mcc": "58120"}, "qr_field_invalid", "52", "exactly 4"),
    ("currency unknown", {"currency": "XYZ"}, "qr_field_invalid", "53", "ISO 4217"),
    ("currency lowercase", {"currency": "cny"}, "qr_field_invalid", "53", "ISO 4217"),
    ("country unknown", {"country": "XX"}, "qr_field_invalid", "58", "ISO 3166-1"),
    ("country lowercase", {"country": "cn"}, "qr_field_invalid", "58", "ISO 3166-1"),
    ("amount zero", {"amount_minor": 0}, "qr_field_invalid", "54", "greater than zero"),
    ("amount negative", {"amount_minor": -100}, "qr_field_invalid", "54", "greater than zero"),
    ("amount 14 characters", {"currency": "JPY", "amount_minor": 10**13}, "qr_field_invalid",
     "54", "at most 13"),
    ("fixed fee zero", {"tip": ConvenienceFeeFixed(0)}, "qr_field_invalid", "56",
     "greater than zero"),
    ("percentage zero", {"tip": ConvenienceFeePercentage(0)}, "qr_field_invalid", "57",
     "00.01 to 99.99"),
    ("percentage 100", {"tip": ConvenienceFeePercentage(10000)}, "qr_field_invalid", "57",
     "00.01 to 99.99"),
    ("no merchant account", {"merchant_accounts": {}}, "qr_field_missing", "02-51",
     "at least one merchant account"),
    ("account ID 01", {"merchant_accounts": {"01": "x"}}, "qr_field_invalid", "01",
     "from 02 to 51"),
    ("account ID 52", {"merchant_accounts": {"52": GuiTemplate("x")}}, "qr_field_invalid", "52",
     "from 02 to 51"),
    ("account template as a string", {"merchant_accounts": {"26": "x"}}, "qr_field_invalid",
     "26", "must be a GuiTemplate"),
    ("network account as a template", {"merchant_accounts": {"02": GuiTemplate("x")}},
     "qr_field_invalid", "02", "plain str"),
    ("template data 00", {"merchant_accounts": {"26": GuiTemplate("x", {"00": "y"})}},
     "qr_field_invalid", "26.00", "from 01 to 99"),
    ("template GUI 33", {"merchant_accounts": {"26": GuiTemplate("g" * 33)}},
     "qr_field_invalid", "26.00", "at most 32"),
    ("template GUI empty", {"merchant_accounts": {"26": GuiTemplate("")}}, "qr_field_invalid",
     "26.00", "must not be empty"),
    ("template past 99", {"merchant_accounts": {"26": GuiTemplate(
        "g" * 32, {"01": "a" * 40, "02": "b" * 20})}}, "qr_field_invalid", "26", "at most 99"),
    ("template subfield ID one digit", {"merchant_accounts": {"26": GuiTemplate(
        "g", {"1": "a"})}}, "qr_field_invalid", "26.1", "from 01 to 99"),
    ("additional data empty", {"additional_data": AdditionalData()}, "qr_field_invalid", "62",
     "at least one data object"),
    ("additional data label 26", {"additional_data": AdditionalData(store_label="S" * 26)},
     "qr_field_invalid", "62.03", "at most 25"),
    ("additional data rfu 05", {"additional_data": AdditionalData(rfu={"05": "x"})},
     "qr_field_invalid", "62.05", "from 10 to 49"),
    ("additional data template 49", {"additional_data": AdditionalData(
        templates={"49": GuiTemplate("x")})}, "qr_field_invalid", "62.49", "from 50 to 99"),
    ("consumer data request", {"additional_data": AdditionalData(consumer_data_request="MX")},
     "qr_field_invalid", "62.09", "'A' (address)"),
    ("language name 26", {"language": LanguageTemplate("zh", "最" * 26)}, "qr_field_invalid",
     "64.01", "at most 25"),
    ("language city 16", {"language": LanguageTemplate("zh", "最", "北" * 16)},
     "qr_field_invalid", "64.02", "at most 15"),
    ("language code", {"language": LanguageTemplate("xx", "最")}, "qr_field_invalid", "64.00",
     "ISO 639-1"),
    ("language rfu 01", {"language": LanguageTemplate("zh", "最", rfu={"01": "x"})},
     "qr_field_invalid", "64.01", "from 03 to 99"),
    ("root rfu 80", {"rfu": {"80": "x"}}, "qr_field_invalid", "80", "from 65 to 79"),
    ("unreserved 79", {"unreserved": {"79": GuiTemplate("x")}}, "qr_field_invalid", "79",
     "from 80 to 99"),
    ("payload past 512", {"merchant_accounts": {f"{n:02d}": "x" * 99 for n in range(2, 8)}},
     "qr_payload_too_long", None, "at most 512"),
]


@pytest.mark.parametrize(("changes", "code", "field", "fragment"),
                         [case[1:] for case in ENCODE_CASES], ids=[c[0] for c in ENCODE_CASES])
def test_encode_refuses(changes: dict[str, Any], code: str, field: str | None,
                        fragment: str) -> None:
    qr = model(**changes)
    refused(qr.encode, code, field, fragment)
