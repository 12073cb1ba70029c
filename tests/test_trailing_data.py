"""Bytes appended after an image's end are not stored: a PNG with a zip behind it is kept
as the PNG alone, a JPEG with junk after EOI as the JPEG alone, with the same pixels."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from webapp.images.ingest import ingest_image
from webapp.images.trailing import jpeg_end, png_end, webp_end

pytestmark = pytest.mark.django_db
DEMO = Path(__file__).resolve().parent.parent / "demo" / "bccd" / "JPEGImages"


def _encoded(fmt: str, **options) -> bytes:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, fmt, **options)
    return buffer.getvalue()


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("payload.sh", "echo hidden")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("PNG", {}), ("JPEG", {}), ("JPEG", {"progressive": True}), ("WEBP", {})],
)
def test_appended_bytes_are_not_stored(dataset, labeler, fmt, options):
    own = _encoded(fmt, **options)
    image = ingest_image(own + _zip(), dataset=dataset, user=labeler, original_name="a")
    stored = default_storage.open(image.file.name).read()
    assert stored == own and image.size_bytes == len(own)
    assert b"payload.sh" not in stored


def test_real_photos_end_where_their_bytes_end():
    for path in sorted(DEMO.iterdir()):
        data = path.read_bytes()
        end = jpeg_end(data)
        assert end is not None, path.name
        pixels = np.asarray(PILImage.open(io.BytesIO(data[:end])).convert("RGB"))
        assert np.array_equal(pixels, np.asarray(PILImage.open(path).convert("RGB"))), path.name
    assert png_end(_encoded("PNG")) == len(_encoded("PNG"))
    assert webp_end(_encoded("WEBP")) == len(_encoded("WEBP"))
    assert png_end(b"not a png") is None and jpeg_end(b"\xff\xd8\xff") is None
