"""EMVCo merchant-presented QR: published payloads, the CRC, amounts, Unicode and round trips."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bankwallet.core.errors import InvalidInput
from bankwallet.qr import (
    AdditionalData,
    ConvenienceFeeFixed,
    ConvenienceFeePercentage,
    GuiTemplate,
    InitiationMethod,
    LanguageTemplate,
    MerchantPresentedQr,
    QrCrcMismatch,
    QrError,
    QrPayloadTooLong,
    TipPrompt,
    decode,
    encode,
)
from bankwallet.qr.emvco import crc16_ccitt_false, crc_hex, format_amount, name_of, parse_amount

from .payloads import EMVCO_MODEL, EMVCO_SPEC_EXAMPLE, build, tlv, with_crc

# -- published payloads ---------------------------------------------------------------------------

# mercari/go-emv-code's test payload: the same merchant, objects in another order, two
# unreserved templates whose GUI is a UUID.
GO_EMV_CODE_EXAMPLE = (
    "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678"
    "520441115303156540523.725502015802CN5914BEST TRANSPORT6007BEIJING"
    "6233030412340603***0708A60086670902ME64200002ZH0104最佳运输0202北京"
    "8036003239401ff0c21a4543a8ed5fbaa30ab02e81360032c2fbf6dd646f4f36b617f10747c0b961"
    "63046F32"
)
# Banco Central do Brasil, "Manual de Padrões para Iniciação do Pix", annex I (static Pix).
PIX_EXAMPLE = (
    "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-426655440000"
    "5204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D"
)
# Mastercard developer documentation, "Generate QR Code for Merchants" (ID 05: Mastercard).
MASTERCARD_EXAMPLE = (
    "000201010211057704736a2f41a3-c54c-fce8-32d2-0324e1c32e22*3440e5bf-81ca-4c5f-a1b2-"
    "cf989f09a03952045024530384054031005802US5913Test Merchant6008New York"
    "62080304123463046F6D"
)
# A PayMaya MPM specification draft, appendix A (Meralco bill): templates in 62.50 and 80.
PAYMAYA_EXAMPLE = (
    "00020101021226150011com.paymaya5204490053036085405390.85802PH5907Meralco6005Pasig"
    "62530110046649980150350020com.paymaya.billspay0107meralco"
    "80870015com.bayadcenter0105000010205MECOA03160466499801810136"
    "042604664998018121013612102603" "63041DB5"
)
# Published payloads with a right CRC that break a rule: the "promptpay-qr" reference payload
# (Thai PromptPay leaves out the MCC, name and city) and phannaly/emv-qr-code's README
# example (a 16-character city).
PROMPTPAY_EXAMPLE = "00020101021129370016A000000677010111011300668123456785802TH530376463045D82"
CITY_TOO_LONG_EXAMPLE = (
    "00020101021252044131153137210116372101160123456789ABCDE6016Banteay Meanchey"
    "5913Kuntheas Shop5802KH540510.005303840621201081234567863041FF2"
)

def test_the_emvco_specification_example_decodes_to_its_fields() -> None:
    assert decode(EMVCO_SPEC_EXAMPLE) == EMVCO_MODEL
    assert crc_hex(EMVCO_SPEC_EXAMPLE[:-4]) == "A13A"


def test_the_example_as_quoted_in_the_issue_is_refused_by_its_crc() -> None:
    quoted = EMVCO_SPEC_EXAMPLE.replace("0708A6008667", "0708A6008676")
    with pytest.raises(QrCrcMismatch) as caught:
        decode(quoted)
    assert caught.value.code == "qr_crc_mismatch"
    assert "A13A" in caught.value.detail and "8639" in caught.value.detail


def test_the_same_merchant_in_another_order_decodes_to_the_same_fields() -> None:
    qr = decode(GO_EMV_CODE_EXAMPLE)
    assert qr.unreserved == {"80": GuiTemplate(gui="39401ff0c21a4543a8ed5fbaa30ab02e"),
                             "81": GuiTemplate(gui="c2fbf6dd646f4f36b617f10747c0b961")}
    uuid_free = MerchantPresentedQr(**{**_fields(qr), "unreserved": EMVCO_MODEL.unreserved})
    assert uuid_free == EMVCO_MODEL


def test_a_pix_payload_decodes() -> None:
    qr = decode(PIX_EXAMPLE)
    assert qr.merchant_accounts == {"26": GuiTemplate(
        gui="br.gov.bcb.pix", data={"01": "123e4567-e12b-12d1-a456-426655440000"})}
    assert (qr.mcc, qr.currency, qr.currency_numeric, qr.country) == ("0000", "BRL", "986", "BR")
    assert (qr.name, qr.city, qr.amount_minor, qr.initiation) == (
        "Fulano de Tal", "BRASILIA", None, None)
    assert qr.additional_data == AdditionalData(reference_label="***")


def test_a_mastercard_payload_with_a_primitive_network_account_decodes() -> None:
    qr = decode(MASTERCARD_EXAMPLE)
    assert list(qr.merchant_accounts) == ["05"]
    assert qr.merchant_accounts["05"].startswith("04736a2f41a3-")  # type: ignore[union-attr]
    assert (qr.currency, qr.amount_minor, qr.initiation) == ("USD", 10000,
                                                              InitiationMethod.STATIC)


def test_payment_system_templates_inside_additional_data_decode() -> None:
    qr = decode(PAYMAYA_EXAMPLE)
    assert qr.amount_minor == 39080  # "390.8" PHP: fewer decimals than the currency is fine
    assert qr.additional_data is not None
    assert qr.additional_data.bill_number == "0466499801"
    assert qr.additional_data.templates == {"50": GuiTemplate(
        gui="com.paymaya.billspay", data={"01": "meralco"})}
    assert qr.unreserved["80"].gui == "com.bayadcenter"
    assert qr.unreserved["80"].data["02"] == "MECOA"


@pytest.mark.parametrize("payload", [EMVCO_SPEC_EXAMPLE, GO_EMV_CODE_EXAMPLE, PIX_EXAMPLE,
                                     MASTERCARD_EXAMPLE, PAYMAYA_EXAMPLE])
def test_published_payloads_re_encode_to_a_payload_that_reads_back_the_same(payload: str) -> None:
    qr = decode(payload)
    again = qr.encode()
    assert decode(again) == qr
    assert again.startswith("000201") and again[-8:-4] == "6304"


def test_the_canonical_encoding_of_the_emvco_example() -> None:
    # The spec example's data objects in ascending ID order, the CRC last.
    body = ("00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678"
            "520441115303156540523.725502015802CN5914BEST TRANSPORT6007BEIJING"
            "6233030412340603***0708A60086670902ME64200002ZH0104最佳运输0202北京"
            "91320016A0112233449988770708123456786304")
    assert EMVCO_MODEL.encode() == body + "7D4F"


def test_a_promptpay_payload_without_mcc_name_and_city_is_refused() -> None:
    with pytest.raises(QrError) as caught:
        decode(PROMPTPAY_EXAMPLE)
    assert caught.value.code == "qr_field_missing"
    assert caught.value.field == "52"


def test_a_published_payload_with_a_16_character_city_is_refused() -> None:
    with pytest.raises(QrError) as caught:
        decode(CITY_TOO_LONG_EXAMPLE)
    assert caught.value.code == "qr_field_invalid"
    assert caught.value.detail == (
        "ID 60 (Merchant City): must be at most 15 characters long, not 16")


def _fields(qr: MerchantPresentedQr) -> dict[str, object]:
    return {name: getattr(qr, name) for name in MerchantPresentedQr.__dataclass_fields__}


# -- CRC-16/CCITT-FALSE ---------------------------------------------------------------------------


def _crc_bitwise(data: bytes) -> int:
    """The textbook shift-register form, to check the table-driven one against."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def test_crc_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert crc_hex("123456789") == "29B1"
    assert crc16_ccitt_false(b"") == 0xFFFF


