"""Schemathesis hooks for ``tests/test_schemathesis.py`` (``SCHEMATHESIS_HOOKS``).

- Image parts: the schema says which multipart fields take images (``encoding`` with the
  image content types), and here those get real, small JPEG and PNG files of any size and
  content, so generated requests reach the code past the image check instead of stopping
  at "not an image" (random bytes are still sent where the schema says any bytes).
- The ``refusals_store_nothing`` check (:mod:`tests.fuzz.refusals_store_nothing`).
"""

from __future__ import annotations

import io

import numpy as np
import schemathesis
from hypothesis import strategies as st
from PIL import Image

from tests.fuzz import refusals_store_nothing  # noqa: F401  (registers the check)


def _encoded(width: int, height: int, seed: int, fmt: str) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def _images(fmt: str) -> st.SearchStrategy[bytes]:
    side = st.integers(min_value=1, max_value=160)
    return st.builds(_encoded, side, side, st.integers(0, 2**32 - 1), st.just(fmt))


schemathesis.openapi.media_type("image/jpeg", _images("JPEG"))
schemathesis.openapi.media_type("image/png", _images("PNG"))
