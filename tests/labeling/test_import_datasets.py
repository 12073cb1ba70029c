"""Importing labelled folders and zips into rows: the real sets' counts, every defect reported,
duplicates merged, splits kept, archives vetted. (Its helpers serve the API and export tests.)"""

from __future__ import annotations

import io
import json
import stat
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.images import jpeg_bytes
from tests.shared_data import shared_path
from webapp.images.models import (
    Box,
    BoxOrigin,
    Dataset,
    ImageStatus,
    LabelChange,
    SplitAssignment,
)
from webapp.labeling.importers import ImportFailed, import_path

pytestmark = pytest.mark.django_db


def write_jpeg(path: Path, width: int = 64, height: int = 48, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg_bytes(width, height, seed=seed))
    return path


def coco_folder(
    root: Path, images: list[tuple[str, int]], annotations: list[dict[str, Any]]
) -> Path:
    """``images/<name>`` (64x48, the given seed) and ``annotations/instances_default.json``
    with categories 3 = cat, 9 = dog."""
    for name, seed in images:
        write_jpeg(root / "images" / name, seed=seed)
    doc = {
        "images": [
            {"id": i, "file_name": name, "width": 64, "height": 48}
            for i, (name, _) in enumerate(images, start=1)
        ],
        "categories": [{"id": 3, "name": "cat"}, {"id": 9, "name": "dog"}],
        "annotations": [{"id": i, **a} for i, a in enumerate(annotations, start=1)],
    }
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances_default.json").write_text(json.dumps(doc))
    return root


def zip_folder(folder: Path, top: str = "set") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{top}/{path.relative_to(folder).as_posix()}")
    return buffer.getvalue()