@given(st.binary(max_size=600))
def test_crc_matches_the_shift_register_definition(data: bytes) -> None:
    assert crc16_ccitt_false(data) == _crc_bitwise(data)


def test_crc_covers_utf8_bytes_and_is_four_uppercase_hex_digits() -> None:
    assert crc_hex("北京") == f"{_crc_bitwise('北京'.encode()):04X}"
    payload = EMVCO_MODEL.encode()
    assert payload[-4:] == payload[-4:].upper() and len(payload[-4:]) == 4


# -- amounts in minor units -----------------------------------------------------------------------


@pytest.mark.parametrize(("amount_minor", "currency", "text"), [
    (2372, "CNY", "23.72"),
    (5, "CNY", "0.05"),
    (100, "CNY", "1.00"),
    (500, "JPY", "500"),
    (1, "JPY", "1"),
    (1234, "KWD", "1.234"),
    (1000, "KWD", "1.000"),
    (9_999_999_999_99, "CNY", "9999999999.99"),
])
def test_amounts_convert_exactly(amount_minor: int, currency: str, text: str) -> None:
    assert format_amount(amount_minor, currency) == text
    assert parse_amount("54", text, currency) == amount_minor


@pytest.mark.parametrize(("text", "currency", "amount_minor"), [
    ("23.7", "CNY", 2370),  # fewer decimals than the currency: allowed
    ("23.", "CNY", 2300),  # the spec's "98." form
    ("23", "CNY", 2300),
    (".5", "CNY", 50),
    ("0023.72", "CNY", 2372),
    ("500.", "JPY", 500),
    ("1.2", "KWD", 1200),
])
def test_amounts_in_other_valid_spellings(text: str, currency: str, amount_minor: int) -> None:
    assert parse_amount("54", text, currency) == amount_minor


