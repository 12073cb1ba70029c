"""Fixtures for labeling: an image with classes, a reviewer."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import _user
from tests.images import jpeg_bytes
from webapp.accounts.models import Role
from webapp.images.ingest import ingest_image
from webapp.images.models import LabelClass


@pytest.fixture
def reviewer(db: None) -> Any:
    return _user(Role.REVIEWER, username="rev")


@pytest.fixture
def classes(dataset: Any) -> dict[str, LabelClass]:
    return {
        name: LabelClass.objects.create(dataset=dataset, name=name, color=color)
        for name, color in (("RBC", "#e6194b"), ("WBC", "#3cb44b"))
    }


@pytest.fixture
def image(dataset: Any, labeler: Any, classes: Any) -> Any:
    """A 200x150 image of ``dataset`` with no boxes yet."""
    return ingest_image(jpeg_bytes(200, 150, seed=5), dataset=dataset, user=labeler)


# ---------------------------------------------------------------------------- admin


@pytest.fixture
def make_image(dataset: Any, labeler: Any) -> Any:
    """Make a distinct 200x150 image of ``dataset``: ``make_image(seed, name=, source=)``."""

    def make(seed: int, name: str = "", source: str = "upload") -> Any:
        data = jpeg_bytes(200, 150, seed=100 + seed)
        name = name or f"img-{seed}.jpg"
        return ingest_image(data, dataset=dataset, user=labeler, original_name=name, source=source)

    return make


@pytest.fixture
def detector_version(db: None) -> Any:
    """A detector version row (no usable file: the admin only reads its predictions)."""
    from training.models import ModelKind, ModelVersion

    return ModelVersion.objects.create(
        kind=ModelKind.DETECTOR, name="det-a", file="models/det-a.safetensors", sha256="a" * 64
    )


@pytest.fixture
def predict(detector_version: Any) -> Any:
    """Add a model box: ``predict(image, cls, score, x1=, ..., version=)``."""
    from webapp.images.models import Box

    def add(image: Any, cls: Any, score: float, x1=10, y1=10, x2=60, y2=50, version=None) -> Any:
        return Box.objects.create(
            image=image,
            label_class=cls,
            x1=x1,
            y1=y1,
            x2=x2,
            y2=y2,
            origin="model",
            model_version=version or detector_version,
            score=score,
        )

    return add
