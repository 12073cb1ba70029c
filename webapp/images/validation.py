"""Decide whether uploaded bytes are an image we accept, by decoding the pixels.

Extension and content type are never trusted. The pixel-count limit is checked from the
header, before the pixels are decompressed, so a decompression bomb costs nothing.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from webapp.images.trailing import without_trailing

# Formats browsers can show are stored as uploaded; the rest are converted to PNG.
STORED_AS_IS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
CONVERTED = {"BMP", "TIFF", "GIF", "PPM", "MPO"}
ACCEPTED_FORMATS = frozenset(STORED_AS_IS) | CONVERTED
ACCEPTED_HUMAN = "JPEG, PNG, WebP, BMP, TIFF, GIF, PGM/PPM"


class ImageRejected(Exception):
    """An upload we refuse, with a stable code and a message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class DecodedImage:
    content: bytes  # the bytes to store: the upload itself, or a re-encoding
    extension: str
    format: str
    width: int
    height: int
    sha256: str  # of the uploaded bytes, so the same upload is always recognised
    thumbnail: bytes


def decode_upload(data: bytes, *, max_bytes: int, max_pixels: int) -> DecodedImage:
    """Validate `data` fully and return what to store, or raise ImageRejected."""
    if not data:
        raise ImageRejected("empty_file", "The file is empty.")
    if len(data) > max_bytes:
        raise ImageRejected(
            "file_too_large",
            f"The file is {len(data) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.1f} MB.",
        )
    image = _open(data, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            image.load()
    except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombWarning) as exc:
        raise ImageRejected(
            "corrupt_image", f"The image data is truncated or corrupt ({exc})."
        ) from None
    fmt = str(image.format)
    rotated = _has_orientation(image)
    final = ImageOps.exif_transpose(image) if rotated else image
    content, ext = _stored_bytes(data, final, fmt, rotated)
    return DecodedImage(
        content=content,
        extension=ext,
        format=fmt,
        width=final.width,
        height=final.height,
        sha256=hashlib.sha256(data).hexdigest(),
        thumbnail=make_thumbnail(final),
    )


def _open(data: bytes, max_pixels: int) -> PILImage.Image:
    try:
        image = PILImage.open(io.BytesIO(data))
    except PILImage.DecompressionBombError as exc:
        # Pillow's own guard fired first (over twice its limit); it names the size.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)):,} pixels" if found else "far too many pixels"
        raise ImageRejected(
            "too_many_pixels", f"The image has {size}; the limit is {max_pixels:,}."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ImageRejected(
            "not_an_image", f"The file is not an image we can read ({ACCEPTED_HUMAN})."
        ) from None
    if image.format not in ACCEPTED_FORMATS:
        raise ImageRejected(
            "unsupported_format",
            f"{image.format} images are not accepted; use {ACCEPTED_HUMAN}.",
        )
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageRejected("corrupt_image", "The image has no pixels.")
    if width * height > max_pixels:
        raise ImageRejected(
            "too_many_pixels",
            f"The image is {width}×{height} = {width * height:,} pixels; "
            f"the limit is {max_pixels:,}.",
        )
    return image


def _has_orientation(image: PILImage.Image) -> bool:
    orientation = image.getexif().get(0x0112, 1)
    return orientation not in (None, 1)


def _stored_bytes(data: bytes, image: PILImage.Image, fmt: str, rotated: bool) -> tuple[bytes, str]:
    if fmt in STORED_AS_IS and not rotated:
        # Stored as sent, less anything appended after the image's end (else re-encoded).
        own = without_trailing(data, fmt)
        if own is not None:
            return own, STORED_AS_IS[fmt]
    buffer = io.BytesIO()
    if fmt == "JPEG":
        # EXIF rotation applied: re-encode once at high quality so boxes match the pixels.
        image.convert("RGB").save(buffer, "JPEG", quality=95)
        return buffer.getvalue(), ".jpg"
    if image.mode not in ("1", "L", "LA", "RGB", "RGBA", "I;16"):
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
    image.save(buffer, "PNG")
    return buffer.getvalue(), ".png"


def make_thumbnail(image: PILImage.Image, size: int = 320) -> bytes:
    thumb = image.copy()
    thumb.thumbnail((size, size))
    buffer = io.BytesIO()
    thumb.convert("RGB").save(buffer, "JPEG", quality=80)
    return buffer.getvalue()
