"""`load_demo` gives a working detector out of the box: the shipped model finds the cells."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from inference.metrics import evaluate_detections
from inference.runtime import sha256_file
from training.models import ModelVersion
from webapp.images.models import Box, Dataset

pytestmark = pytest.mark.django_db
MODELS = Path(__file__).resolve().parent.parent / "demo" / "models"


def as_arrays(boxes, names):
    index = {n: i for i, n in enumerate(names)}
    xyxy = np.array([b.xyxy for b in boxes], np.float32).reshape(-1, 4)
    labels = np.array([index[b.label_class.name] for b in boxes], np.int64)
    scores = np.array([b.score or 1.0 for b in boxes], np.float32)
    return xyxy, labels, scores


def test_shipped_model_card_matches_its_weights():
    card = json.loads((MODELS / "detector-bccd.json").read_text())
    assert card["sha256"] == sha256_file(MODELS / "detector-bccd.safetensors")
    assert card["command"].startswith("python manage.py train_detector --dataset")
    assert card["class_names"] == ["Platelets", "RBC", "WBC"]
    assert card["metrics"]["test"]["map50"] > 0.6


def test_load_demo_detects_blood_cells(capsys):
    call_command("load_demo")
    dataset = Dataset.objects.get(name="BCCD demo")
    version = ModelVersion.objects.get(is_active=True, kind="detector")
    names = version.class_names
    preds, gts = [], []
    for image in dataset.images.all():
        human = Box.objects.filter(image=image, origin="human").select_related("label_class")
        model = Box.objects.filter(image=image, origin="model").select_related("label_class")
        gx, gl, _ = as_arrays(human, names)
        px, pl, ps = as_arrays(model, names)
        gts.append({"boxes": gx, "labels": gl})
        preds.append({"boxes": px, "scores": ps, "labels": pl})
    assert dataset.images.count() == 24 and sum(len(g["boxes"]) for g in gts) > 300
    metrics = evaluate_detections(preds, gts, score_threshold=0.25)
    # The 24 demo images come from BCCD's test split, never seen in training.
    assert metrics.map50 > 0.6, metrics.per_class_ap50
    assert metrics.per_class_ap50[names.index("WBC")] > 0.8
    # Idempotent: a second load adds nothing and keeps the predictions.
    count = Box.objects.filter(image__dataset=dataset).count()
    call_command("load_demo")
    assert Box.objects.filter(image__dataset=dataset).count() == count
    assert ModelVersion.objects.filter(kind="detector").count() == 1


def test_a_newer_shipped_model_replaces_an_older_copy_but_not_the_users_own(tmp_path):
    """An updated checkout serves the face detector it ships, unless the user serves one
    of their own (another name)."""
    from django.core.files.base import ContentFile

    from training.models import ModelKind
    from webapp.images.management.commands.load_demo import Command

    card = json.loads((MODELS / "face-detector.json").read_text())

    def older(name: str) -> ModelVersion:
        version = ModelVersion.objects.create(
            kind=ModelKind.FACE_DETECTOR,
            name=name,
            file=ContentFile(b"old weights", name=f"{name[:8]}.safetensors"),
            sha256=name.encode().hex().ljust(64, "0")[:64],
        )
        version.activate()
        return version

    stem = MODELS / "face-detector"
    old = older(card["name"])  # what an earlier checkout's load_demo registered
    shipped = Command()._register_model(stem, ModelKind.FACE_DETECTOR)
    assert shipped is not None and shipped.pk != old.pk
    assert ModelVersion.active(ModelKind.FACE_DETECTOR) == shipped
    # Registered already: a second load changes nothing, whatever serves.
    own = older("My face detector (run 3)")
    again = Command()._register_model(stem, ModelKind.FACE_DETECTOR)
    assert again == shipped and ModelVersion.active(ModelKind.FACE_DETECTOR) == own
    # A newer shipped model does not displace a model the user serves.
    ModelVersion.objects.filter(pk=shipped.pk).delete()
    Command()._register_model(stem, ModelKind.FACE_DETECTOR)
    assert ModelVersion.active(ModelKind.FACE_DETECTOR) == own
