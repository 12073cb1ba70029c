"""Training registers a working threshold and a score calibration fitted on val.

A one-epoch model at 128 px scores low everywhere (its max-F1 raw cut is far below the old
fixed 0.25): exactly the defect a data-dependent threshold fixes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command

from inference.calibration import FORMAT_VERSION, ScoreCalibration
from training.models import ModelVersion
from webapp.detection import services
from webapp.images.importers import import_voc
from webapp.images.models import Image
from webapp.jobs.models import Job
from webapp.jobs.runner import execute_job

pytestmark = pytest.mark.django_db
DEMO = Path(__file__).resolve().parent.parent / "demo" / "bccd"


@pytest.fixture
def one_epoch_detector(capsys: pytest.CaptureFixture[str]) -> tuple[ModelVersion, str]:
    import_voc(DEMO, name="cells")
    args = ["--dataset", "cells", "--epochs", "1", "--img-size", "128", "--batch-size", "8"]
    call_command("train_detector", *args)
    out = capsys.readouterr().out
    pk = int(out.strip().splitlines()[-1].split("=")[1])
    return ModelVersion.objects.get(pk=pk), out


def test_training_stores_the_threshold_and_calibration_fitted_on_val(one_epoch_detector):
    version, log = one_epoch_detector
    metrics = version.metrics
    assert (metrics["threshold_rule"], metrics["threshold_scale"]) == ("max_f1", "calibrated")
    assert metrics["threshold_split"] == "val" and 0.0 < metrics["threshold"] <= 1.0
    calibration = ScoreCalibration.from_dict(metrics["score_calibration"])
    assert metrics["score_calibration"]["format"] == FORMAT_VERSION
    assert calibration.score_floor == 0.001
    # The stored val numbers are those at the stored threshold, on the calibrated scale.
    val = metrics["val"]
    assert (val["score_threshold"], val["score_scale"]) == (metrics["threshold"], "calibrated")
    assert val["f1"] == pytest.approx(metrics["threshold_point"]["f1"], abs=1e-12)
    assert metrics["test"]["score_threshold"] == metrics["threshold"]
    assert set(metrics["per_class_threshold"]) <= {"0", "1", "2"}
    assert metrics["threshold_raw"] < 0.25, "a one-epoch model scores far below 0.25"
    assert f"Working threshold {metrics['threshold']:.3f} on calibrated confidence" in log
    assert services.working_threshold(version) == metrics["threshold"]


def test_evaluate_reports_the_stored_numbers_at_the_working_threshold(one_epoch_detector, capsys):
    version, _ = one_epoch_detector
    call_command("evaluate", "--model-version", str(version.pk), "--split", "test", "--json")
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    test = version.metrics["test"]
    assert result["score_threshold"] == version.metrics["threshold"]
    for key in ("precision", "recall", "f1"):
        assert result[key] == pytest.approx(test[key], abs=1e-9)
    assert result["f1"] > 0, "at the working threshold the model finds something"


def test_the_api_answers_a_low_scoring_model_without_a_threshold(one_epoch_detector, labeler):
    version, _ = one_epoch_detector
    image = Image.objects.filter(dataset__name="cells").order_by("pk").first()
    assert image is not None
    job = Job.objects.create(
        kind="detect", user=labeler, params={"image_ids": [image.pk], "model_version": version.pk}
    )
    execute_job(job.pk)
    job.refresh_from_db()
    result = dict(job.result or {})
    assert result["min_confidence"] == round(version.metrics["threshold"], 4)
    predictions = result["images"][0]["predictions"]
    assert predictions, "blood cells found at the working threshold"
    assert all(p["confidence"] >= version.metrics["threshold"] for p in predictions)
