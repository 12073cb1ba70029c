"""Faces datasets: class merging at VOC import, identity folders, train_verifier."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image as PILImage

from inference.siamese import load_verifier
from tests.shared_data import orl_faces
from training.models import ModelVersion
from webapp.faces.importers import import_identity_folders
from webapp.faces.models import Face, Subject
from webapp.images.importers import import_voc
from webapp.images.models import Box, Dataset, SplitAssignment

pytestmark = pytest.mark.django_db
DEMO = Path(__file__).resolve().parent.parent / "demo" / "bccd"


def _orl_subset(tmp_path: Path, people: int) -> Path:
    root = tmp_path / "faces"
    for i in range(1, people + 1):
        shutil.copytree(orl_faces() / f"s{i}", root / f"s{i}")
    return root


def test_voc_import_merges_classes_into_one(capsys):
    report = import_voc(DEMO, name="merged", class_map={n: "cell" for n in ("RBC", "WBC")})

    dataset = Dataset.objects.get(name="merged")
    assert sorted(dataset.classes.values_list("name", flat=True)) == ["Platelets", "cell"]
    boxes = Box.objects.filter(image__dataset=dataset)
    assert boxes.count() == report.boxes_added
    # The same boxes as a plain import, only relabelled.
    plain = import_voc(DEMO, name="plain")
    plain_boxes = Box.objects.filter(image__dataset=plain.dataset)
    assert (
        boxes.filter(label_class__name="cell").count()
        == plain_boxes.exclude(label_class__name="Platelets").count()
    )


def test_import_command_single_class_and_bad_map(capsys):
    call_command("import_dataset", str(DEMO), "--name", "one", "--single-class", "face")
    dataset = Dataset.objects.get(name="one")
    assert list(dataset.classes.values_list("name", flat=True)) == ["face"]
    with pytest.raises(CommandError, match="does not have"):
        call_command("import_dataset", str(DEMO), "--name", "two", "--class-map", "Cat=face")
    with pytest.raises(CommandError, match="expected old=new"):
        call_command("import_dataset", str(DEMO), "--name", "two", "--class-map", "RBC")
    assert not Dataset.objects.filter(name="two").exists()


def test_identity_folders_become_subjects_with_people_disjoint_splits(tmp_path):
    root = _orl_subset(tmp_path, 10)
    (root / "s1" / "notes.txt").write_text("not an image")
    (root / "s2" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")

    report = import_identity_folders(root, name="orl10")

    dataset = report.dataset
    assert dataset.task == "faces"
    assert report.images_added == 100
    assert any("broken.png" in w for w in report.warnings)
    assert sorted(Subject.objects.filter(dataset=dataset).values_list("name", flat=True)) == sorted(
        f"s{i}" for i in range(1, 11)
    )
    assert Face.objects.filter(image__dataset=dataset).count() == 100
    face = Face.objects.filter(subject__name="s3").first()
    assert (
        face is not None
        and face.box is None
        and (face.image.width, face.image.height)
        == (
            92,
            112,
        )
    )
    # Every person's images sit in one split: verification is tested on unseen people.
    split_of_person: dict[str, set[str]] = {}
    for assignment in SplitAssignment.objects.filter(image__dataset=dataset).select_related(
        "image"
    ):
        person = assignment.image.faces.get().subject.name
        split_of_person.setdefault(person, set()).add(assignment.split)
    assert all(len(splits) == 1 for splits in split_of_person.values())
    assert {s for splits in split_of_person.values() for s in splits} == {"train", "val", "test"}

    again = import_identity_folders(root, name="orl10")
    assert again.images_added == 0 and again.images_existing == 100
    assert Face.objects.filter(image__dataset=dataset).count() == 100


def test_train_verifier_registers_a_calibrated_version(tmp_path, capsys):
    root = _orl_subset(tmp_path, 12)
    call_command("import_dataset", str(root), "--format", "folders", "--name", "orl12")

    call_command("train_verifier", "--dataset", "orl12", "--epochs", "2", "--seed", "0")

    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("model_version=")
    version = ModelVersion.objects.get(pk=int(out[-1].split("=")[1]))
    assert version.kind == "verifier" and version.is_active
    metrics = version.metrics
    assert metrics["threshold_rule"] == "eer"
    assert metrics["threshold"] == pytest.approx(metrics["calibration"]["eer_threshold"])
    assert 0.0 <= metrics["unseen"]["eer"] <= 1.0 and 0.0 <= metrics["unseen"]["auc"] <= 1.0
    assert len(metrics["calibration"]["roc_far"]) == len(metrics["calibration"]["roc_tar"]) > 2
    assert "train_verifier --dataset orl12 --epochs 2" in version.command
    net, extra = load_verifier(version.file.path)
    assert extra["threshold"] == pytest.approx(metrics["threshold"])
    assert net.output_dim == version.config["output_dim"]


def test_train_verifier_refuses_a_detection_dataset_and_bad_far(tmp_path):
    import_voc(DEMO, name="cells")
    with pytest.raises(CommandError, match="detection dataset"):
        call_command("train_verifier", "--dataset", "cells")
    root = _orl_subset(tmp_path, 10)
    import_identity_folders(root, name="orl10")
    with pytest.raises(CommandError, match="target-far"):
        call_command("train_verifier", "--dataset", "orl10", "--target-far", "0.05")
    assert not ModelVersion.objects.filter(kind="verifier").exists()


def test_cmyk_and_grey_faces_import(tmp_path):
    root = tmp_path / "faces"
    (root / "ann").mkdir(parents=True)
    rgb = np.random.default_rng(0).integers(0, 255, (60, 50, 3), dtype=np.uint8)
    PILImage.fromarray(rgb).convert("CMYK").save(root / "ann" / "a.jpg")
    PILImage.fromarray(rgb).convert("L").save(root / "ann" / "b.png")
    report = import_identity_folders(root, name="mixed")
    assert report.images_added == 2 and not report.warnings
