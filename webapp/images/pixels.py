"""The one way to read a stored image's pixels (RGB uint8), for every job that needs them."""

from __future__ import annotations

from pathlib import Path

from django.core.files.storage import default_storage

from inference.preprocess import ImageArray, load_rgb
from webapp.images.models import Image


def image_rgb(image: Image) -> ImageArray:
    """(H, W, 3) uint8 RGB pixels of a stored image, EXIF orientation applied."""
    return load_rgb(Path(default_storage.path(str(image.file.name))))
