"""The YOLO label writer against a slow per-box reference, and the layout it writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.formats.voc import VocRecord
from training.formats.yolo import data_yaml, write_yolo_layout, yolo_lines


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