@pytest.mark.parametrize(("currency", "amount_minor", "text"), [
    ("CNY", 2372, "23.72"), ("JPY", 500, "500"), ("KWD", 1234, "1.234")])
def test_amounts_for_cny_jpy_kwd_round_trip_through_a_payload(
        currency: str, amount_minor: int, text: str) -> None:
    qr = MerchantPresentedQr(**{**_fields(EMVCO_MODEL), "currency": currency,
                                "amount_minor": amount_minor,
                                "tip": ConvenienceFeeFixed(amount_minor)})
    payload = qr.encode()
    assert f"54{len(text):02d}{text}" in payload
    assert f"56{len(text):02d}{text}" in payload
    assert decode(payload) == qr


def test_the_largest_amount_fits_thirteen_characters() -> None:
    jpy = MerchantPresentedQr(**{**_fields(EMVCO_MODEL), "currency": "JPY",
                                 "amount_minor": 10**13 - 1})
    assert "54139999999999999" in jpy.encode()


# -- Unicode ---------------------------------------------------------------------------------------


def test_lengths_count_characters_not_bytes() -> None:
    payload = EMVCO_MODEL.encode()
    assert "64200002ZH0104最佳运输0202北京" in payload  # 20 characters, 36 bytes


def test_a_25_character_chinese_name_fits_the_language_template() -> None:
    name = "最" * 25
    qr = MerchantPresentedQr(**{**_fields(EMVCO_MODEL), "language": LanguageTemplate(
        language="zh", name=name, city="北" * 15)})
    assert decode(qr.encode()) == qr
    assert f"0125{name}" in qr.encode()


def test_emoji_and_accents_count_as_one_character_each() -> None:
    qr = MerchantPresentedQr(**{**_fields(EMVCO_MODEL), "language": LanguageTemplate(
        language="fr", name="Café ☕ Crème", city="Zürich")})
    assert "0112Café ☕ Crème0206Zürich" in qr.encode()
    assert decode(qr.encode()) == qr


# -- round trips and corruption (hypothesis) ------------------------------------------------------

ANS = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
UNICODE = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"))


def text(alphabet: st.SearchStrategy[str], max_size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=1, max_size=max_size)


