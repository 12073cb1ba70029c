"""Image bytes made in memory for tests: valid, broken and hostile."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def jpeg_bytes(
    width: int = 64, height: int = 48, seed: int = 0, exif_orientation: int = 0
) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    image = Image.fromarray(pixels)
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    else:
        image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def huge_png_bytes(side: int = 20000) -> bytes:
    """A real side×side PNG (1-bit, so it is small on disk): a decompression bomb."""
    buffer = io.BytesIO()
    Image.new("1", (side, side)).save(buffer, "PNG")
    return buffer.getvalue()


def truncated_jpeg_bytes() -> bytes:
    data = jpeg_bytes(256, 256, seed=3)
    return data[: len(data) // 2]
