"""Helpers to build EMV QR payloads by hand, valid or deliberately broken."""

from __future__ import annotations

from bankwallet.qr import (
    AdditionalData,
    GuiTemplate,
    InitiationMethod,
    LanguageTemplate,
    MerchantPresentedQr,
    TipPrompt,
)
from bankwallet.qr.emvco import crc_hex

# The example of the EMVCo MPM specification, as the open-source EMV QR libraries test it
# (mvallim/emv-qrcode, mercari/go-emv-code, ...). The issue quoted it with "0708A6008676": two
# digits swapped in the terminal label, which is exactly what the CRC is there to catch (that
# text computes to 8639, not A13A).
EMVCO_SPEC_EXAMPLE = (
    "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678"
    "520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京"
    "540523.7253031565502016233030412340603***0708A60086670902ME"
    "91320016A0112233449988770708123456786304A13A"
)
EMVCO_MODEL = MerchantPresentedQr(
    merchant_accounts={
        "29": GuiTemplate(gui="D15600000000", data={"05": "A93FO3230Q"}),
        "31": GuiTemplate(gui="D15600000001", data={"03": "12345678"}),
    },
    mcc="4111", currency="CNY", country="CN", name="BEST TRANSPORT", city="BEIJING",
    amount_minor=2372, initiation=InitiationMethod.DYNAMIC, tip=TipPrompt(),
    additional_data=AdditionalData(store_label="1234", customer_label="***",
                                   terminal_label="A6008667", consumer_data_request="ME"),
    language=LanguageTemplate(language="ZH", name="最佳运输", city="北京"),
    unreserved={"91": GuiTemplate(gui="A011223344998877", data={"07": "12345678"})},
)


def tlv(*pairs: tuple[str, str]) -> str:
    """Data objects with their length counted in characters, as the spec says."""
    return "".join(f"{tag}{len(value):02d}{value}" for tag, value in pairs)


def with_crc(body: str) -> str:
    """Appends ID 63 with the right checksum to a body that does not end in "6304" yet."""
    body += "6304"
    return body + crc_hex(body)


ACCOUNT = ("26", tlv(("00", "com.example.pay"), ("01", "MERCHANT-0042")))
BASE = [
    ("00", "01"),
    ("01", "12"),
    ACCOUNT,
    ("52", "5812"),
    ("53", "156"),
    ("58", "CN"),
    ("59", "BEST TRANSPORT"),
    ("60", "BEIJING"),
]


def build(replace: dict[str, str] | None = None, drop: tuple[str, ...] = (),
          add: list[tuple[str, str]] | None = None) -> str:
    """BASE with some values replaced, some IDs dropped and some objects appended, then a CRC."""
    replace = replace or {}
    pairs = [(tag, replace.get(tag, value)) for tag, value in BASE if tag not in drop]
    return with_crc(tlv(*pairs, *(add or [])))
