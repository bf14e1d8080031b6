"""Pictures of an EMV QR payload: SVG and PNG codes, and a printable merchant poster (SVG)."""

from __future__ import annotations

import io
from xml.sax.saxutils import escape, quoteattr

import segno

from bankwallet.core import i18n
from bankwallet.core.money import format_money
from bankwallet.qr.emvco import MAX_PAYLOAD_CHARS, MerchantPresentedQr

ERROR_LEVEL = "M"
QUIET_ZONE_MODULES = 4  # ISO/IEC 18004 asks for four modules of white around the code
MAX_SCALE = 40  # pixels (PNG) or units (SVG) per module
DEFAULT_SCALE = 8

POSTER_WIDTH = 420  # SVG user units; printed at POSTER_WIDTH_MM
POSTER_HEIGHT = 594  # the A-series ratio, 1 : sqrt(2)
POSTER_WIDTH_MM = 105  # A6 portrait
POSTER_QR_SIZE = 300
_FONT = "'Noto Sans CJK SC', 'Noto Sans', 'PingFang SC', 'Microsoft YaHei', sans-serif"


def make_code(payload: str) -> segno.QRCode:
    """The QR symbol at level M exactly (not boosted), the payload's text as UTF-8 bytes.

    A payload's CRC covers its UTF-8 bytes, so that is how a wallet must read them back; forcing
    the encoding also stops segno from choosing Kanji mode (Shift JIS) for Chinese names.
    """
    assert isinstance(payload, str) and 0 < len(payload) <= MAX_PAYLOAD_CHARS, len(payload)
    return segno.make_qr(payload, error=ERROR_LEVEL, boost_error=False, encoding="utf-8")


def render_svg(payload: str, *, scale: int = DEFAULT_SCALE) -> bytes:
    assert 1 <= scale <= MAX_SCALE, scale
    out = io.BytesIO()
    make_code(payload).save(out, kind="svg", scale=scale, border=QUIET_ZONE_MODULES,
                            title="EMV QR", xmldecl=True)
    return out.getvalue()


def render_png(payload: str, *, scale: int = DEFAULT_SCALE) -> bytes:
    assert 1 <= scale <= MAX_SCALE, scale
    out = io.BytesIO()
    make_code(payload).save(out, kind="png", scale=scale, border=QUIET_ZONE_MODULES)
    return out.getvalue()


def _modules_path(code: segno.QRCode) -> str:
    """One SVG path of the dark modules, a run of dark modules in a row as one rectangle."""
    parts = []
    for y, row in enumerate(code.matrix_iter(border=QUIET_ZONE_MODULES)):
        x, width = 0, len(row)
        while x < width:
            if not row[x]:
                x += 1
                continue
            start = x
            while x < width and row[x]:
                x += 1
            parts.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
    return "".join(parts)


def _poster_lines(qr: MerchantPresentedQr, locale: str) -> list[tuple[str, int, str]]:
    """(text, font size, weight) of each line above the code."""
    lines = [(qr.name, 26, "bold")]
    if qr.language is not None:
        lines.append((qr.language.name, 22, "bold"))
    city = qr.city
    if qr.language is not None and qr.language.city is not None:
        city = f"{qr.city} · {qr.language.city}"
    lines.append((city, 16, "normal"))
    if qr.amount_minor is not None:
        lines.append((format_money(qr.amount_minor, qr.currency, locale), 22, "bold"))
    return lines


def merchant_poster_svg(qr: MerchantPresentedQr, *, caption: str | None = None,
                        locale: str = "en") -> bytes:
    """An A6 poster to print: the merchant's name (and its alternate-language name), the city,
    the amount of a fixed-amount code, the QR code and an optional caption under it.

    The caption ("Scan to pay") comes translated from the caller, which owns its wording; the
    locale formats the amount and tags the document.
    """
    assert locale in i18n.LOCALES, locale
    payload = qr.encode()
    code = make_code(payload)
    modules = code.symbol_size(border=QUIET_ZONE_MODULES)[0]
    qr_left = (POSTER_WIDTH - POSTER_QR_SIZE) / 2
    texts, y = [], 56
    for text, size, weight in _poster_lines(qr, locale):
        texts.append(f'<text x="{POSTER_WIDTH / 2}" y="{y}" font-size="{size}" '
                     f'font-weight="{weight}" text-anchor="middle">{escape(text)}</text>')
        y += size + 12
    qr_top = y
    caption_text = "" if caption is None else (
        f'<text x="{POSTER_WIDTH / 2}" y="{qr_top + POSTER_QR_SIZE + 36}" font-size="18" '
        f'text-anchor="middle" font-family={quoteattr(_FONT)} fill="#111">'
        f'{escape(caption)}</text>')
    height = max(POSTER_HEIGHT, qr_top + POSTER_QR_SIZE + 60)
    svg = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" xml:lang={quoteattr(locale.replace("_", "-"))}'
        f' width="{POSTER_WIDTH_MM}mm" height="{POSTER_WIDTH_MM * height / POSTER_WIDTH:.1f}mm"'
        f' viewBox="0 0 {POSTER_WIDTH} {height}">'
        f'<title>{escape(qr.name)}</title>'
        f'<rect width="100%" height="100%" fill="#fff"/>'
        f'<g font-family={quoteattr(_FONT)} fill="#111">{"".join(texts)}</g>'
        f'<g transform="translate({qr_left} {qr_top}) scale({POSTER_QR_SIZE / modules})">'
        f'<path fill="#000" d="{_modules_path(code)}"/></g>'
        f'{caption_text}</svg>\n'
    )
    return svg.encode("utf-8")
