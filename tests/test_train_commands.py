"""train_detector registers a model version; evaluate reproduces its stored metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from training.models import ModelVersion
from webapp.images.importers import import_voc

pytestmark = pytest.mark.django_db
DEMO = Path(__file__).resolve().parent.parent / "demo" / "bccd"


def test_train_then_evaluate(capsys):
    import_voc(DEMO, name="cells")
    call_command(
        "train_detector",
        "--dataset",
        "cells",
        "--epochs",
        "1",
        "--img-size",
        "128",
        "--batch-size",
        "8",
    )
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("model_version=")
    version = ModelVersion.objects.get(pk=int(out[-1].split("=")[1]))
    assert version.is_active and version.kind == "detector"
    assert version.class_names == ["Platelets", "RBC", "WBC"]
    assert {"val", "test"} <= set(version.metrics)
    assert "train_detector --dataset cells --epochs 1 --img-size 128" in version.command
    assert version.training_seconds and version.training_seconds > 0

    call_command("evaluate", "--model-version", str(version.pk), "--split", "test", "--json")
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["map50"] == pytest.approx(version.metrics["test"]["map50"], abs=1e-9)
    assert set(result["per_class_ap50"]) <= {"Platelets", "RBC", "WBC"}
    assert 0.0 <= result["map50_95"] <= result["map50"] <= 1.0


def test_unknown_dataset_and_version():
    with pytest.raises(CommandError, match="No dataset named 'nope'"):
        call_command("train_detector", "--dataset", "nope")
    with pytest.raises(CommandError, match="No detector or verifier model version 999"):
        call_command("evaluate", "--model-version", "999")
