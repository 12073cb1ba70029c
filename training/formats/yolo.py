"""YOLO txt labels: one ``class cx cy w h`` line per box, relative to the image.

Pure code (no Django). The layout Ultralytics and Darknet read: ``images/<split>/<stem>.jpg``
beside ``labels/<split>/<stem>.txt`` and a ``data.yaml`` naming the split folders and the
classes. Boxes come in as the house ``xyxy`` pixels and go out through
``inference.boxes.xyxy_to_yolo``; the reader (:func:`read_yolo`) brings them back through
``inference.boxes.yolo_to_xyxy``.

Layouts :func:`read_yolo` understands, tried in this order:

- a ``data.yaml`` (or the one ``*.yaml`` at the top that has ``names``) whose
  ``train``/``val``/``test`` entries name image folders or ``.txt`` lists of images,
  relative to its ``path`` or to its own folder (Roboflow's ``../train/images`` is read as
  ``train/images``, as Ultralytics does);
- Roboflow's ``train/``, ``valid/``, ``test/`` folders, each with ``images/`` and ``labels/``;
- Ultralytics' ``images/<split>/`` beside ``labels/<split>/``;
- a flat ``images/`` beside ``labels/`` (or labels beside the images), the classes in
  ``classes.txt`` (LabelImg, CVAT's "YOLO 1.1") or ``obj.names`` (Darknet).

An image's label file is found as Ultralytics finds it: the last ``images`` folder of its
path replaced by ``labels``, the extension by ``.txt``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from numpy.typing import NDArray

from inference.boxes import xyxy_to_yolo, yolo_to_xyxy
from training.formats.records import (
    UNREADABLE_ERRORS,
    Box,
    ExportFile,
    Record,
    RecordSet,
    Warnings,
    check_box,
    image_size,
    is_image_name,
    kept_splits,
    make_record,
    normalise_split,
    safe_relative,
    unique_stems,
)

MAX_CONFIG_BYTES = 1024 * 1024
MAX_LABEL_BYTES = 16 * 1024 * 1024
CLASS_FILES = ("classes.txt", "obj.names")
SPLIT_KEYS = ("train", "val", "valid", "test")


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
    out: Path, splits: Mapping[str, Sequence[Record]], class_names: Sequence[str]
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


def _write_record(record: Record, images: Path, labels: Path) -> None:
    link = images / f"{record.stem}{record.image_path.suffix.lower()}"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(record.image_path.resolve(), link)
    text = yolo_lines(record.boxes, record.labels, record.width, record.height)
    (labels / f"{record.stem}.txt").write_text(text)


def yolo_data_yaml(entries: Mapping[str, str], class_names: Sequence[str]) -> str:
    """A portable ``data.yaml``: no ``path`` (Ultralytics then reads the entries relative to
    the yaml's own folder, wherever the export is unpacked), ``names`` as ``{id: name}``."""
    document: dict[str, Any] = dict(entries)
    document["nc"] = len(class_names)
    document["names"] = dict(enumerate(class_names))
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def yolo_files(
    records: Sequence[Record],
    class_names: Sequence[str],
    splits: Mapping[str, Sequence[str]] | None = None,
) -> Iterator[ExportFile]:
    """The files of an Ultralytics dataset holding ``records`` (trains unchanged).

    Without ``splits``: ``images/<stem><ext>``, ``labels/<stem>.txt`` and a ``data.yaml``
    whose ``train`` and ``val`` are both ``images``. With ``splits`` (split -> stems):
    ``images/<split>/`` and ``labels/<split>/`` and one ``data.yaml`` entry per split (a
    missing ``train`` or ``val`` points at the first split, as Ultralytics needs both). An
    image without boxes gets an empty label file (a background image).
    """
    by_stem = {record.stem: record for record in records}
    groups: dict[str, Sequence[str]] = {"": list(by_stem)} if splits is None else dict(splits)
    for split, stems in groups.items():
        sub = f"{split}/" if split else ""
        for stem in stems:
            record = by_stem[stem]
            yield f"images/{sub}{stem}{record.image_path.suffix.lower()}", record.image_path
            text = yolo_lines(record.boxes, record.labels, record.width, record.height)
            yield f"labels/{sub}{stem}.txt", text.encode()
    entries = {split: f"images/{split}" for split in groups} if splits else {}
    if not entries:
        entries = {"train": "images"}
    first = next(iter(entries.values()))
    entries = {"train": entries.get("train", first), "val": entries.get("val", first), **entries}
    yield "data.yaml", yolo_data_yaml(entries, class_names).encode()


# ----------------------------------------------------------------------------- reader


@dataclass
class _Source:
    """The images of one split entry (``split`` None: the folder has no split)."""

    split: str | None
    images: list[Path] = field(default_factory=list)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if is_image_name(p.name) and p.is_file())