def ids(first: int, last: int) -> st.SearchStrategy[str]:
    return st.integers(first, last).map(lambda n: f"{n:02d}")


def gui_templates(alphabet: st.SearchStrategy[str]) -> st.SearchStrategy[GuiTemplate]:
    # At most 4 + 32 + 3 * (4 + 12) = 84 characters: always fits a 99-character template.
    return st.builds(GuiTemplate, gui=text(ANS, 32),
                     data=st.dictionaries(ids(1, 99), text(alphabet, 12), max_size=3))


@st.composite
def additional_data(draw: st.DrawFn) -> AdditionalData:
    # At most 3 * 14 + 7 + 14 + 36 = 99 characters.
    labels = draw(st.lists(st.sampled_from([
        "bill_number", "mobile_number", "store_label", "loyalty_number", "reference_label",
        "customer_label", "terminal_label", "purpose_of_transaction"]), max_size=3, unique=True))
    fields = {label: draw(st.one_of(st.just("***"), text(ANS, 10))) for label in labels}
    request = draw(st.one_of(st.none(), st.permutations("AME").flatmap(
        lambda letters: st.integers(1, 3).map(lambda n: "".join(letters[:n])))))
    rfu = draw(st.dictionaries(ids(10, 49), text(UNICODE, 10), max_size=1))
    templates = draw(st.dictionaries(ids(50, 99), st.builds(
        GuiTemplate, gui=text(ANS, 16),
        data=st.dictionaries(ids(1, 99), text(UNICODE, 12), max_size=1)), max_size=1))
    assume(fields or request or rfu or templates)
    return AdditionalData(**fields, consumer_data_request=request, rfu=rfu, templates=templates)


CURRENCIES = ["CNY", "JPY", "KWD", "USD", "EUR", "BHD", "CLF", "IDR", "HKD", "BRL"]


@st.composite
def models(draw: st.DrawFn) -> MerchantPresentedQr:
    primitive = draw(st.dictionaries(ids(2, 25), text(ANS, 30), max_size=2))
    templates = draw(st.dictionaries(ids(26, 51), gui_templates(ANS), max_size=2))
    assume(primitive or templates)
    currency = draw(st.sampled_from(CURRENCIES))
    amounts = st.integers(1, 10**12 - 1)  # at most 12 digits and a ".": within 13 characters
    tip = draw(st.one_of(st.none(), st.just(TipPrompt()),
                         st.builds(ConvenienceFeeFixed, amounts),
                         st.builds(ConvenienceFeePercentage, st.integers(1, 9999))))
    language = draw(st.one_of(st.none(), st.builds(
        LanguageTemplate, language=st.sampled_from(["ZH", "zh", "en", "ja", "AR"]),
        name=text(UNICODE, 25), city=st.one_of(st.none(), text(UNICODE, 15)),
        rfu=st.dictionaries(ids(3, 99), text(UNICODE, 10), max_size=1))))
    return MerchantPresentedQr(
        merchant_accounts={**primitive, **templates},
        mcc=draw(st.text("0123456789", min_size=4, max_size=4)),
        currency=currency,
        country=draw(st.sampled_from(["CN", "JP", "KW", "US", "DE", "ID", "BR", "SG", "HK"])),
        name=draw(text(ANS, 25)),
        city=draw(text(ANS, 15)),
        amount_minor=draw(st.one_of(st.none(), amounts)),
        initiation=draw(st.one_of(st.none(), st.sampled_from(InitiationMethod))),
        tip=tip,
        postal_code=draw(st.one_of(st.none(), text(ANS, 10))),
        additional_data=draw(st.one_of(st.none(), additional_data())),
        language=language,
        rfu=draw(st.dictionaries(ids(65, 79), text(UNICODE, 20), max_size=1)),
        unreserved=draw(st.dictionaries(ids(80, 99), gui_templates(UNICODE), max_size=1)),
    )


def encoded(qr: MerchantPresentedQr) -> str:
    try:
        return qr.encode()
    except QrPayloadTooLong:  # a model past 512 characters is not a valid one
        assume(False)
        raise


