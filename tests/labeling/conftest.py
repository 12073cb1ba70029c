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
