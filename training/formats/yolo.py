"""YOLO txt labels (writer): one ``class cx cy w h`` line per box, relative to the image.

Pure code (no Django). The layout Ultralytics and Darknet read: ``images/<split>/<stem>.jpg``
beside ``labels/<split>/<stem>.txt`` and a ``data.yaml`` naming the split folders and the
classes. Boxes come in as the house ``xyxy`` pixels and go out through
``inference.boxes.xyxy_to_yolo``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from inference.boxes import xyxy_to_yolo
from training.formats.voc import VocRecord


def yolo_lines(
    boxes: NDArray[np.floating], labels: NDArray[np.integer], width: int, height: int
) -> str:
    """Label-file text for one image.

    Args:
        boxes: ``(N, 4)`` xyxy pixels.
        labels: ``(N,)`` class indices.
        width, height: the image's size in pixels (> 0).

    Returns:
        ``N`` lines ``"<class> <cx> <cy> <w> <h>\\n"``, the four numbers normalised by the
        image size with six decimals; ``""`` for no boxes.
    """
    # float64: the six printed decimals must not depend on float32 rounding of the pixels.
    xyxy = torch.from_numpy(np.asarray(boxes, np.float64).reshape(-1, 4))
    normalised = xyxy_to_yolo(xyxy, width, height).tolist()
    rows = zip(np.asarray(labels).reshape(-1).tolist(), normalised, strict=True)
    return "".join(f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n" for c, (cx, cy, w, h) in rows)


def data_yaml(root: Path, splits: Sequence[str], class_names: Sequence[str]) -> str:
    """The ``data.yaml`` text: absolute ``path``, one ``images/<split>`` folder per split, names.

    JSON strings are valid YAML, so no YAML library is needed to write it.
    """
    lines = [f"path: {json.dumps(str(root))}"]
    lines += [f"{split}: images/{split}" for split in splits]
    lines.append(f"names: {json.dumps(list(class_names))}")
    return "\n".join(lines) + "\n"


def write_yolo_layout(
    out: Path, splits: Mapping[str, Sequence[VocRecord]], class_names: Sequence[str]
) -> Path:
    """Write the YOLO layout of ``splits`` under ``out``; return the ``data.yaml`` path.

    ``images/<split>/<stem><ext>`` are symlinks to the original images (nothing is copied),
    ``labels/<split>/<stem>.txt`` hold :func:`yolo_lines`. What an earlier call left in the
    split folders is removed first, and so are Ultralytics' ``labels/*.cache`` files: a
    stale file would put an image in the wrong split, a stale cache hide changed labels.

    Args:
        out: the layout's root (created).
        splits: split name -> its records, e.g. ``{"train": [...], "val": ..., "test": ...}``.
        class_names: label order; ``labels`` index into it.
    """
    for cache in out.glob("labels/*.cache"):
        cache.unlink()
    for split, records in splits.items():
        images, labels = out / "images" / split, out / "labels" / split
        for old in [*images.glob("*"), *labels.glob("*.txt")]:
            old.unlink()
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        for record in records:
            _write_record(record, images, labels)
    path = out / "data.yaml"
    path.write_text(data_yaml(out.resolve(), list(splits), class_names))
    return path


def _write_record(record: VocRecord, images: Path, labels: Path) -> None:
    link = images / f"{record.stem}{record.image_path.suffix.lower()}"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(record.image_path.resolve(), link)
    text = yolo_lines(record.boxes, record.labels, record.width, record.height)
    (labels / f"{record.stem}.txt").write_text(text)
