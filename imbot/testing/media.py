"""Media for tests: a small, valid PNG built in memory, for the human to send or the bot to reply.

The simulator stores and serves what it is given; a real image (rather than a few made-up
bytes) also renders on the chat page and passes any check a handler makes on the file.
"""

from __future__ import annotations

import struct
import zlib

__all__ = ["tiny_png"]

_RGB = tuple[int, int, int]


def tiny_png(
    width: int = 1,
    height: int = 1,
    top: _RGB = (255, 0, 0),
    bottom: _RGB | None = None,
) -> bytes:
    """A valid RGB PNG of one colour, or a vertical gradient: a 1x1 red dot by default.

    Example:
        >>> await chat.say("look", media=tiny_png(), content_type="image/png")
        >>> tiny_png(48, 32, (52, 199, 89))[:8]
        b'\\x89PNG\\r\\n\\x1a\\n'

    Args:
        width: the width in pixels.
        height: the height in pixels.
        top: the colour of the first row (red, green, blue; 0 to 255).
        bottom: the colour of the last row; the same as ``top`` when omitted.

    Returns:
        The PNG file's bytes.

    Raises:
        ValueError: a size is not positive or a colour channel is out of range.
    """
    end = bottom or top
    if width < 1 or height < 1:
        raise ValueError("tiny_png: width and height must be at least 1")
    if not all(0 <= channel <= 255 for channel in (*top, *end)):
        raise ValueError("tiny_png: colour channels go from 0 to 255")
    rows = bytearray()
    for y in range(height):
        t = y / max(height - 1, 1)
        pixel = bytes(round(a + (b - a) * t) for a, b in zip(top, end, strict=True))
        rows += b"\x00" + pixel * width  # filter byte 0 (none), then the pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(rows)))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
