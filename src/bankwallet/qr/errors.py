"""Typed errors of the QR domain: each names the data object (ID and name) and the rule broken."""

from __future__ import annotations

from bankwallet.core.errors import InvalidInput


class QrError(InvalidInput):
    """Base of every refused EMV QR payload or model; ``field`` is the ID path ("62.05")."""

    code = "qr_invalid"
    title = "Invalid EMV QR payload"

    def __init__(self, rule: str, *, field: str | None = None,
                 field_name: str | None = None) -> None:
        where = f"ID {field} ({field_name})" if field else "Payload"
        extra = {"field": field, "field_name": field_name} if field else {}
        super().__init__(f"{where}: {rule}", **extra)
        self.field = field
        self.field_name = field_name
        self.rule = rule


class QrMalformed(QrError):
    """The text is not a sequence of ID-length-value data objects."""

    code = "qr_malformed"
    title = "Malformed EMV QR payload"


class QrPayloadTooLong(QrError):
    code = "qr_payload_too_long"
    title = "EMV QR payload too long"


class QrCrcMismatch(QrError):
    code = "qr_crc_mismatch"
    title = "EMV QR checksum mismatch"


class QrFieldMissing(QrError):
    code = "qr_field_missing"
    title = "EMV QR data object missing"


class QrFieldInvalid(QrError):
    code = "qr_field_invalid"
    title = "EMV QR data object invalid"
