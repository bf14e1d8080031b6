"""Unsigned LEB128 varints: protobuf's (TRON transactions) and Solana's compact-u16
(``shortvec``, at most three bytes), written by the signers and read by the clients and the
sandbox nodes."""

from __future__ import annotations


def encode_varint(value: int) -> bytes:
    assert value >= 0
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(data: bytes, at: int, *, max_bytes: int = 10) -> tuple[int, int]:
    """(value, the position after it). ``IndexError`` past the end of ``data``,
    ``ValueError`` when it runs over ``max_bytes``."""
    value = shift = 0
    for _ in range(max_bytes):
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7
    raise ValueError(f"a varint longer than {max_bytes} bytes")
