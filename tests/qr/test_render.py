"""QR pictures of a payload: level M, UTF-8 bytes, and a poster whose code is the payload's."""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET

import pytest

from bankwallet.qr import GuiTemplate, LanguageTemplate, MerchantPresentedQr
from bankwallet.qr.render import (
    QUIET_ZONE_MODULES,
    make_code,
    merchant_poster_svg,
    render_png,
    render_svg,
)
from tests.conftest import skip_or_fail

from .payloads import EMVCO_MODEL, EMVCO_SPEC_EXAMPLE

SVG = "{http://www.w3.org/2000/svg}"


def _matrix(payload: str) -> list[list[bool]]:
    return [[bool(v) for v in row]
            for row in make_code(payload).matrix_iter(border=QUIET_ZONE_MODULES)]


def test_the_code_is_level_m_in_byte_mode() -> None:
    code = make_code(EMVCO_SPEC_EXAMPLE)
    assert code.error == "M"
    assert code.mode == "byte"


def test_a_scanner_reads_back_the_payload_exactly() -> None:
    try:
        import zxingcpp  # type: ignore[import-not-found]
    except ImportError:
        skip_or_fail("zxing-cpp is not installed (a dev dependency of the QR tests)")
    scale = 4
    rows = [bytes(0 if dark else 255 for dark in row for _ in range(scale))
            for row in _matrix(EMVCO_SPEC_EXAMPLE) for _ in range(scale)]
    image = memoryview(b"".join(rows)).cast("B", shape=[len(rows), len(rows[0])])
    (barcode,) = zxingcpp.read_barcodes(image)
    assert barcode.text == EMVCO_SPEC_EXAMPLE  # the Chinese names came through as UTF-8
    assert barcode.ec_level == "M"


def test_svg_is_an_svg_document() -> None:
    svg = render_svg(EMVCO_SPEC_EXAMPLE, scale=4)
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    size = len(_matrix(EMVCO_SPEC_EXAMPLE)) * 4
    assert root.get("width") == str(size) and root.get("height") == str(size)


def test_png_has_the_size_of_the_symbol_times_the_scale() -> None:
    png = render_png(EMVCO_SPEC_EXAMPLE, scale=3)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert width == height == len(_matrix(EMVCO_SPEC_EXAMPLE)) * 3


def _path_modules(d: str, size: int) -> list[list[bool]]:
    grid = [[False] * size for _ in range(size)]
    for x, y, run in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\3z", d):
        for i in range(int(run)):
            grid[int(y)][int(x) + i] = True
    return grid


def test_the_poster_shows_the_merchant_and_the_payloads_code() -> None:
    qr = MerchantPresentedQr(**{
        **{name: getattr(EMVCO_MODEL, name) for name in MerchantPresentedQr.__dataclass_fields__},
        "name": "A&B <CAFE>",
        "language": LanguageTemplate(language="zh", name="最佳运输", city="北京"),
    })
    svg = merchant_poster_svg(qr, caption="扫码付款", locale="zh_CN")
    root = ET.fromstring(svg)  # well formed, so the "&" and "<" were escaped
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert texts[:3] == ["A&B <CAFE>", "最佳运输", "BEIJING · 北京"]
    assert "23.72" in (texts[3] or "")
    assert texts[-1] == "扫码付款"
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "zh-CN"
    (path,) = root.iter(f"{SVG}path")
    matrix = _matrix(qr.encode())
    assert _path_modules(path.get("d") or "", len(matrix)) == matrix


def test_a_poster_without_amount_or_alternate_language() -> None:
    qr = MerchantPresentedQr(merchant_accounts={"26": GuiTemplate("com.example.pay")},
                             mcc="5812", currency="JPY", country="JP", name="RAMEN",
                             city="TOKYO")
    root = ET.fromstring(merchant_poster_svg(qr))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert texts == ["RAMEN", "TOKYO"]  # no caption given, none shown


@pytest.mark.parametrize("scale", [0, 41])
def test_scale_is_bounded(scale: int) -> None:
    with pytest.raises(AssertionError):
        render_png(EMVCO_SPEC_EXAMPLE, scale=scale)
