from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any, cast

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from tests.factories import DatasetFactory, UserFactory
from webapp.accounts.models import ApiToken, Role, User

PASSWORD = "pw-for-tests-123"
pytest_plugins = ["tests.browser_fixtures"]


@pytest.fixture(autouse=True)
def _clean_media() -> Iterator[None]:
    yield
    shutil.rmtree(settings.MEDIA_ROOT, ignore_errors=True)


def _user(role: str, **kwargs: Any) -> User:
    return cast(User, UserFactory(role=role, **kwargs))


@pytest.fixture
def labeler(db: None) -> User:
    return _user(Role.LABELER, username="lab")


@pytest.fixture
def viewer(db: None) -> User:
    return _user(Role.VIEWER, username="view")


@pytest.fixture
def admin_user(db: None) -> User:
    return _user(Role.ADMIN, username="boss", is_staff=True)


def token_client(user: User) -> APIClient:
    _, key = ApiToken.issue(user, "test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def labeler_api(labeler: User) -> APIClient:
    return token_client(labeler)


@pytest.fixture
def viewer_api(viewer: User) -> APIClient:
    return token_client(viewer)


@pytest.fixture
def dataset(db: None) -> Any:
    return DatasetFactory()


@pytest.fixture
def tiny_detector(db: None) -> Any:
    """An untrained, small detector registered and active: it exercises the serving path.

    Its boxes are arbitrary; tests that need real boxes use the shipped trained model.
    """
    import tempfile
    from pathlib import Path

    import torch
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from inference.yolo import YoloConfig, YoloDetector, save_detector
    from training.models import ModelKind, ModelVersion

    torch.manual_seed(0)
    config = YoloConfig(
        num_classes=3, class_names=["Platelets", "RBC", "WBC"], img_size=128, width_mult=0.25
    )
    model = YoloDetector(config)
    with torch.no_grad():  # confident objectness, so its (arbitrary) boxes pass thresholds
        for head in model.heads:
            bias = head.bias
            assert isinstance(bias, torch.Tensor)
            bias[4 : 3 * 5 : 5] = 3.0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiny.safetensors"
        sha = save_detector(path, model)
        stored = default_storage.save(f"models/{sha}.safetensors", ContentFile(path.read_bytes()))
    version = ModelVersion.objects.create(
        kind=ModelKind.DETECTOR,
        name="tiny",
        file=stored,
        sha256=sha,
        config=config.to_dict(),
        class_names=config.class_names,
    )
    version.activate()
    return version
