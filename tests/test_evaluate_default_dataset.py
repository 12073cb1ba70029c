"""`evaluate --model-version ID --split test` uses the model's own dataset, as the README says."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from training.models import ModelKind, ModelVersion
from webapp.images.models import Dataset

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
