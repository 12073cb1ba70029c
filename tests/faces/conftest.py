"""Helpers for the faces tests: ORL photos, image bytes in every mode, a reference embedder."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inference.faces import crop_face, to_tensor
from inference.siamese import load_verifier
from webapp.faces import services

# What float32 embeddings can promise. The same pixels embedded in batches of different
# sizes, or with another thread count or CPU, sum their convolutions in other orders: on the
# untrained 16-px test verifier, whose raw embeddings are short before normalisation, the
# same photo came back at distance 5e-4 on one machine and 0 on another. 2e-3 still tells
# the same photo from another person's (those are ~1e-2 apart; the threshold is 1.5e-2).
EMBEDDING_ATOL = 2e-3


@pytest.fixture(autouse=True)
def _fresh_model_cache() -> Iterator[None]:
    services._cache.clear()
    yield
    services._cache.clear()


@pytest.fixture
def orl(shared_data: Path) -> Callable[..., bytes]:
    """``orl(person, shot)``: the bytes of ORL's ``s<person>/<shot>.pgm`` (92x112 grey)."""

    def read(person: int, shot: int = 1) -> bytes:
        return (shared_data / "att_faces" / "faces" / f"s{person}" / f"{shot}.pgm").read_bytes()

    return read


def pixels_of(data: bytes) -> np.ndarray:
    """(H, W, 3) uint8 RGB of image bytes, decoded directly with PIL."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def encode(pixels: np.ndarray, fmt: str = "PNG", mode: str | None = None, **save: object) -> bytes:
    image = Image.fromarray(pixels)
    if mode:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def reference_embedding(version, pixels: np.ndarray, box=None) -> np.ndarray:
    """The verifier's embedding of one face, computed without the services or the pipeline."""
    net, _ = load_verifier(version.path, "cpu")
    crop = crop_face(pixels, box, margin=0.2, size=net.config.input_size)
    with torch.no_grad():
        return net(to_tensor([crop])).numpy()[0]


def reference_distance(version, a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(reference_embedding(version, a) - reference_embedding(version, b)))
