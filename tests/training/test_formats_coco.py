"""The COCO JSON reader on coco128 and on broken files made here; the writer in pycocotools."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools.coco import COCO

from tests.images import jpeg_bytes
from training.formats.coco import coco_files, coco_json, read_coco
from training.formats.records import Record, RecordSet


@pytest.fixture(scope="module")
def coco128(shared_data: Path) -> RecordSet:
    return read_coco(shared_data / "coco128")


def test_coco128_counts_minus_exactly_the_documented_defects(coco128: RecordSet) -> None:
    assert len(coco128.records) == 128
    assert coco128.num_boxes == 939 - 10  # the 10 iscrowd annotations are skipped
    assert len(coco128.class_names) == 80 and coco128.class_names[:2] == ["person", "bicycle"]
    assert len({n for r in coco128.records for n in r.class_names}) == 71
    assert Counter(w.code for w in coco128.warnings) == {"iscrowd": 10}
    assert all(w.file.startswith("images/") for w in coco128.warnings)
    # One JSON (instances_train2017) is not a split: the importer makes its own.
    assert coco128.splits == {}
    background = sorted(r.stem for r in coco128.records if len(r.boxes) == 0)
    assert background == ["000000000250", "000000000508"]


def test_coco128_first_box_is_the_json_bbox_as_xyxy(coco128: RecordSet, shared_data: Path) -> None:
    data = json.loads((shared_data / "coco128/annotations/instances_train2017.json").read_text())
    ann = next(a for a in data["annotations"] if a["image_id"] == 74 and not a["iscrowd"])
    x, y, w, h = ann["bbox"]
    record = next(r for r in coco128.records if r.stem == "000000000074")
    np.testing.assert_allclose(record.boxes[0], [x, y, x + w, y + h], atol=1e-4)
    names = {c["id"]: c["name"] for c in data["categories"]}
    assert record.class_names[0] == names[ann["category_id"]]


# --- broken inputs made here ---------------------------------------------------------------


def _image(path: Path, width: int = 64, height: int = 48, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg_bytes(width, height, seed=seed))
    return path


def _write(root: Path, doc: dict[str, Any], name: str = "annotations/instances.json") -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def _codes(dataset: RecordSet) -> list[tuple[str, str]]:
    return sorted((w.code, w.file) for w in dataset.warnings)


def _broken(root: Path) -> Path:
    for i, name in enumerate(["a.jpg", "b.jpg", "c.jpg", "extra.jpg"]):
        _image(root / "images" / name, seed=i)
    (root / "images" / "bad.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    doc = {
        "images": [
            {"id": 10, "file_name": "a.jpg", "width": 64, "height": 48},
            {"id": 11, "file_name": "b.jpg", "width": 100, "height": 100},
            {"id": 12, "file_name": "gone.jpg"},
            {"id": 13, "file_name": "bad.jpg"},
            {"id": 14, "file_name": "../../etc/c.jpg"},
            {"id": 15, "file_name": "a.jpg"},
        ],
        "categories": [{"id": 42, "name": "dog"}, {"id": 7, "name": " cat "}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 7, "bbox": [1, 2, 10, 20]},
            {"id": 2, "image_id": 10, "category_id": 99, "bbox": [1, 2, 10, 20]},
            {"id": 3, "image_id": 10, "category_id": 42, "bbox": [5, 5, -3, 10]},
            {"id": 4, "image_id": 10, "category_id": 42, "bbox": [5, 5, 0, 10]},
            {"id": 5, "image_id": 10, "category_id": 42, "bbox": [50, 40, 30, 30]},
            {"id": 6, "image_id": 10, "category_id": 42, "bbox": [70, 5, 3, 3]},
            {"id": 7, "image_id": 10, "category_id": 42, "bbox": [1, 2, 3, 4], "iscrowd": 1},
            {"id": 8, "image_id": 10, "category_id": 42, "bbox": ["x", 2, 3, 4]},
            {"id": 9, "image_id": 777, "category_id": 42, "bbox": [1, 2, 3, 4]},
            {"id": 10, "image_id": 12, "category_id": 42, "bbox": [1, 2, 3, 4]},
            {"id": 11, "image_id": 15, "category_id": 7, "bbox": [20, 20, 5, 5]},
        ],
    }
    _write(root, doc)
    return root


def test_every_defect_is_reported_with_its_file_and_nothing_crashes(tmp_path: Path) -> None:
    dataset = read_coco(_broken(tmp_path))
    json_name = "annotations/instances.json"
    assert _codes(dataset) == sorted(
        [
            ("size_mismatch", "images/b.jpg"),
            ("missing_image", json_name),  # gone.jpg
            ("unreadable_image", "images/bad.jpg"),
            ("missing_image", json_name),  # ../../etc/c.jpg is never looked up outside
            ("duplicate_image", "images/a.jpg"),  # listed again as id 15
            ("unknown_class", "images/a.jpg"),
            ("zero_area", "images/a.jpg"),  # negative width
            ("zero_area", "images/a.jpg"),
            ("out_of_bounds", "images/a.jpg"),
            ("outside_image", "images/a.jpg"),
            ("iscrowd", "images/a.jpg"),
            ("invalid_box", "images/a.jpg"),
            ("unknown_image", json_name),
            ("not_listed", "images/c.jpg"),
            ("not_listed", "images/extra.jpg"),
        ]
    )
    reasons = {w.reason for w in dataset.warnings}
    assert any("gone.jpg" in r for r in reasons) and any("777" in r for r in reasons)
    assert any("annotation 7" in r and "iscrowd" in r for r in reasons)


def test_boxes_are_converted_clipped_and_classes_follow_category_ids(tmp_path: Path) -> None:
    dataset = read_coco(_broken(tmp_path))
    assert dataset.class_names == ["cat", "dog"]  # ids 7 then 42; names stripped
    assert [r.stem for r in dataset.records] == ["a", "b"]  # b is a background image
    a, b = dataset.records
    np.testing.assert_allclose(a.boxes, [[1, 2, 11, 22], [50, 40, 64, 48], [20, 20, 25, 25]])
    assert a.class_names == ("cat", "dog", "cat") and a.labels.tolist() == [0, 1, 0]
    assert (b.width, b.height) == (64, 48) and b.boxes.shape == (0, 4)


def test_not_json_or_not_coco_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_x.json").write_text("{broken")
    (tmp_path / "annotations" / "instances_y.json").write_text('{"images": 3}')
    dataset = read_coco(tmp_path)
    assert dataset.records == []
    assert [w.code for w in dataset.warnings] == ["malformed_json", "malformed_json"]


def _tiny_doc(names: list[str]) -> dict[str, Any]:
    return {
        "images": [
            {"id": i, "file_name": n, "width": 64, "height": 48} for i, n in enumerate(names)
        ],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [
            {"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 5, 5]}
            for i in range(len(names))
        ],
    }


def test_split_files_give_the_folders_split(tmp_path: Path) -> None:
    for i, split in enumerate(["train", "val"]):
        _image(tmp_path / "images" / f"{split}2017" / f"{split}.jpg", seed=i)
        _write(tmp_path, _tiny_doc([f"{split}.jpg"]), f"annotations/instances_{split}2017.json")
    dataset = read_coco(tmp_path)
    assert dataset.splits == {"train": ["train"], "val": ["val"]}
    assert dataset.warnings == []


def test_roboflow_layout_valid_means_val(tmp_path: Path) -> None:
    for i, split in enumerate(["train", "valid", "test"]):
        _image(tmp_path / split / "same.jpg", seed=i)  # the same name in every split
        _write(tmp_path, _tiny_doc(["same.jpg"]), f"{split}/_annotations.coco.json")
    dataset = read_coco(tmp_path)
    assert dataset.splits == {"train": ["train/same"], "val": ["valid/same"], "test": ["test/same"]}
    assert dataset.num_boxes == 3


# --- writer ----------------------------------------------------------------------------------


def _records(tmp_path: Path) -> list[Record]:
    a = _image(tmp_path / "src" / "a.jpg")
    b = _image(tmp_path / "src" / "b.jpg", 30, 20, seed=1)
    boxes = np.array([[1.25, 2.5, 10.75, 20], [0, 0, 64, 48]], np.float32)
    return [
        Record("a", a, 64, 48, boxes, ("dog", "cat"), np.array([1, 0], np.int64)),
        Record("b", b, 30, 20, np.zeros((0, 4), np.float32), (), np.zeros(0, np.int64)),
    ]


def test_our_json_loads_in_pycocotools(tmp_path: Path) -> None:
    doc = coco_json(_records(tmp_path), ["cat", "dog"], ["a.jpg", "b.jpg"])
    path = tmp_path / "out.json"
    path.write_text(json.dumps(doc))
    coco = COCO(str(path))
    assert sorted(c["name"] for c in coco.loadCats(coco.getCatIds())) == ["cat", "dog"]
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[1]))
    assert [a["bbox"] for a in anns] == [[1.25, 2.5, 9.5, 17.5], [0, 0, 64, 48]]
    assert [coco.loadCats(a["category_id"])[0]["name"] for a in anns] == ["dog", "cat"]
    assert coco.getAnnIds(imgIds=[2]) == []


def test_files_round_trip_through_the_reader(tmp_path: Path) -> None:
    records = _records(tmp_path)
    out = tmp_path / "export"
    for name, content in coco_files(records, ["cat", "dog"], {"train": ["a"], "val": ["b"]}):
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.read_bytes() if isinstance(content, Path) else content)
    assert (out / "images/train/a.jpg").is_file() and (out / "images/val/b.jpg").is_file()
    back = read_coco(out)
    assert back.warnings == [] and back.class_names == ["cat", "dog"]
    assert back.splits == {"train": ["a"], "val": ["b"]}
    np.testing.assert_allclose(back.records[0].boxes, records[0].boxes, atol=0.01)
    assert back.records[0].class_names == ("dog", "cat")
