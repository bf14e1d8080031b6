"""The app icon as PNG, drawn in code so the repository holds no binary images.

The same design as ``static/img/icon.svg``: a white wallet with a card peeking out, on the
brand blue. Shapes are signed distance functions, which gives anti-aliased edges for free.
"""

from __future__ import annotations

import math
import struct
import zlib
from functools import lru_cache
from typing import Final

BRAND_TOP: Final = (0x0E, 0x5A, 0xA0)
BRAND_BOTTOM: Final = (0x08, 0x3B, 0x6B)
CARD: Final = (0x7F, 0xD6, 0xC9)
WHITE: Final = (0xFF, 0xFF, 0xFF)
# name -> (size in px, maskable): maskable icons are full-bleed with the glyph in the safe zone.
ICONS: Final = {"icon-192": (192, False), "icon-512": (512, False),
                "icon-maskable-512": (512, True)}


def _round_rect(x: float, y: float, cx: float, cy: float, hw: float, hh: float,
                r: float) -> float:
    qx, qy = abs(x - cx) - hw + r, abs(y - cy) - hh + r
    return math.hypot(max(qx, 0.0), max(qy, 0.0)) + min(max(qx, qy), 0.0) - r


def _blend(under: tuple[float, ...], over: tuple[int, ...], alpha: float) -> tuple[float, ...]:
    return tuple(u + (o - u) * alpha for u, o in zip(under, over, strict=True))


def _pixel(x: float, y: float, px: float, maskable: bool) -> tuple[int, int, int, int]:
    """Colour at (x, y) in unit coordinates; ``px`` is one pixel in those units."""

    def cover(distance: float) -> float:
        return min(max(0.5 - distance / px, 0.0), 1.0)

    background = _round_rect(x, y, 0.5, 0.5, 0.5, 0.5, 0.0 if maskable else 0.22)
    colour: tuple[float, ...] = _blend(BRAND_TOP, BRAND_BOTTOM, y)
    # The glyph is drawn in its own coordinates; a maskable icon keeps it in the safe zone.
    scale = 0.78 if maskable else 1.0
    gx, gy = 0.5 + (x - 0.5) / scale, 0.5 + (y - 0.5) / scale
    if 0.19 < gx < 0.86 and 0.25 < gy < 0.78:  # skip the glyph's maths outside its box
        colour = _blend(colour, CARD,
                        cover(scale * _round_rect(gx, gy, 0.46, 0.36, 0.22, 0.09, 0.04)))
        colour = _blend(colour, WHITE,
                        cover(scale * _round_rect(gx, gy, 0.5, 0.56, 0.29, 0.2, 0.06)))
        colour = _blend(colour, BRAND_BOTTOM,
                        cover(scale * _round_rect(gx, gy, 0.74, 0.57, 0.1, 0.065, 0.035)))
        colour = _blend(colour, WHITE,
                        cover(scale * (math.hypot(gx - 0.72, gy - 0.57) - 0.022)))
    r, g, b = (round(c) for c in colour)
    return r, g, b, round(255 * cover(background))


def _png(width: int, height: int, rows: list[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 on every row
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


@lru_cache(maxsize=len(ICONS))
def icon_png(name: str) -> bytes:
    size, maskable = ICONS[name]
    px = 1.0 / size
    rows = [bytes(channel for i in range(size)
                  for channel in _pixel((i + 0.5) * px, (j + 0.5) * px, px, maskable))
            for j in range(size)]
    return _png(size, size, rows)
