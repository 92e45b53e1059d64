"""A tiny PNG encoder for NumPy ``uint8`` images: pure Python and zlib, no Pillow.

Example:
    >>> import numpy as np
    >>> data = encode_png(np.zeros((2, 3), dtype=np.uint8))
    >>> data[:8] == PNG_SIGNATURE, len(data) > 40
    (True, True)
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

__all__ = ["PNG_SIGNATURE", "encode_png"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}
"""Channels to the PNG colour type: grey, grey and alpha, RGB, RGBA."""


def encode_png(array: Any) -> bytes:
    """PNG bytes of an ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` uint8 array.

    Raises:
        ValueError: another dtype or shape, or an empty image.
    """
    dtype = str(getattr(array, "dtype", ""))
    shape = tuple(getattr(array, "shape", ()))
    if dtype != "uint8":
        raise ValueError(f"an image array must be uint8, not {dtype or type(array).__name__}")
    channels = 1 if len(shape) == 2 else (shape[2] if len(shape) == 3 else 0)
    if channels not in _COLOR_TYPES or 0 in shape:
        raise ValueError(
            f"an image array has shape (H, W) or (H, W, 1|3|4) and no empty axis, not {shape}"
        )
    height, width = shape[0], shape[1]
    rows = array.reshape(height, width * channels)
    raw = b"".join(b"\x00" + rows[y].tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPES[channels], 0, 0, 0)
    return b"".join(
        (
            PNG_SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(raw, 6)),
            _chunk(b"IEND", b""),
        )
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
