"""Exports: COCO (pycocotools loads it), YOLO, VOC and the faces layout; the round trip
export -> import gives the same images, boxes and classes; only human boxes leave."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image
from pycocotools.coco import COCO

from tests.images import jpeg_bytes
from tests.labeling.test_import_datasets import labels_of
from tests.shared_data import shared_path
from training.models import ModelKind, ModelVersion
from webapp.faces.models import Face, FaceLabel, FaceOrigin, Subject
from webapp.images.ingest import ingest_image
from webapp.images.models import Box, BoxOrigin, Dataset, LabelClass, SplitAssignment, Task
from webapp.labeling.exporters import export_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def cells(db) -> Dataset:
    """Three images (one a background), two classes and an unused third, splits, and a model
    box that must never be exported."""
    dataset = Dataset.objects.create(name="Cells & Co")
    classes = {
        n: LabelClass.objects.create(dataset=dataset, name=n) for n in ("RBC", "WBC", "unused")
    }
    version = ModelVersion.objects.create(
        kind=ModelKind.DETECTOR, name="m", file="models/m.safetensors", sha256="b" * 64
    )
    boxes = {
        "a.jpg": [("RBC", (1.5, 2.25, 30, 40)), ("WBC", (10, 10, 64, 48))],
        "b.png": [("RBC", (0, 0, 5.75, 6))],
        "c.jpg": [],
    }
    for seed, (name, rows) in enumerate(boxes.items()):
        data = jpeg_bytes(64, 48, seed=seed)
        image = ingest_image(data, dataset=dataset, user=None, original_name=name)
        for cls, (x1, y1, x2, y2) in rows:
            Box.objects.create(image=image, label_class=classes[cls], x1=x1, y1=y1, x2=x2, y2=y2)
        split = ("train", "val", "test")[seed]
        SplitAssignment.objects.create(image=image, split=split)
        Box.objects.create(
            image=image,
            label_class=classes["WBC"],
            x1=1,
            y1=1,
            x2=9,
            y2=9,
            origin=BoxOrigin.MODEL,
            model_version=version,
            score=0.9,
        )
    return dataset


def _export(dataset: Dataset, fmt: str, out: Path, splits: bool = False) -> zipfile.ZipFile:
    args = ["export_dataset", "--dataset", dataset.name, "--format", fmt, "--out", str(out)]
    call_command(*args, *(["--splits"] if splits else []))
    return zipfile.ZipFile(out)


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc"])
@pytest.mark.parametrize("splits", [False, True])
def test_round_trip_gives_the_same_images_boxes_classes(cells, tmp_path, capsys, fmt, splits):
    out = tmp_path / f"cells-{fmt}.zip"
    names = _export(cells, fmt, out, splits).namelist()
    assert all(n.startswith("cells-co-") for n in names)
    call_command("import_dataset", str(out), "--format", fmt, "--name", "back")
    back = Dataset.objects.get(name="back")
    original, again = labels_of(cells), labels_of(back)
    assert original.keys() == again.keys()  # the same image bytes
    for sha, boxes in original.items():
        assert [c for c, _ in again[sha]] == [c for c, _ in boxes]
        for (_, theirs), (_, ours) in zip(boxes, again[sha], strict=True):
            assert max(abs(a - b) for a, b in zip(theirs, ours, strict=True)) < 0.01
    assert sorted(back.classes.values_list("name", flat=True)) == ["RBC", "WBC", "unused"]
    assert Box.objects.filter(image__dataset=back, origin=BoxOrigin.MODEL).count() == 0
    assert Box.objects.filter(image__dataset=back).count() == 3  # not the 3 model boxes
    if splits:
        split_of = dict(
            SplitAssignment.objects.filter(image__dataset=back).values_list(
                "image__sha256", "split"
            )
        )
        expected = dict(
            SplitAssignment.objects.filter(image__dataset=cells).values_list(
                "image__sha256", "split"
            )
        )
        assert split_of == expected
    capsys.readouterr()


def test_coco_export_loads_in_pycocotools(cells, tmp_path):
    archive = _export(cells, "coco", tmp_path / "c.zip")
    assert sorted(archive.namelist()) == [
        "cells-co-coco/annotations/instances_default.json",
        "cells-co-coco/images/a.jpg",
        "cells-co-coco/images/b.jpg",  # JPEG bytes named .png: stored (and sent) as .jpg
        "cells-co-coco/images/c.jpg",
    ]
    path = tmp_path / "instances.json"
    path.write_bytes(archive.read("cells-co-coco/annotations/instances_default.json"))
    coco = COCO(str(path))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["RBC", "WBC", "unused"]
    assert len(coco.getImgIds()) == 3 and len(coco.getAnnIds()) == 3
    a = next(i for i in coco.loadImgs(coco.getImgIds()) if i["file_name"].startswith("a."))
    bboxes = sorted(ann["bbox"] for ann in coco.loadAnns(coco.getAnnIds(imgIds=[a["id"]])))
    assert bboxes == [[1.5, 2.25, 28.5, 37.75], [10, 10, 54, 38]]


def test_yolo_export_is_an_ultralytics_layout(cells, tmp_path):
    archive = _export(cells, "yolo", tmp_path / "y.zip", splits=True)
    config = yaml.safe_load(archive.read("cells-co-yolo/data.yaml"))
    assert config["names"] == {0: "RBC", 1: "WBC", 2: "unused"} and config["nc"] == 3
    assert (config["train"], config["val"], config["test"]) == (
        "images/train",
        "images/val",
        "images/test",
    )
    labels = archive.read("cells-co-yolo/labels/train/a.txt").decode().splitlines()
    assert labels == [
        "0 0.246094 0.440104 0.445312 0.786458",
        "1 0.578125 0.604167 0.843750 0.791667",
    ]
    assert archive.read("cells-co-yolo/labels/test/c.txt") == b""  # background image


def test_voc_export_has_imagesets_with_splits(cells, tmp_path):
    archive = _export(cells, "voc", tmp_path / "v.zip", splits=True)
    assert archive.read("cells-co-voc/ImageSets/Main/val.txt") == b"b\n"
    xml = archive.read("cells-co-voc/Annotations/a.xml").decode()
    assert "<name>RBC</name>" in xml and "<xmin>1.5</xmin>" in xml and "<ymin>2.25</ymin>" in xml


def test_faces_layout_has_one_folder_per_person(tmp_path):
    people = Dataset.objects.create(name="people", task=Task.FACES)
    ann, bob = (Subject.objects.create(dataset=people, name=n) for n in ("Ann", "Bob/B"))
    whole = ingest_image(
        jpeg_bytes(40, 40, seed=1), dataset=people, user=None, original_name="1.jpg"
    )
    group = ingest_image(
        jpeg_bytes(80, 40, seed=2), dataset=people, user=None, original_name="g.jpg"
    )
    Face.objects.create(image=whole, subject=ann, origin=FaceOrigin.HUMAN, label=FaceLabel.PERSON)
    Face.objects.create(image=group, subject=bob, x1=40, y1=0, x2=80, y2=40, label=FaceLabel.PERSON)
    Face.objects.create(image=group, x1=0, y1=0, x2=40, y2=40, label=FaceLabel.UNKNOWN)
    buffer = io.BytesIO()
    summary = export_dataset(people, "faces", buffer)
    archive = zipfile.ZipFile(buffer)
    names = sorted(archive.namelist())
    assert names == ["people-faces/Ann/1.jpg", f"people-faces/Bob_B/g-face{bob.faces.get().pk}.png"]
    assert archive.read("people-faces/Ann/1.jpg") == whole.file.read()
    crop = Image.open(io.BytesIO(archive.read(names[1])))
    assert crop.size == (40, 40)
    assert summary.images == 2
    Dataset.objects.create(name="boxes-only")
    out = str(tmp_path / "x.zip")
    with pytest.raises(CommandError, match="faces datasets"):
        call_command("export_dataset", "--dataset", "boxes-only", "--format", "faces", "--out", out)
    assert not (tmp_path / "x.zip").exists() and not (tmp_path / "x.zip.part").exists()


def test_export_api_returns_the_zip(cells, viewer_api, client):
    response = viewer_api.get(f"/api/v1/datasets/{cells.pk}/export/?format=yolo&splits=1")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert 'filename="cells-co-yolo.zip"' in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert "cells-co-yolo/images/val/b.jpg" in archive.namelist()
    bad = viewer_api.get(f"/api/v1/datasets/{cells.pk}/export/?format=csv")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid"
    assert "coco, yolo, voc, faces" in bad.json()["error"]["message"]
    faces = viewer_api.get(f"/api/v1/datasets/{cells.pk}/export/?format=faces")
    assert faces.status_code == 400
    missing = viewer_api.get("/api/v1/datasets/424242/export/?format=coco")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_dataset"
    assert client.get(f"/api/v1/datasets/{cells.pk}/export/?format=coco").status_code in (401, 403)


def test_coco128_round_trips_through_a_yolo_export(tmp_path, capsys):
    call_command(
        "import_dataset", str(shared_path("coco128")), "--format", "coco", "--name", "c128"
    )
    original = Dataset.objects.get(name="c128")
    out = tmp_path / "c128.zip"
    _export(original, "yolo", out, splits=True)
    call_command("import_dataset", str(out), "--format", "yolo", "--name", "c128-again")
    err = capsys.readouterr().err
    again = Dataset.objects.get(name="c128-again")
    assert again.images.count() == 128 and Box.objects.filter(image__dataset=again).count() == 929
    assert err.count("empty label file") == 2  # the two background images
    theirs, ours = labels_of(original), labels_of(again)
    assert theirs.keys() == ours.keys()
    assert all([c for c, _ in theirs[k]] == [c for c, _ in ours[k]] for k in theirs)
    worst = max(
        (
            max(abs(a - b) for a, b in zip(x, y, strict=True))
            for sha in theirs
            for (_, x), (_, y) in zip(theirs[sha], ours[sha], strict=True)
        ),
        default=0.0,
    )
    assert worst < 0.02
    expected = dict(
        SplitAssignment.objects.filter(image__dataset=original).values_list(
            "image__sha256", "split"
        )
    )
    got = dict(
        SplitAssignment.objects.filter(image__dataset=again).values_list("image__sha256", "split")
    )
    assert got == expected
    assert sorted(again.classes.values_list("name", flat=True)) == sorted(
        original.classes.values_list("name", flat=True)
    )
