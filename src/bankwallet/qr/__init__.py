"""EMVCo merchant-presented QR codes: encode, decode (strictly) and render. A pure library."""

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
    decode,
    encode,
)
from bankwallet.qr.errors import (
    QrCrcMismatch,
    QrError,
    QrFieldInvalid,
    QrFieldMissing,
    QrMalformed,
    QrPayloadTooLong,
)

__all__ = [
    "AdditionalData", "ConvenienceFeeFixed", "ConvenienceFeePercentage", "GuiTemplate",
    "InitiationMethod", "LanguageTemplate", "MerchantPresentedQr", "Tip", "TipPrompt",
    "decode", "encode",
    "QrCrcMismatch", "QrError", "QrFieldInvalid", "QrFieldMissing", "QrMalformed",
    "QrPayloadTooLong",
]
