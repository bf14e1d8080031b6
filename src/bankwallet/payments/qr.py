"""The merchant's EMV QR codes (pure: no database).

A static code names the merchant: merchant account template ID 26 with the globally unique
identifier ``GUI`` ("CN.BANKWALLET") and the merchant's id (32 hex digits) in subfield 01; the
customer types the amount. A dynamic code adds the amount and, in the reference label (62.05),
the payment intent's id. 62.05 holds at most 25 characters, so the id travels as its 16 bytes
in unpadded base64url (22 characters) rather than as ``pi_`` and 32 hex digits (35).

Root fields 59 (name) and 60 (city) are printable ASCII only: a name in Chinese goes into the
language template (64, "ZH") and the ASCII fields keep what ASCII there is, or a placeholder.
"""

from __future__ import annotations

import base64
import binascii
import uuid

from bankwallet.qr.emvco import (
    AdditionalData,
    GuiTemplate,
    InitiationMethod,
    LanguageTemplate,
    MerchantPresentedQr,
)
from bankwallet.qr.errors import QrFieldInvalid, QrFieldMissing

GUI = "CN.BANKWALLET"
ACCOUNT_TAG = "26"
MERCHANT_SUBFIELD = "01"
NAME_MAX_CHARS = 25  # ID 59
CITY_MAX_CHARS = 15  # ID 60
QR_CURRENCY = "CNY"  # numeric 156: the wallet's home currency
NAME_PLACEHOLDER = "BANKWALLET MERCHANT"
CITY_PLACEHOLDER = "NA"


def static_qr(*, merchant_id: uuid.UUID, name: str, city: str, mcc: str,
              country: str) -> MerchantPresentedQr:
    return _qr(merchant_id=merchant_id, name=name, city=city, mcc=mcc, country=country,
               initiation=InitiationMethod.STATIC)


def dynamic_qr(*, merchant_id: uuid.UUID, name: str, city: str, mcc: str, country: str,
               intent_id: uuid.UUID, amount_minor: int, currency: str) -> MerchantPresentedQr:
    return _qr(merchant_id=merchant_id, name=name, city=city, mcc=mcc, country=country,
               initiation=InitiationMethod.DYNAMIC, amount_minor=amount_minor,
               currency=currency,
               additional_data=AdditionalData(reference_label=intent_reference(intent_id)))


def _qr(*, merchant_id: uuid.UUID, name: str, city: str, mcc: str, country: str,
        initiation: InitiationMethod, amount_minor: int | None = None,
        currency: str = QR_CURRENCY,
        additional_data: AdditionalData | None = None) -> MerchantPresentedQr:
    ascii_name = _ascii(name, NAME_MAX_CHARS) or NAME_PLACEHOLDER
    ascii_city = _ascii(city, CITY_MAX_CHARS) or CITY_PLACEHOLDER
    language = None
    if not name.isascii() or not city.isascii():
        language = LanguageTemplate(language="ZH", name=name.strip()[:NAME_MAX_CHARS],
                                    city=city.strip()[:CITY_MAX_CHARS] or None)
    return MerchantPresentedQr(
        merchant_accounts={ACCOUNT_TAG: GuiTemplate(gui=GUI,
                                                    data={MERCHANT_SUBFIELD: merchant_id.hex})},
        mcc=mcc, currency=currency, country=country, name=ascii_name, city=ascii_city,
        amount_minor=amount_minor, initiation=initiation, additional_data=additional_data,
        language=language)


def _ascii(text: str, max_chars: int) -> str:
    kept = "".join(c for c in text if " " <= c <= "~")
    return " ".join(kept.split())[:max_chars].strip()


def intent_reference(intent_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(intent_id.bytes).rstrip(b"=").decode("ascii")


def parse_intent_reference(text: str) -> uuid.UUID:
    try:
        raw = base64.urlsafe_b64decode(text + "==")
    except (binascii.Error, ValueError):
        raw = b""
    if len(text) != 22 or len(raw) != 16:
        raise QrFieldInvalid("is not a bankwallet payment reference", field="62.05",
                             field_name="Reference Label")
    return uuid.UUID(bytes=raw)


def bankwallet_merchant_id(qr: MerchantPresentedQr) -> uuid.UUID:
    """The merchant a decoded code names, from the first account template with our GUI."""
    for tag, account in sorted(qr.merchant_accounts.items()):
        if isinstance(account, GuiTemplate) and account.gui == GUI:
            where = f"{tag}.{MERCHANT_SUBFIELD}"
            text = account.data.get(MERCHANT_SUBFIELD)
            if text is None:
                raise QrFieldMissing("is mandatory in a bankwallet account", field=where,
                                     field_name="Payment Network Specific")
            try:
                return uuid.UUID(hex=text)
            except ValueError:
                raise QrFieldInvalid("is not a bankwallet merchant id", field=where,
                                     field_name="Payment Network Specific") from None
    raise QrFieldMissing(f"no merchant account with the identifier {GUI!r}: this is not a "
                         "bankwallet code", field="26-51",
                         field_name="Merchant Account Information")


# -- reading a picture (optional: zxing-cpp and Pillow, today dev dependencies) -----------------

PICTURE_MAX_BYTES = 4 * 1024 * 1024
PICTURE_MAX_PIXELS = 24_000_000  # Pillow refuses bigger pictures (decompression bombs)


class PictureReadingUnavailable(Exception):
    """zxing-cpp or Pillow is not installed: the page offers the text field only."""


def payload_from_picture(data: bytes) -> str:
    """The text of the one QR code in a photo or screenshot; a typed QR error if none."""
    try:
        import zxingcpp
        from PIL import Image
    except ImportError as exc:
        raise PictureReadingUnavailable(str(exc)) from exc
    from bankwallet.qr.errors import QrMalformed

    if not data or len(data) > PICTURE_MAX_BYTES:
        raise QrMalformed(f"the picture must hold 1 to {PICTURE_MAX_BYTES} bytes")
    Image.MAX_IMAGE_PIXELS = PICTURE_MAX_PIXELS
    try:
        import io

        with Image.open(io.BytesIO(data)) as picture:
            picture.load()
            found = zxingcpp.read_barcodes(picture.convert("L"),
                                           formats=zxingcpp.BarcodeFormat.QRCode)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise QrMalformed("the picture cannot be read") from exc
    texts = [code.text for code in found if code.text]
    if len(texts) != 1:
        raise QrMalformed("the picture must show exactly one QR code, not "
                          f"{len(texts)}")
    return texts[0]
