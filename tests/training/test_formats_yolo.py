"""The YOLO label writer against a slow per-box reference, the layouts it writes, and the
reader on coco128 and on broken folders made here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.images import jpeg_bytes
from training.formats.coco import read_coco
from training.formats.records import Record
from training.formats.voc import VocRecord
from training.formats.yolo import data_yaml, read_yolo, write_yolo_layout, yolo_files, yolo_lines


def ref_lines(boxes: list[list[float]], labels: list[int], width: int, height: int) -> str:
    out = ""
    for (x1, y1, x2, y2), c in zip(boxes, labels, strict=True):
        cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
        out += f"{c} {cx:.6f} {cy:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}\n"
    return out


@pytest.mark.parametrize("seed", range(5))
def test_yolo_lines_match_the_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    width, height = 640, 480
    xy = rng.uniform(0, 300, (7, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 300, (7, 2))], axis=1).astype(np.float32)
    labels = rng.integers(0, 3, 7)
    expected = ref_lines(boxes.astype(np.float64).tolist(), labels.tolist(), width, height)
    assert yolo_lines(boxes, labels, width, height) == expected


def test_yolo_lines_of_no_boxes_is_empty() -> None:
    assert yolo_lines(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), 10, 10) == ""
    assert yolo_lines(np.array([[0, 0, 10, 5]], np.float32), np.array([2]), 10, 10) == (
        "2 0.500000 0.250000 1.000000 0.500000\n"
    )


def test_write_yolo_layout_links_images_writes_labels_and_clears_old_files(
    tmp_path: Path,
) -> None:
    image = tmp_path / "src" / "a.JPG"
    image.parent.mkdir()
    Image.new("RGB", (20, 10)).save(image, format="JPEG")
    boxes, labels = np.array([[0, 0, 10, 10]], np.float32), np.array([1], np.int64)
    record = VocRecord("a", image, 20, 10, boxes, ("y",), labels)
    out = tmp_path / "yolo"
    (out / "images" / "val").mkdir(parents=True)
    (out / "images" / "val" / "old.jpg").write_bytes(b"")
    (out / "labels").mkdir()
    (out / "labels" / "train.cache").write_bytes(b"")

    path = write_yolo_layout(out, {"train": [record], "val": []}, ["x", "y"])

    assert path == out / "data.yaml"
    assert path.read_text() == data_yaml(out.resolve(), ["train", "val"], ["x", "y"])
    assert (out / "images" / "train" / "a.jpg").resolve() == image.resolve()
    assert (out / "labels" / "train" / "a.txt").read_text() == (
        "1 0.250000 0.500000 0.500000 1.000000\n"
    )
    assert not (out / "images" / "val" / "old.jpg").exists()
    assert not (out / "labels" / "train.cache").exists()
    assert 'names: ["x", "y"]' in path.read_text()


# --- the reader ------------------------------------------------------------------------------


def test_coco128_yolo_form_counts_minus_exactly_the_documented_defects(shared_data: Path) -> None:
    dataset = read_yolo(shared_data / "coco128")
    assert len(dataset.records) == 128 and dataset.num_boxes == 929
    assert len(dataset.class_names) == 80  # yolo-classes.yaml's names mapping, ids 0..79
    assert dataset.splits == {}
    by_code = sorted((w.code, w.file) for w in dataset.warnings)
    assert by_code == [
        ("config", "yolo-classes.yaml"),  # its train: images/train2017 is not there
        ("config", "yolo-classes.yaml"),  # nor val: images/val2017
        ("missing_image", "labels/000000000656.txt"),
        ("missing_image", "labels/000000000659.txt"),
        ("missing_label", "images/000000000250.jpg"),
        ("missing_label", "images/000000000508.jpg"),
    ]


def test_coco128_yolo_and_coco_forms_give_the_same_boxes(shared_data: Path) -> None:
    yolo = read_yolo(shared_data / "coco128")
    coco = read_coco(shared_data / "coco128")
    assert yolo.class_names == coco.class_names
    by_stem = {r.stem: r for r in coco.records}
    assert set(by_stem) == {r.stem for r in yolo.records}
    for record in yolo.records:
        other = by_stem[record.stem]
        assert (record.width, record.height) == (other.width, other.height)
        assert sorted(record.class_names) == sorted(other.class_names)
        for box, name in zip(record.boxes, record.class_names, strict=True):
            same_class = other.boxes[[n == name for n in other.class_names]]
            assert np.abs(same_class - box).max(axis=1).min() < 0.01  # six decimals of 640 px


def _jpeg(path: Path, width: int = 100, height: int = 50, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg_bytes(width, height, seed=seed))
    return path


def _label(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_ultralytics_layout_names_as_a_list(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text(
        "path: /content/elsewhere\ntrain: images/train\nval: images/val\nnames: [cat, dog]\n"
    )
    _jpeg(tmp_path / "images/train/a.jpg")
    _label(tmp_path / "labels/train/a.txt", "1 0.5 0.5 0.2 0.4\n0 0.1 0.1 0.1 0.1\n")
    _jpeg(tmp_path / "images/val/b.jpg", seed=1)
    _label(tmp_path / "labels/val/b.txt", "0 0.5 0.5 1 1\n")
    dataset = read_yolo(tmp_path)
    assert dataset.warnings == []
    assert dataset.class_names == ["cat", "dog"]
    assert dataset.splits == {"train": ["a"], "val": ["b"]}
    a, b = dataset.records
    np.testing.assert_allclose(a.boxes, [[40, 15, 60, 35], [5, 2.5, 15, 7.5]], atol=1e-4)
    assert a.class_names == ("dog", "cat")
    np.testing.assert_allclose(b.boxes, [[0, 0, 100, 50]])


def test_roboflow_layout_valid_means_val_and_its_dotdot_entries(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n"
        "nc: 2\nnames: {0: cat, 1: dog}\n"
    )
    for i, split in enumerate(["train", "valid", "test"]):
        _jpeg(tmp_path / split / "images" / "x.jpg", seed=i)
        _label(tmp_path / split / "labels" / "x.txt", f"{i % 2} 0.5 0.5 0.5 0.5\n")
    dataset = read_yolo(tmp_path)
    assert dataset.warnings == []
    assert dataset.splits == {"train": ["train/x"], "val": ["valid/x"], "test": ["test/x"]}
    assert {r.stem: r.class_names for r in dataset.records} == {
        "train/x": ("cat",),
        "valid/x": ("dog",),
        "test/x": ("cat",),
    }


def test_roboflow_folders_without_a_yaml_are_found(tmp_path: Path) -> None:
    for i, split in enumerate(["train", "valid"]):
        _jpeg(tmp_path / split / "images" / f"{split}.jpg", seed=i)
        _label(tmp_path / split / "labels" / f"{split}.txt", "0 0.5 0.5 0.5 0.5\n")
    (tmp_path / "classes.txt").write_text("cell\n")
    dataset = read_yolo(tmp_path)
    assert dataset.splits == {"train": ["train"], "val": ["valid"]}
    assert dataset.class_names == ["cell"] and dataset.warnings == []


def test_flat_layout_with_classes_txt_and_every_defect(tmp_path: Path) -> None:
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    images, labels = tmp_path / "images", tmp_path / "labels"
    _jpeg(images / "good.jpg")
    _label(
        labels / "good.txt",
        "0 0.5 0.5 0.2 0.2\n"
        "7 0.5 0.5 0.2 0.2\n"  # unknown class id
        "1 0.5 0.5 0 0.2\n"  # zero width
        "1 0.5 0.5 -0.1 0.2\n"  # negative width
        "1 0.95 0.5 0.2 0.2\n"  # sticks out on the right: clipped
        "1 1.5 0.5 0.2 0.2\n"  # entirely outside
        "0 x 0.5 0.2 0.2\n"  # not numbers
        "0 0.5 0.5\n"  # too few
        "1 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3\n",  # a polygon: its bounding box
    )
    _jpeg(images / "background.jpg", seed=1)
    _jpeg(images / "empty.jpg", seed=2)
    _label(labels / "empty.txt", "\n")
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff not an image")
    _label(labels / "broken.txt", "0 0.5 0.5 0.1 0.1\n")
    _label(labels / "orphan.txt", "0 0.5 0.5 0.1 0.1\n")
    dataset = read_yolo(tmp_path)
    codes = sorted((w.code, w.file) for w in dataset.warnings)
    assert codes == [
        ("empty_label", "labels/empty.txt"),
        ("invalid_box", "labels/good.txt"),
        ("invalid_box", "labels/good.txt"),
        ("missing_image", "labels/orphan.txt"),
        ("missing_label", "images/background.jpg"),
        ("out_of_bounds", "labels/good.txt"),
        ("outside_image", "labels/good.txt"),
        ("segment", "labels/good.txt"),
        ("unknown_class", "labels/good.txt"),
        ("unreadable_image", "images/broken.jpg"),
        ("zero_area", "labels/good.txt"),
        ("zero_area", "labels/good.txt"),
    ]
    assert any("line 2" in w.reason and "7" in w.reason for w in dataset.warnings)
    assert [r.stem for r in dataset.records] == ["background", "empty", "good"]
    good = dataset.records[2]
    np.testing.assert_allclose(
        good.boxes, [[40, 20, 60, 30], [85, 20, 100, 30], [10, 5, 30, 15]], atol=1e-4
    )
    assert good.class_names == ("cat", "dog", "dog")
    assert dataset.records[0].boxes.shape == (0, 4) and dataset.splits == {}


def test_exif_rotated_photo_takes_its_displayed_size(tmp_path: Path) -> None:
    path = tmp_path / "images" / "r.jpg"
    path.parent.mkdir(parents=True)
    path.write_bytes(jpeg_bytes(100, 50, exif_orientation=6))  # shown as 50 wide, 100 high
    _label(tmp_path / "labels" / "r.txt", "0 0.5 0.5 1 1\n")
    (tmp_path / "classes.txt").write_text("x\n")
    record = read_yolo(tmp_path).records[0]
    assert (record.width, record.height) == (50, 100)
    np.testing.assert_allclose(record.boxes, [[0, 0, 50, 100]])


def test_overlapping_splits_are_not_a_split(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text("train: images\nval: images\nnames: [a]\n")
    for i in range(3):
        _jpeg(tmp_path / "images" / f"{i}.jpg", seed=i)
        _label(tmp_path / "labels" / f"{i}.txt", "0 0.5 0.5 0.5 0.5\n")
    dataset = read_yolo(tmp_path)
    assert dataset.splits == {} and dataset.warnings == [] and len(dataset.records) == 3


def test_yaml_entries_never_leave_the_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _jpeg(outside / "images" / "secret.jpg")
    root = tmp_path / "set"
    root.mkdir()
    (root / "data.yaml").write_text(
        f"train: {outside}/images\nval: ../../outside/images\nnames: [a]\n"
    )
    dataset = read_yolo(root)
    assert dataset.records == []
    assert [w.code for w in dataset.warnings] == ["config", "config"]


# --- the export writer ---------------------------------------------------------------------


def test_yolo_files_round_trip_through_the_reader(tmp_path: Path) -> None:
    a = _jpeg(tmp_path / "src" / "a.jpg", 64, 48)
    b = _jpeg(tmp_path / "src" / "b.png", 30, 20, seed=1)
    boxes = np.array([[1.25, 2.5, 10.75, 20], [0, 0, 64, 48]], np.float32)
    records = [
        Record("a", a, 64, 48, boxes, ("dog", "cat"), np.array([1, 0], np.int64)),
        Record("b", b, 30, 20, np.zeros((0, 4), np.float32), (), np.zeros(0, np.int64)),
    ]
    for splits in (None, {"train": ["a"], "test": ["b"]}):
        out = tmp_path / f"out-{bool(splits)}"
        for name, content in yolo_files(records, ["cat", "dog"], splits):
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.read_bytes() if isinstance(content, Path) else content)
        config = yaml.safe_load((out / "data.yaml").read_text())
        assert config["names"] == {0: "cat", 1: "dog"} and "path" not in config
        back = read_yolo(out)
        assert back.class_names == ["cat", "dog"]
        assert [w.code for w in back.warnings] == ["empty_label"]  # b has no boxes
        np.testing.assert_allclose(back.records[0].boxes, boxes, atol=1e-3)
        assert back.records[0].class_names == ("dog", "cat")
        if splits:
            assert config["train"] == "images/train" and config["val"] == "images/train"
            assert back.splits == {"train": ["a"], "test": ["b"]}
        else:
            assert config["train"] == config["val"] == "images" and back.splits == {}
