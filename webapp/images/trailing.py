"""Where an image file's own data ends, so bytes appended after it (a zip hidden behind a
PNG, a script after a JPEG) are not stored and served back as if they were the image.

Each reader walks the format's structure (it has decoded cleanly already) and returns the
offset just past its end marker; ``None`` when the structure is not what it expects, in
which case the caller re-encodes instead.
"""

from __future__ import annotations

import struct

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_end(data: bytes) -> int | None:
    """Past the IEND chunk's CRC: signature, then chunks of length, type, data, CRC."""
    if not data.startswith(PNG_SIGNATURE):
        return None
    at = len(PNG_SIGNATURE)
    while at + 12 <= len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        at += 12 + length
        if kind == b"IEND":
            return at if at <= len(data) else None
    return None


def jpeg_end(data: bytes) -> int | None:
    """Past the EOI marker: segments with lengths, and after each SOS the entropy-coded data,
    in which 0xFF is followed by 0x00 (a stuffed byte), a restart marker or a fill byte."""
    if not data.startswith(b"\xff\xd8"):
        return None
    at, n = 2, len(data)
    while at + 2 <= n:
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill bytes before a marker
            at += 1
            continue
        if marker == 0xD9:
            return at + 2
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            at += 2
            continue
        if at + 4 > n:
            return None
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        at += 2 + length
        if marker == 0xDA:  # start of scan: skip its entropy-coded data to the next marker
            while at + 1 < n:
                if (
                    data[at] == 0xFF
                    and data[at + 1] not in (0x00, 0xFF)
                    and not (0xD0 <= data[at + 1] <= 0xD7)
                ):
                    break
                at += 1
    return None


def webp_end(data: bytes) -> int | None:
    """RIFF's own size: 8 + the little-endian size after "RIFF" (padded to even)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    (size,) = struct.unpack("<I", data[4:8])
    end = 8 + size + (size & 1)
    return end if end <= len(data) else None


ENDS = {"PNG": png_end, "JPEG": jpeg_end, "WEBP": webp_end}


def without_trailing(data: bytes, fmt: str) -> bytes | None:
    """The image's own bytes (``data`` itself when nothing trails it), or None when its
    structure could not be walked."""
    reader = ENDS.get(fmt)
    end = reader(data) if reader else None
    return None if end is None else data[:end]