def hostile_zip(kind: str) -> bytes:
    """A zip with one good file and one entry that must be refused."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("set/classes.txt", "cat\n")
        if kind == "dotdot":
            archive.writestr("set/../../escape.txt", "x")
        else:
            info = zipfile.ZipInfo("set/images/link.jpg")
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def labels_of(dataset: Dataset) -> dict[str, list[tuple[str, tuple[float, ...]]]]:
    """``{image sha256: sorted [(class, xyxy rounded to 0.01 px)]}`` of the human boxes."""
    out: dict[str, list[tuple[str, tuple[float, ...]]]] = {}
    for image in dataset.images.prefetch_related("boxes__label_class"):
        out[image.sha256] = sorted(
            (b.label_class.name, tuple(round(v, 2) for v in b.xyxy))
            for b in image.boxes.all()
            if b.origin == BoxOrigin.HUMAN
        )
    return out


def _run(path: Path, fmt: str, name: str, capsys: Any) -> tuple[Dataset, str, str]:
    call_command("import_dataset", str(path), "--format", fmt, "--name", name)
    captured = capsys.readouterr()
    return Dataset.objects.get(name=name), captured.out, captured.err


def _split_counts(dataset: Dataset) -> dict[str, int]:
    rows = SplitAssignment.objects.filter(image__dataset=dataset).values_list("split", flat=True)
    return dict(Counter(rows))


# --- the real sets ---------------------------------------------------------------------------


def test_bccd_imports_with_its_counts_minus_the_two_zero_area_boxes(capsys):
    dataset, out, err = _run(shared_path("bccd"), "voc", "bccd", capsys)
    assert dataset.images.count() == 364
    boxes = Box.objects.filter(image__dataset=dataset, origin=BoxOrigin.HUMAN)
    assert boxes.count() == 4888 - 2
    by_class = Counter(boxes.values_list("label_class__name", flat=True))
    assert by_class == {"RBC": 4155 - 2, "WBC": 372, "Platelets": 361}
    assert _split_counts(dataset) == {"train": 205, "val": 87, "test": 72}
    assert "Splits from the folder's own split" in out
    zero = [line for line in err.splitlines() if "zero-area" in line]
    assert len(zero) == 2
    assert "BloodImage_00338.xml" in zero[0] and "BloodImage_00343.xml" in zero[1]
    assert dataset.images.filter(status=ImageStatus.LABELED).count() == 364
    assert LabelChange.objects.filter(image__dataset=dataset, action="import").count() == 364


def test_coco128_coco_and_yolo_forms_import_to_the_same_rows(capsys):
    coco, _, coco_err = _run(shared_path("coco128"), "coco", "coco128-coco", capsys)
    yolo, _, yolo_err = _run(shared_path("coco128"), "yolo", "coco128-yolo", capsys)
    for dataset in (coco, yolo):
        assert dataset.images.count() == 128
        assert Box.objects.filter(image__dataset=dataset).count() == 939 - 10
        assert dataset.classes.count() == 80  # every declared class, 71 of them used
        used = dataset.classes.filter(boxes__isnull=False).distinct().count()
        assert used == 71
        background = dataset.images.filter(boxes__isnull=True).values_list(
            "original_name", flat=True
        )
        assert sorted(background) == ["000000000250.jpg", "000000000508.jpg"]
        assert set(dataset.images.filter(boxes__isnull=True).values_list("status", flat=True)) == {
            ImageStatus.NEW
        }
    assert coco_err.count("iscrowd") == 10
    assert "000000000656.txt: label file without an image" in yolo_err
    assert "000000000659.txt: label file without an image" in yolo_err
    assert "000000000250.jpg: no label file; kept as a background image" in yolo_err
    # The same boxes to a hundredth of a pixel or so, and the same deterministic split.
    coco_labels, yolo_labels = labels_of(coco), labels_of(yolo)
    assert coco_labels.keys() == yolo_labels.keys()
    for sha, theirs in coco_labels.items():
        ours = yolo_labels[sha]
        assert len(ours) == len(theirs)
        for name, box in ours:
            nearest = min(
                max(abs(a - b) for a, b in zip(box, other, strict=True))
                for other_name, other in theirs
                if other_name == name
            )
            assert nearest < 0.02  # YOLO's six decimals of a 640 px image, then rounding
    splits = {
        d.name: dict(
            SplitAssignment.objects.filter(image__dataset=d).values_list("image__sha256", "split")
        )
        for d in (coco, yolo)
    }
    assert splits["coco128-coco"] == splits["coco128-yolo"] and len(splits["coco128-coco"]) == 128


# --- small folders made here -----------------------------------------------------------------


def test_the_same_bytes_twice_keep_one_image_and_every_box(tmp_path, capsys):
    root = coco_folder(
        tmp_path / "dup",
        [("a_first.jpg", 1), ("b_copy.jpg", 1), ("other.jpg", 2)],
        [
            {"image_id": 1, "category_id": 3, "bbox": [1, 1, 10, 10]},
            {"image_id": 2, "category_id": 3, "bbox": [1, 1, 10, 10]},  # exact duplicate
            {"image_id": 2, "category_id": 9, "bbox": [20, 20, 10, 10]},  # a new box
        ],
    )
    dataset, out, err = _run(root, "coco", "dup", capsys)
    assert dataset.images.count() == 2
    kept = dataset.images.get(original_name="a_first.jpg")  # read first (name order)
    assert sorted((b.label_class.name, b.xyxy) for b in kept.boxes.all()) == [
        ("cat", [1.0, 1.0, 11.0, 11.0]),
        ("dog", [20.0, 20.0, 30.0, 30.0]),
    ]
    line = next(line for line in err.splitlines() if "images/b_copy.jpg:" in line)
    assert "the same image as images/a_first.jpg" in line and "1 box(es) merged" in line
    assert "1 exact duplicate(s) dropped" in line
    # Two changes of its labels: its own box, then the merged one.
    assert list(kept.label_changes.order_by("version").values_list("version", flat=True)) == [
        1,
        2,
    ]
    assert "2 images and 2 boxes added" in out


def test_importing_again_adds_nothing_and_says_when_boxes_differ(tmp_path, capsys):
    root = coco_folder(
        tmp_path / "set", [("a.jpg", 1)], [{"image_id": 1, "category_id": 3, "bbox": [1, 1, 5, 5]}]
    )
    _run(root, "coco", "again", capsys)
    dataset, out, err = _run(root, "coco", "again", capsys)
    assert "0 images and 0 boxes added, 1 images already there, 0 warnings" in out
    doc = json.loads((root / "annotations" / "instances_default.json").read_text())
    doc["annotations"][0]["bbox"] = [2, 2, 5, 5]
    (root / "annotations" / "instances_default.json").write_text(json.dumps(doc))
    dataset, out, err = _run(root, "coco", "again", capsys)
    assert "already in the dataset" in err and "1 box(es) were not imported" in err
    assert [b.xyxy for b in Box.objects.filter(image__dataset=dataset)] == [[1, 1, 6, 6]]


def test_yolo_defects_are_each_listed_by_file(tmp_path, capsys):
    root = tmp_path / "yolo"
    (root / "data.yaml").parent.mkdir(parents=True)
    (root / "data.yaml").write_text(
        "train: train/images\nval: valid/images\nnames: {0: cat, 1: dog}\n"
    )
    write_jpeg(root / "train" / "images" / "good.jpg", seed=1)
    (root / "train" / "labels").mkdir(parents=True)
    (root / "train" / "labels" / "good.txt").write_text("0 0.5 0.5 0.5 0.5\n5 0.5 0.5 0.1 0.1\n")
    write_jpeg(root / "valid" / "images" / "bg.jpg", seed=2)
    (root / "valid" / "labels").mkdir(parents=True)
    (root / "valid" / "labels" / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "valid" / "images" / "bad.jpg").write_bytes(b"\xff\xd8\xff broken")
    dataset, _, err = _run(root, "yolo", "yolo-defects", capsys)
    assert "train/labels/good.txt: line 2: unknown class id 5; skipped" in err
    assert "valid/labels/orphan.txt: label file without an image; skipped" in err
    assert "valid/images/bg.jpg: no label file; kept as a background image" in err
    assert "valid/images/bad.jpg: unreadable" in err
    assert str(tmp_path) not in err  # file names, never the server's folders
    assert _split_counts(dataset) == {"train": 1, "val": 1}
    assert Box.objects.filter(image__dataset=dataset).count() == 1


def test_a_zip_imports_and_a_hostile_zip_is_refused(tmp_path, capsys):
    folder = coco_folder(
        tmp_path / "set", [("a.jpg", 1)], [{"image_id": 1, "category_id": 9, "bbox": [1, 1, 5, 5]}]
    )
    archive = tmp_path / "set.zip"
    archive.write_bytes(zip_folder(folder, top="my set"))
    _, out, _ = _run(archive, "coco", "zipped", capsys)
    assert "1 images and 1 boxes added" in out
    for kind in ("dotdot", "symlink"):
        bad = tmp_path / f"{kind}.zip"
        bad.write_bytes(hostile_zip(kind))
        with pytest.raises(CommandError, match="the archive was refused"):
            call_command("import_dataset", str(bad), "--format", "yolo", "--name", "evil")
    assert not Dataset.objects.filter(name="evil").exists()
    assert not (tmp_path.parent / "escape.txt").exists()


def test_archive_caps_come_from_settings(tmp_path, settings):
    folder = coco_folder(tmp_path / "set", [("a.jpg", 1), ("b.jpg", 2)], [])
    archive = tmp_path / "set.zip"
    archive.write_bytes(zip_folder(folder))
    settings.IMPORT_MAX_ENTRIES = 2
    with pytest.raises(ImportFailed, match="3 entries; the limit is 2"):
        import_path(archive, "coco", name="capped")
    settings.IMPORT_MAX_ENTRIES = 100
    settings.IMPORT_MAX_UNPACKED_BYTES = 1000
    with pytest.raises(ImportFailed, match="unpacks to over"):
        import_path(archive, "coco", name="capped")


def test_identity_folders_still_import_as_faces(tmp_path, capsys):
    for person, seeds in (("ann", (1, 2)), ("bob", (3,))):
        for seed in seeds:
            write_jpeg(tmp_path / "people" / person / f"{seed}.jpg", seed=seed)
    dataset, _, _ = _run(tmp_path / "people", "folders", "people-set", capsys)
    assert dataset.task == "faces" and dataset.images.count() == 3
    assert sorted(dataset.subjects.values_list("name", flat=True)) == ["ann", "bob"]
