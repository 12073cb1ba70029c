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


@pytest.fixture(scope="session")
def shared_data() -> Any:
    """The read-only real data sets, ``../shared/data`` (skips, or fails under CI=true)."""
    from tests.shared_data import shared_path

    return shared_path()


TINY_VERIFIER_THRESHOLD = 0.015


def _register_model(kind: str, name: str, path: Any, sha: str, **fields: Any) -> Any:
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from training.models import ModelVersion

    stored = default_storage.save(f"models/{sha}.safetensors", ContentFile(path.read_bytes()))
    version = ModelVersion.objects.create(kind=kind, name=name, file=stored, sha256=sha, **fields)
    version.activate()
    return version


def make_tiny_verifier(seed: int = 0, threshold: float = TINY_VERIFIER_THRESHOLD) -> Any:
    """An untrained 16-pixel verifier, registered and active, with calibration metrics.

    Random weights still give identical crops distance 0 and different crops some distance,
    which is enough to check real values through the serving path.
    """
    import tempfile
    from pathlib import Path

    import numpy as np
    import torch

    from inference.siamese import EmbeddingConfig, EmbeddingNet, save_verifier
    from inference.verification_metrics import calibrate
    from training.models import ModelKind

    torch.manual_seed(seed)
    config = EmbeddingConfig(input_size=16, widths=(4, 8), embedding_dim=8)
    net = EmbeddingNet(config).eval()
    rng = np.random.default_rng(seed)
    same = np.arange(200) < 100
    distances = np.where(same, rng.uniform(0, 0.06, 200), rng.uniform(0.04, 0.5, 200))
    metrics = {
        "threshold": threshold,
        "threshold_rule": "eer",
        "calibration": calibrate(distances, same).to_dict(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "verifier.safetensors"
        sha = save_verifier(path, net, extra={"threshold": threshold})
        return _register_model(
            ModelKind.VERIFIER,
            f"tiny-verifier-{seed}",
            path,
            sha,
            config=config.to_dict(),
            metrics=metrics,
        )


@pytest.fixture
def tiny_verifier(db: None) -> Any:
    """The active verifier: untrained, 16x16 crops, 8-d embeddings, threshold 0.015."""
    return make_tiny_verifier()


def make_tiny_face_detector(objectness: float = 3.0, name: str = "tiny-face-detector") -> Any:
    """An untrained one-class ("face") detector, registered and active.

    ``objectness`` is the bias of every predictor's objectness logit: 3 makes it find
    (arbitrary) boxes everywhere, -10 makes it find none.
    """
    import tempfile
    from pathlib import Path

    import torch

    from inference.yolo import YoloConfig, YoloDetector, save_detector
    from training.models import ModelKind

    torch.manual_seed(0)
    config = YoloConfig(num_classes=1, class_names=["face"], img_size=128, width_mult=0.25)
    model = YoloDetector(config)
    with torch.no_grad():
        for head in model.heads:
            bias = head.bias
            assert isinstance(bias, torch.Tensor)
            bias[4 : 3 * 5 : 5] = objectness
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "faces.safetensors"
        sha = save_detector(path, model)
        return _register_model(
            ModelKind.FACE_DETECTOR,
            name,
            path,
            sha,
            config=config.to_dict(),
            class_names=config.class_names,
        )


@pytest.fixture
def tiny_face_detector(db: None) -> Any:
    """An active untrained face detector that finds many arbitrary boxes in any photo."""
    return make_tiny_face_detector(3.0)


@pytest.fixture
def blind_face_detector(db: None) -> Any:
    """An active untrained face detector that finds no face in any photo."""
    return make_tiny_face_detector(-10.0, name="blind-face-detector")
