"""Variable-length integers (LEB128) and zigzag signs: the compact binary encodings of sketches and packed values.
Pure: no AWS."""

from __future__ import annotations


def zigzag(n: int) -> int:
    """A signed integer as an unsigned one, small magnitudes staying small: 0, -1, 1, -2 ... -> 0, 1, 2, 3 ..."""
    return n * 2 if n >= 0 else -n * 2 - 1


def unzigzag(n: int) -> int:
    return n // 2 if n % 2 == 0 else -(n + 1) // 2


def put(out: bytearray, n: int) -> None:
    """Append unsigned `n`, 7 bits a byte, low bits first."""
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def get(data: bytes, pos: int) -> tuple[int, int]:
    """The unsigned integer at `pos` and the position after it."""
    n = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated or oversized varint")
        byte = data[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return n, pos
