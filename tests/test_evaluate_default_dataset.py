"""`evaluate --model-version ID --split test` uses the model's own dataset, as the README says,
and reports precision / recall / F1 at the version's working threshold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from inference.calibration import ScoreCalibration
from training.models import ModelKind, ModelVersion
from webapp.images.models import Box, Dataset
from webapp.jobs.models import Job
from webapp.jobs.runner import execute_job

CARD = Path(__file__).resolve().parent.parent / "demo" / "models" / "detector-bccd.json"
SCORE_KEYS = ("threshold", "threshold_raw", "score_calibration", "per_class_threshold")

pytestmark = pytest.mark.django_db


def test_evaluate_the_demo_detector_without_naming_a_dataset(capsys):
    call_command("load_demo")
    version = ModelVersion.objects.get(kind=ModelKind.DETECTOR, is_active=True)
    assert version.dataset == Dataset.objects.get(name="BCCD demo")
    capsys.readouterr()

    call_command("evaluate", "--model-version", str(version.pk), "--split", "test", "--json")

    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["dataset"] == "BCCD demo" and result["images"] > 0
    assert isinstance(result["map50"], float) and 0.0 < result["map50"] <= 1.0
    assert set(result["per_class_ap50"]) <= {"Platelets", "RBC", "WBC"}
    # At the working threshold, on calibrated confidence: the demo's 24 test photos.
    assert (result["score_scale"], result["threshold_rule"]) == ("calibrated", "max_f1")
    assert result["score_threshold"] == version.metrics["threshold"]
    assert 0.6 < result["f1"] <= 1.0 and result["precision"] > 0.5 and result["recall"] > 0.6
    assert set(result["per_class"]) == {"Platelets", "RBC", "WBC"}


def test_load_demo_mends_a_shipped_detector_registered_without_its_dataset(capsys):
    call_command("load_demo")
    version = ModelVersion.objects.get(kind=ModelKind.DETECTOR)
    ModelVersion.objects.filter(pk=version.pk).update(dataset=None)  # as older installs have it

    call_command("load_demo")

    version.refresh_from_db()
    assert version.dataset is not None and version.dataset.name == "BCCD demo"
    assert ModelVersion.objects.filter(kind=ModelKind.DETECTOR).count() == 1


def test_evaluate_says_what_to_do_when_the_version_has_no_dataset(capsys):
    call_command("load_demo")
    version = ModelVersion.objects.get(kind=ModelKind.DETECTOR)
    ModelVersion.objects.filter(pk=version.pk).update(dataset=None)

    with pytest.raises(CommandError, match=r"records no dataset .* --dataset NAME"):
        call_command("evaluate", "--model-version", str(version.pk), "--split", "test")
    call_command("evaluate", "--model-version", str(version.pk), "--dataset", "BCCD demo", "--json")
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["images"] > 0


def test_evaluate_a_version_without_calibration_at_its_raw_default(capsys):
    call_command("load_demo")
    version = ModelVersion.objects.get(kind=ModelKind.DETECTOR)
    version.metrics = {k: v for k, v in version.metrics.items() if k not in SCORE_KEYS}
    version.save(update_fields=["metrics"])
    capsys.readouterr()
    call_command("evaluate", "--model-version", str(version.pk), "--split", "test", "--json")
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (result["score_scale"], result["threshold_rule"]) == ("raw", "model_default")
    assert result["score_threshold"] == 0.25 and result["f1"] > 0.5


def test_load_demo_mends_a_shipped_detector_registered_before_its_calibration(capsys):
    call_command("load_demo")
    version = ModelVersion.objects.get(kind=ModelKind.DETECTOR)
    dataset = Dataset.objects.get(name="BCCD demo")
    # As an older install has it: no threshold or calibration, boxes stored with raw scores.
    version.metrics = {k: v for k, v in version.metrics.items() if k not in SCORE_KEYS}
    version.save(update_fields=["metrics"])
    Box.objects.filter(model_version=version).delete()
    ids = list(dataset.images.values_list("pk", flat=True))
    job = Job.objects.create(
        kind="detect",
        params={"image_ids": ids, "model_version": version.pk, "min_confidence": 0.05},
    )
    execute_job(job.pk)
    raw = {b.pk: float(b.score or 0) for b in Box.objects.filter(model_version=version)}
    assert raw and min(raw.values()) >= 0.05

    call_command("load_demo")

    version.refresh_from_db()
    card = json.loads(CARD.read_text())["metrics"]
    assert version.metrics["threshold"] == card["threshold"]
    assert version.metrics["score_calibration"] == card["score_calibration"]
    boxes = list(Box.objects.filter(model_version=version).select_related("label_class"))
    assert {b.pk for b in boxes} == set(raw), "the same boxes, re-scored"
    calibration = ScoreCalibration.from_dict(card["score_calibration"])
    labels = [version.class_names.index(b.label_class.name) for b in boxes]
    want = calibration.calibrate([raw[b.pk] for b in boxes], labels)
    np.testing.assert_allclose([b.score for b in boxes], want, atol=1e-12)
    call_command("load_demo")  # once only: a second run leaves the scores alone
    again = Box.objects.filter(model_version=version)
    assert sorted(float(b.score or 0) for b in again) == sorted(float(b.score or 0) for b in boxes)