@settings(max_examples=300, deadline=None)
@given(models())
def test_any_valid_model_encodes_and_decodes_to_itself(qr: MerchantPresentedQr) -> None:
    payload = encoded(qr)
    assert decode(payload) == qr
    assert MerchantPresentedQr.decode(payload).encode() == payload  # the encoding is canonical
    assert encode(qr) == payload


@settings(max_examples=300, deadline=None)
@given(models(), st.data())
def test_any_single_character_corruption_is_refused(qr: MerchantPresentedQr,
                                                    data: st.DataObject) -> None:
    # A one-byte change is a burst of at most 8 bits, which CRC-16 always detects; so ASCII
    # positions with ASCII replacements are refused by the CRC if no rule catches them first.
    # (Multi-byte characters are covered exhaustively on the spec example below.)
    payload = encoded(qr)
    ascii_positions = [i for i, c in enumerate(payload) if c < "\x80"]
    position = data.draw(st.sampled_from(ascii_positions))
    replacement = data.draw(st.sampled_from(
        [chr(c) for c in range(0x20, 0x7F) if chr(c) != payload[position]]))
    corrupted = payload[:position] + replacement + payload[position + 1:]
    with pytest.raises(QrError):
        decode(corrupted)


def test_every_single_character_corruption_of_the_spec_example_is_refused() -> None:
    replacements = [chr(c) for c in range(0x20, 0x7F)] + ["最", "北", "é", "\u00a0", "☕"]
    for position, original in enumerate(EMVCO_SPEC_EXAMPLE):
        for replacement in replacements:
            if replacement == original:
                continue
            corrupted = (EMVCO_SPEC_EXAMPLE[:position] + replacement
                         + EMVCO_SPEC_EXAMPLE[position + 1:])
            with pytest.raises(QrError):
                decode(corrupted)


# -- the error type --------------------------------------------------------------------------------


def test_errors_are_invalid_input_with_a_stable_code_and_the_field_in_the_problem() -> None:
    with pytest.raises(QrError) as caught:
        decode(build(replace={"59": "A" * 26}))
    error = caught.value
    assert isinstance(error, InvalidInput)
    assert error.status == 422
    problem = error.to_problem("/qr/decode")
    assert problem["code"] == "qr_field_invalid"
    assert problem["field"] == "59" and problem["field_name"] == "Merchant Name"
    assert problem["detail"] == "ID 59 (Merchant Name): must be at most 25 characters long, not 26"


@pytest.mark.parametrize(("path", "name"), [
    ("00", "Payload Format Indicator"), ("02", "Merchant Account Information (Visa)"),
    ("05", "Merchant Account Information (Mastercard)"),
    ("07", "Merchant Account Information (EMVCo)"),
    ("10", "Merchant Account Information (Discover)"),
    ("12", "Merchant Account Information (Amex)"), ("13", "Merchant Account Information (JCB)"),
    ("16", "Merchant Account Information (UnionPay)"),
    ("25", "Merchant Account Information (EMVCo)"),
    ("26", "Merchant Account Information Template"), ("26.00", "Globally Unique Identifier"),
    ("51.07", "Payment Network Specific"), ("62.05", "Reference Label"),
    ("62.11", "RFU for EMVCo"), ("62.50", "Payment System Specific Template"),
    ("62.50.00", "Globally Unique Identifier"), ("62.50.01", "Context Specific Data"),
    ("64.01", "Merchant Name - Alternate Language"), ("70", "RFU for EMVCo"),
    ("80", "Unreserved Template"), ("99.01", "Context Specific Data"),
])
def test_every_data_object_has_a_name(path: str, name: str) -> None:
    assert name_of(path) == name


def test_helpers_build_the_payloads_they_say() -> None:
    assert tlv(("00", "01"), ("64", "北京")) == "00020164" "02北京"
    assert decode(with_crc(tlv(("00", "01"), ("26", tlv(("00", "a.b"))), ("52", "0000"),
                               ("53", "840"), ("58", "US"), ("59", "N"), ("60", "C")))).city == "C"
