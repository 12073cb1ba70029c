"""Turn a Pascal VOC folder with the authors' splits into the YOLO txt layout Ultralytics reads.

Bench-only: the app has its own exporters; this exists so the Ultralytics baseline trains on
exactly the records our reader produces (same defects dropped, same class order).

Layout written under ``out``::

    images/{train,val,test}/<stem>.jpg   symlinks to the original images
    labels/{train,val,test}/<stem>.txt   one "class cx cy w h" line per box, relative to the image
    data.yaml                            absolute path, split folders, names in read_voc's order

Usage: ``.venv/bin/python -m bench.voc_to_yolo ../shared/data/bccd /tmp/bccd_yolo``
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from training.formats.voc import VocDataset, VocRecord, read_voc

__all__ = ["YoloLayout", "convert", "yolo_lines"]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class YoloLayout:
    """What :func:`convert` wrote.

    Attributes:
        root: the output folder.
        data_yaml: the dataset file to pass to Ultralytics (``data=``).
        class_names: label order, the one of ``read_voc``.
        split_stems: split -> stems, in the authors' order.
        dataset: the VOC read, so callers reuse its records as ground truth.
    """

    root: Path
    data_yaml: Path
    class_names: list[str]
    split_stems: dict[str, list[str]]
    dataset: VocDataset


def yolo_lines(
    boxes: NDArray[np.float32], labels: NDArray[np.int64], width: int, height: int
) -> str:
    """Boxes ``float32 (N, 4)`` xyxy pixels -> YOLO label text (normalised ``cx cy w h``)."""
    xyxy = np.asarray(boxes, np.float64).reshape(-1, 4)
    cx = (xyxy[:, 0] + xyxy[:, 2]) / 2 / width
    cy = (xyxy[:, 1] + xyxy[:, 3]) / 2 / height
    w = (xyxy[:, 2] - xyxy[:, 0]) / width
    h = (xyxy[:, 3] - xyxy[:, 1]) / height
    rows = zip(labels.tolist(), cx, cy, w, h, strict=True)
    return "".join(f"{c} {a:.6f} {b:.6f} {d:.6f} {e:.6f}\n" for c, a, b, d, e in rows)


def _write_record(record: VocRecord, images: Path, labels: Path) -> None:
    link = images / f"{record.stem}{record.image_path.suffix.lower()}"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(record.image_path.resolve(), link)
    text = yolo_lines(record.boxes, record.labels, record.width, record.height)
    (labels / f"{record.stem}.txt").write_text(text)


def _data_yaml(root: Path, class_names: list[str]) -> str:
    # JSON is valid YAML and needs no YAML library in the app's venv.
    lines = [f"path: {json.dumps(str(root))}"]
    lines += [f"{split}: images/{split}" for split in SPLITS]
    lines.append(f"names: {json.dumps(class_names)}")
    return "\n".join(lines) + "\n"


def convert(voc_root: Path, out: Path) -> YoloLayout:
    """Write the YOLO layout of ``voc_root``'s authors' splits under ``out``.

    Raises:
        ValueError: the folder has no train/val/test split files.
    """
    dataset = read_voc(voc_root)
    missing = [s for s in SPLITS if not dataset.splits.get(s)]
    if missing:
        raise ValueError(f"{voc_root}: no authors' split(s) {missing} in ImageSets/Main")
    by_stem = {r.stem: r for r in dataset.records}
    # Stale label caches from an earlier conversion would hide a changed label set.
    for cache in out.glob("labels/*.cache"):
        cache.unlink()
    for split in SPLITS:
        images, labels = out / "images" / split, out / "labels" / split
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        for stem in dataset.splits[split]:
            _write_record(by_stem[stem], images, labels)
    data_yaml = out / "data.yaml"
    data_yaml.write_text(_data_yaml(out.resolve(), dataset.class_names))
    stems = {s: list(dataset.splits[s]) for s in SPLITS}
    return YoloLayout(out, data_yaml, list(dataset.class_names), stems, dataset)


def main() -> None:
    """CLI: ``python -m bench.voc_to_yolo VOC_ROOT OUT``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("voc_root", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    layout = convert(args.voc_root, args.out)
    counts = {s: len(v) for s, v in layout.split_stems.items()}
    print(f"wrote {layout.data_yaml} (classes {layout.class_names}, images {counts})")


if __name__ == "__main__":
    main()