def label_path(image: Path, root: Path) -> Path:
    """Where Ultralytics looks for ``image``'s labels: the last ``images`` folder of its path
    under ``root`` becomes ``labels``, the extension ``.txt``."""
    parts = list(image.relative_to(root).parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return root.joinpath(*parts).with_suffix(".txt")


class _Reader:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.warnings = Warnings(root)
        self.segments: dict[Path, int] = {}

    # --- configuration ---------------------------------------------------------------
    def config(self) -> tuple[Path | None, dict[str, Any]]:
        """The ``data.yaml`` (or the one top-level yaml with ``names``) and its content."""
        found = [self.root / n for n in ("data.yaml", "data.yml") if (self.root / n).is_file()]
        found += sorted(p for p in self.root.glob("*.y*ml") if p not in found)
        for path in found:
            content = self.load_yaml(path)
            if content is not None and ("names" in content or path.stem == "data"):
                return path, content
        return None, {}

    def load_yaml(self, path: Path) -> dict[str, Any] | None:
        try:
            if path.stat().st_size > MAX_CONFIG_BYTES:
                raise ValueError("over 1 MB")
            content = yaml.safe_load(path.read_text(errors="replace"))
        except (OSError, ValueError, yaml.YAMLError) as error:
            self.warnings.add(path, "malformed_yaml", f"not readable YAML ({error}); skipped")
            return None
        if not isinstance(content, dict):
            self.warnings.add(path, "malformed_yaml", "not a YAML mapping; skipped")
            return None
        return content

    def class_names(
        self, config_path: Path | None, config: dict[str, Any]
    ) -> dict[int, str] | None:
        """``{class id: name}`` from the yaml's ``names`` (list or mapping) or ``nc``, else
        ``classes.txt`` / ``obj.names``; ``None`` when nothing names the classes."""
        names = config.get("names")
        where = config_path or self.root
        if isinstance(names, list):
            return {i: str(n).strip() for i, n in enumerate(names)}
        if isinstance(names, dict):
            out: dict[int, str] = {}
            for key, name in names.items():
                try:
                    out[int(key)] = str(name).strip()
                except (TypeError, ValueError):
                    self.warnings.add(where, "config", f"names key {key!r} is not a class id")
            return out
        if names is not None:
            self.warnings.add(where, "config", "names is neither a list nor a mapping")
        if isinstance(config.get("nc"), int):
            return {i: f"class_{i}" for i in range(config["nc"])}
        for folder in (self.root, self.root / "labels"):
            for name in CLASS_FILES:
                if (folder / name).is_file():
                    lines = (folder / name).read_text(errors="replace").splitlines()
                    return {i: line.strip() for i, line in enumerate(lines) if line.strip()}
        return None

    # --- which images, in which split ------------------------------------------------
    def sources(self, config_path: Path | None, config: dict[str, Any]) -> list[_Source]:
        """The split entries of the yaml that exist in the folder, else the folders found."""
        found: dict[Path, _Source] = {}
        if config_path is not None:
            base = self.base(config_path, config)
            for key in SPLIT_KEYS:
                values = config.get(key)
                for value in values if isinstance(values, list) else [values]:
                    if isinstance(value, str) and value.strip():
                        for target, source in self.entry(config_path, base, key, value.strip()):
                            # "val: images/train" beside "train: images/train" means the
                            # set has no separate val (Ultralytics needs the key): skip it.
                            found.setdefault(target.resolve(), source)
        return list(found.values()) or self.discover()

    def base(self, config_path: Path, config: dict[str, Any]) -> Path:
        """The yaml's ``path`` when it is a folder inside the root, else the yaml's folder
        (an absolute ``path`` names a folder on the machine that wrote it, not ours)."""
        relative = safe_relative(str(config.get("path") or ""))
        candidate = config_path.parent / relative if relative else None
        if candidate is not None and candidate.is_dir() and self.inside(candidate):
            return candidate
        return config_path.parent

    def inside(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self.root.resolve())

    def entry(
        self, config_path: Path, base: Path, key: str, value: str
    ) -> list[tuple[Path, _Source]]:
        """One ``train``/``val``/``test`` entry: a folder of images or a ``.txt`` list."""
        relative = safe_relative(value.removeprefix("../"))  # Roboflow's ../train/images
        target = base / relative if relative else None
        if target is None or not target.exists() or not self.inside(target):
            self.warnings.add(
                config_path,
                "config",
                f"{key}: {value} is not in the folder; the folders found are used instead",
            )
            return []
        split = normalise_split(key)
        if target.is_dir():
            return [(target, _Source(split, _images_in(target)))]
        images = []
        for line in target.read_text(errors="replace").splitlines():
            listed = safe_relative(line.strip().removeprefix("./"))
            path = base / listed if listed else None
            if path is not None and path.is_file() and self.inside(path):
                images.append(path)
            elif line.strip():
                self.warnings.add(target, "missing_image", f"{line.strip()}: image not found")
        return [(target, _Source(split, images))]

    def discover(self) -> list[_Source]:
        """Roboflow's split folders, else ``images/<split>/``, else ``images/``, else the top."""
        tops = sorted(p for p in self.root.iterdir() if p.is_dir())
        found = [
            _Source(normalise_split(d.name), _images_in(d / "images"))
            for d in tops
            if normalise_split(d.name) and (d / "images").is_dir()
        ]
        if found:
            return found
        images = self.root / "images"
        if not images.is_dir():
            flat = [p for p in sorted(self.root.iterdir()) if is_image_name(p.name) and p.is_file()]
            return [_Source(None, flat)]
        subs = sorted(p for p in images.iterdir() if p.is_dir())
        split_subs = [(normalise_split(p.name), p) for p in subs]
        if not any(split for split, _ in split_subs):
            return [_Source(None, _images_in(images))]
        loose = [p for p in sorted(images.iterdir()) if is_image_name(p.name) and p.is_file()]
        return [_Source(split, _images_in(p)) for split, p in split_subs] + [_Source(None, loose)]

    # --- one image and its labels ----------------------------------------------------
    def read_labels(
        self, image: Path, size: tuple[int, int], ids: Mapping[int, str] | None
    ) -> tuple[list[Box], list[str]]:
        """The boxes of ``image``'s label file (none, with a warning, when it has none)."""
        path = label_path(image, self.root)
        if not path.is_file():
            self.warnings.add(image, "missing_label", "no label file; kept as a background image")
            return [], []
        try:
            if path.stat().st_size > MAX_LABEL_BYTES:
                raise ValueError("over 16 MB")
            text = path.read_text()
        except (OSError, ValueError) as error:
            self.warnings.add(path, "invalid_label", f"unreadable ({error}); kept without boxes")
            return [], []
        if not text.strip():
            self.warnings.add(path, "empty_label", "empty label file; kept as a background image")
            return [], []
        rows, classes = self.parse_lines(path, text, ids)
        return self.to_boxes(path, rows, classes, size, ids)

    def parse_lines(
        self, path: Path, text: str, ids: Mapping[int, str] | None
    ) -> tuple[list[list[float]], list[int]]:
        """Normalised ``(cx, cy, w, h)`` rows and class ids of the usable lines."""
        rows: list[list[float]] = []
        classes: list[int] = []
        for number, line in enumerate(text.splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            try:
                values = [float(p) for p in parts]
            except ValueError:
                self.warnings.add(path, "invalid_box", f"line {number}: not numbers; skipped")
                continue
            cls, coords = values[0], values[1:]
            known = ids is None or (cls.is_integer() and int(cls) in ids)
            if not cls.is_integer() or cls < 0 or not known:
                self.warnings.add(
                    path, "unknown_class", f"line {number}: unknown class id {parts[0]}; skipped"
                )
                continue
            row = self.row(path, number, coords)
            if row is not None:
                rows.append(row)
                classes.append(int(cls))
        return rows, classes

    def row(self, path: Path, number: int, coords: list[float]) -> list[float] | None:
        """``cx cy w h``, or a polygon (segmentation labels) reduced to its bounding box."""
        if len(coords) == 4:
            return coords
        if len(coords) >= 6 and len(coords) % 2 == 0:
            xs, ys = coords[0::2], coords[1::2]
            self.segments[path] = self.segments.get(path, 0) + 1
            x1, x2, y1, y2 = min(xs), max(xs), min(ys), max(ys)
            return [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
        self.warnings.add(path, "invalid_box", f"line {number}: expected class cx cy w h; skipped")
        return None

    def to_boxes(
        self,
        path: Path,
        rows: list[list[float]],
        classes: list[int],
        size: tuple[int, int],
        ids: Mapping[int, str] | None,
    ) -> tuple[list[Box], list[str]]:
        if path in self.segments:
            self.warnings.add(
                path, "segment", f"{self.segments[path]} polygon(s) read as their bounding boxes"
            )
        boxes: list[Box] = []
        names: list[str] = []
        if not rows:
            return boxes, names
        xyxy = yolo_to_xyxy(torch.tensor(rows, dtype=torch.float64), *size).tolist()
        for (x1, y1, x2, y2), cls, raw in zip(xyxy, classes, rows, strict=True):
            box, code, reason = check_box(x1, y1, x2, y2, *size)
            if code:
                shown = " ".join(f"{v:g}" for v in raw)
                self.warnings.add(path, code, f"class {cls} [{shown}]: {reason}")
            if box is not None:
                boxes.append(box)
                names.append(ids[cls] if ids is not None else str(cls))
        return boxes, names

    def orphans(self, used: set[Path]) -> None:
        """Label files beside the ones read that no image has."""
        folders = {p.parent for p in used}
        for folder in sorted(folders):
            for path in sorted(folder.glob("*.txt")):
                if path not in used and path.name not in CLASS_FILES:
                    self.warnings.add(path, "missing_image", "label file without an image; skipped")


def _assign(sources: Sequence[_Source], warnings: Warnings) -> dict[Path, str | None]:
    """``{image: split}``; every split dropped (``None``) when the splits overlap."""
    split_of: dict[Path, str | None] = {}
    shared = 0
    for source in sources:
        for image in source.images:
            if image in split_of:
                shared += split_of[image] != source.split
                continue
            split_of[image] = source.split
    # train and val naming one folder is how a set without a split is written: no warning.
    if shared and shared < len(split_of):
        warnings.add("", "config", f"{shared} image(s) are in two splits; the splits are not used")
    return {image: None for image in split_of} if shared else split_of


def read_yolo(root: Path) -> RecordSet:
    """Read a YOLO txt dataset folder (see the module docstring for the layouts).

    What is done with each defect (each is also a ``FormatWarning``):

    - label file without an image: skipped; image without a label file, or with an empty
      one: kept as a background image (no boxes);
    - unknown or non-integer class id, a line that is not ``class cx cy w h`` (or a
      polygon, read as its bounding box): the line is skipped;
    - zero or negative width/height: skipped; partly outside the image: clipped; entirely
      outside: skipped;
    - unreadable image: skipped; yaml entries not in the folder: the folders are used.

    Args:
        root: the dataset's folder.

    Returns:
        A :class:`RecordSet`: ``class_names`` every declared class in id order, sizes as the
        image is shown (EXIF orientation applied, as Ultralytics reads the labels), and the
        folder's split when it has at least two (``valid`` -> ``val``).
    """
    root = Path(root)
    reader = _Reader(root)
    config_path, config = reader.config()
    ids = reader.class_names(config_path, config)
    if ids is None:
        reader.warnings.add(root, "config", "no data.yaml or classes.txt: classes named by id")
    sources = reader.sources(config_path, config)
    split_of = _assign(sources, reader.warnings)
    images = sorted(split_of)
    parsed: list[tuple[Path, tuple[int, int], list[Box], list[str]]] = []
    for image in images:
        try:
            size = image_size(image, exif=True)
        except UNREADABLE_ERRORS as error:
            reader.warnings.add(image, "unreadable_image", f"unreadable ({error}); skipped")
            continue
        boxes, names = reader.read_labels(image, size, ids)
        parsed.append((image, size, boxes, names))
    reader.orphans({label_path(image, root) for image in images})
    declared = list(dict.fromkeys(ids[k] for k in sorted(ids))) if ids else []
    class_names = declared or sorted({n for *_, names in parsed for n in names}, key=_id_order)
    index = {name: i for i, name in enumerate(class_names)}
    stems = unique_stems([image for image, *_ in parsed], root)
    records = [
        make_record(stem, image, size, boxes, names, index)
        for stem, (image, size, boxes, names) in zip(stems, parsed, strict=True)
    ]
    assigned = {stem: split_of[item[0]] for stem, item in zip(stems, parsed, strict=True)}
    records.sort(key=lambda r: r.stem)
    return RecordSet(
        root, records, class_names, kept_splits(assigned, set(stems)), reader.warnings.items
    )


def _id_order(name: str) -> tuple[int, str]:
    """Classes named by their id sort as numbers."""
    return (int(name), "") if name.isdigit() else (1 << 30, name)
