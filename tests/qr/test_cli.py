"""``bankwallet qr decode|encode``: JSON out, the same payload back, exit 2 naming the field."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from bankwallet.cli import app
from bankwallet.qr import GuiTemplate, InitiationMethod, MerchantPresentedQr
from qr.payloads import EMVCO_MODEL, EMVCO_SPEC_EXAMPLE

runner = CliRunner()

STATIC = MerchantPresentedQr(
    merchant_accounts={"26": GuiTemplate(gui="CN.BANKWALLET", data={"01": "m-42"})},
    mcc="5812", currency="CNY", country="CN", name="Lotus Noodle Bar", city="Shanghai",
    initiation=InitiationMethod.STATIC).encode()


def decode(payload: str):
    return runner.invoke(app, ["qr", "decode"], input=payload + "\n")


def encode(fields: object):
    return runner.invoke(app, ["qr", "encode"], input=json.dumps(fields, ensure_ascii=False))


def test_decode_prints_the_fields() -> None:
    result = decode(EMVCO_SPEC_EXAMPLE)
    assert result.exit_code == 0, result.output
    fields = json.loads(result.stdout)
    assert fields["payload_format"] == "01"
    assert fields["initiation"] == "dynamic"
    assert fields["merchant_accounts"]["29"] == {"gui": "D15600000000",
                                                 "data": {"05": "A93FO3230Q"}}
    assert fields["mcc"] == "4111"
    assert fields["currency"] == "156"
    assert fields["amount"] == "23.72"
    assert fields["country"] == "CN"
    assert fields["merchant_name"] == "BEST TRANSPORT"
    assert fields["merchant_city"] == "BEIJING"
    assert fields["additional_data"]["terminal_label"] == "A6008667"
    assert fields["language"] == {"language": "ZH", "name": "最佳运输", "city": "北京"}
    assert fields["crc"] == "A13A"


def test_static_code_has_no_amount() -> None:
    fields = json.loads(decode(STATIC).stdout)
    assert fields["initiation"] == "static"
    assert fields["amount"] is None
    assert fields["additional_data"] is None


def test_round_trip_of_canonical_payloads() -> None:
    for payload in (EMVCO_MODEL.encode(), STATIC):
        decoded = decode(payload)
        assert decoded.exit_code == 0, decoded.output
        encoded = runner.invoke(app, ["qr", "encode"], input=decoded.stdout)
        assert encoded.exit_code == 0, encoded.output
        assert encoded.stdout.strip() == payload


def test_a_corrupted_payload_exits_2_naming_the_field() -> None:
    broken = STATIC.replace("Shanghai", "Shanghal")
    result = decode(broken)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("ID 63 (CRC):")


def test_a_bad_field_exits_2_naming_it() -> None:
    fields = json.loads(decode(STATIC).stdout)
    result = encode({**fields, "mcc": "58X2"})
    assert result.exit_code == 2
    assert "ID 52 (Merchant Category Code)" in result.stderr
    assert "format N" in result.stderr


def test_encode_refuses_a_missing_field_and_non_json() -> None:
    fields = json.loads(decode(STATIC).stdout)
    del fields["merchant_city"]
    result = encode(fields)
    assert result.exit_code == 2
    assert result.stderr.startswith("ID 60 (Merchant City): is mandatory")
    assert runner.invoke(app, ["qr", "encode"], input="{not json").exit_code == 2


def test_encode_ignores_the_crc_given() -> None:
    fields = json.loads(decode(STATIC).stdout)
    result = encode({**fields, "merchant_name": "Lotus Tea", "crc": "0000"})
    assert result.exit_code == 0, result.output
    assert MerchantPresentedQr.decode(result.stdout.strip()).name == "Lotus Tea"
