"""COCO JSON (object detection): a reader tolerant of real-world files, and a writer.

Pure code (no Django). COCO keeps one JSON per split (``annotations/instances_train2017.json``;
Roboflow: ``train/_annotations.coco.json``; CVAT: ``annotations/instances_default.json``)
listing ``images`` (id, file_name, width, height), ``categories`` (any ids, not necessarily
1..N) and ``annotations`` (image_id, category_id, ``bbox = [x, y, w, h]`` in pixels from the
top-left corner, iscrowd). Boxes come out in the house format (``xyxy`` float pixels) through
``inference.boxes.xywh_to_xyxy``.

What :func:`read_coco` does with each defect (each is also a ``FormatWarning``):

- ``iscrowd`` annotation (a crowd region, not one object): skipped;
- unknown ``category_id`` or ``image_id``, missing or non-numeric bbox: skipped;
- zero or negative width/height: skipped; partly outside the image: clipped; entirely
  outside: skipped;
- image listed but missing on disk, or unreadable: skipped with its annotations;
- JSON ``width``/``height`` disagreeing with the image: the image's size is used;
- the same file listed under two ids: one image, the boxes of both;
- an image on disk beside the listed ones but not in any JSON: skipped;
- a file that is not JSON, over :data:`MAX_JSON_BYTES` or not COCO: skipped.

Images with no annotation are kept as background images (no boxes). File names in the JSON
are looked up only inside the folder: absolute paths and ``..`` are refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from inference.boxes import xywh_to_xyxy, xyxy_to_xywh
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

MAX_JSON_BYTES = 1024**3  # COCO's own train2017 instances file is 448 MB
ANNOTATION_DIRS = ("annotations", "Annotations")


@dataclass
class _Image:
    """One listed image once found on disk, before the class list is final."""

    path: Path
    size: tuple[int, int]
    split: str | None
    ids: list[int]
    boxes: list[Box] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


def coco_json_files(path: Path) -> list[Path]:
    """The COCO JSONs of a folder: ``annotations/*.json``, else ``*.json`` at the top or one
    folder down (Roboflow's ``<split>/_annotations.coco.json``). A JSON path is itself."""
    if path.is_file():
        return [path]
    found: list[Path] = []
    for name in ANNOTATION_DIRS:
        if (path / name).is_dir():
            found += sorted((path / name).glob("*.json"))
    if not found:
        found = sorted(path.glob("*.json")) + sorted(path.glob("*/*.json"))
    # A COCO download also has captions_* and person_keypoints_*: instances_* are the boxes.
    instances = [p for p in found if p.name.startswith("instances_")]
    unique = {p.resolve(): p for p in instances or found}
    return sorted(unique.values())


class _Reader:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.warnings = Warnings(root)
        self.images: dict[Path, _Image] = {}
        self.folders: set[Path] = set()
        self.located: set[Path] = set()  # every listed file found, readable or not
        self.category_names: dict[int, str] = {}  # over every JSON, for the class order

    def read_file(self, json_path: Path) -> None:
        data = self.load(json_path)
        if data is None:
            return
        split = normalise_split(json_path.stem)
        if split is None and json_path.parent not in (self.root, *self.annotation_dirs()):
            split = normalise_split(json_path.parent.name)
        names = self.categories(json_path, data["categories"])
        self.category_names.update(names)
        listed = self.listed_images(json_path, data["images"], split)
        for number, ann in enumerate(data["annotations"]):
            self.annotation(json_path, number, ann, listed, names)

    def annotation_dirs(self) -> list[Path]:
        return [self.root / name for name in ANNOTATION_DIRS]

    def load(self, json_path: Path) -> dict[str, Any] | None:
        """The JSON if it is a COCO detection file, else ``None`` with a warning."""
        try:
            if json_path.stat().st_size > MAX_JSON_BYTES:
                self.warnings.add(json_path, "malformed_json", "over the size limit; skipped")
                return None
            data = json.loads(json_path.read_bytes())
        except (OSError, ValueError) as error:
            self.warnings.add(json_path, "malformed_json", f"not readable JSON ({error}); skipped")
            return None
        keys = ("images", "annotations", "categories")
        if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in keys):
            self.warnings.add(
                json_path,
                "malformed_json",
                "not a COCO detection file (needs lists 'images', 'annotations' and "
                "'categories'); skipped",
            )
            return None
        return data

    def categories(self, json_path: Path, raw: list[Any]) -> dict[int, str]:
        """``{category id: class name}``; names stripped, the same name twice is one class."""
        names: dict[int, str] = {}
        for item in raw:
            cid = item.get("id") if isinstance(item, dict) else None
            name = str(item.get("name") or "").strip() if isinstance(item, dict) else ""
            if not isinstance(cid, int) or isinstance(cid, bool) or not name:
                self.warnings.add(json_path, "invalid_category", f"category {item!r} skipped")
                continue
            if name in names.values():
                self.warnings.add(
                    json_path, "duplicate_category", f"category {cid} repeats {name!r}; merged"
                )
            names[cid] = name
        return names

    def listed_images(
        self, json_path: Path, raw: list[Any], split: str | None
    ) -> dict[int, _Image | None]:
        """``{image id: the image found, or None when it is missing or unreadable}``."""
        listed: dict[int, _Image | None] = {}
        for item in raw:
            iid = item.get("id") if isinstance(item, dict) else None
            name = item.get("file_name") if isinstance(item, dict) else None
            if not isinstance(iid, int) or isinstance(iid, bool) or not isinstance(name, str):
                self.warnings.add(json_path, "invalid_image", f"image entry {item!r} skipped")
                continue
            listed[iid] = self.find_image(json_path, iid, name, item, split)
        return listed

    def find_image(
        self, json_path: Path, iid: int, name: str, item: dict[str, Any], split: str | None
    ) -> _Image | None:
        relative = safe_relative(name)
        path = None if relative is None else self.locate(json_path, relative, split)
        if path is None:
            self.warnings.add(json_path, "missing_image", f"{name}: image not found; skipped")
            return None
        if path in self.images:  # the same file under a second id (or in a second JSON)
            known = self.images[path]
            known.ids.append(iid)
            self.warnings.add(
                path, "duplicate_image", f"listed again as image {iid}; boxes of every listing kept"
            )
            return known
        self.located.add(path)
        self.folders.add(path.parent)
        try:
            size = image_size(path)
        except UNREADABLE_ERRORS as error:
            self.warnings.add(path, "unreadable_image", f"unreadable ({error}); skipped")
            return None
        listed_size = (item.get("width"), item.get("height"))
        if all(listed_size) and listed_size != size:
            self.warnings.add(
                path,
                "size_mismatch",
                f"JSON size {listed_size[0]}x{listed_size[1]} differs from the image's "
                f"{size[0]}x{size[1]}; using the image's",
            )
        self.images[path] = image = _Image(path, size, split, [iid])
        return image

    def locate(self, json_path: Path, relative: PurePosixPath, split: str | None) -> Path | None:
        """The listed file inside the folder: by its relative name, then by its base name,
        in the JSON's folder, the top, ``images/`` and their split sub-folders."""
        tail = json_path.stem.removeprefix("instances_").removeprefix("_annotations.coco")
        bases = [json_path.parent, self.root, self.root / "images", json_path.parent.parent]
        subs = ["", *dict.fromkeys(s for s in (tail, split) if s)]
        root = self.root.resolve()
        for base in dict.fromkeys(bases):
            for sub in subs:
                for rel in (relative, PurePosixPath(relative.name)):
                    candidate = base / sub / rel
                    if candidate.is_file() and candidate.resolve().is_relative_to(root):
                        return candidate
        return None

    def annotation(
        self,
        json_path: Path,
        number: int,
        ann: Any,
        listed: Mapping[int, _Image | None],
        names: Mapping[int, str],
    ) -> None:
        """Check one annotation and add its box to its image, or warn why not."""
        if not isinstance(ann, dict):
            self.warnings.add(json_path, "invalid_box", f"annotation #{number} is not an object")
            return
        where = f"annotation {ann.get('id', f'#{number}')}"
        iid, cid = ann.get("image_id"), ann.get("category_id")
        if not isinstance(iid, int) or iid not in listed:
            self.warnings.add(json_path, "unknown_image", f"{where}: unknown image_id {iid!r}")
            return
        image = listed[iid]
        if image is None:
            return  # the image is missing or unreadable: already reported once
        if ann.get("iscrowd"):
            self.warnings.add(
                image.path, "iscrowd", f"{where}: iscrowd (a crowd region, not one object); skipped"
            )
            return
        if not isinstance(cid, int) or cid not in names:
            self.warnings.add(
                image.path, "unknown_class", f"{where}: unknown category_id {cid!r}; skipped"
            )
            return
        self.add_box(image, where, ann.get("bbox"), names[cid])

    def add_box(self, image: _Image, where: str, bbox: Any, name: str) -> None:
        numbers = isinstance(bbox, list) and len(bbox) == 4
        if not numbers or not all(isinstance(v, int | float) for v in bbox):
            self.warnings.add(image.path, "invalid_box", f"{where}: bbox {bbox!r} invalid; skipped")
            return
        xywh = torch.tensor([bbox], dtype=torch.float64)
        x1, y1, x2, y2 = xywh_to_xyxy(xywh)[0].tolist()
        box, code, reason = check_box(x1, y1, x2, y2, *image.size)
        if code:
            self.warnings.add(image.path, code, f"{where} bbox {bbox}: {reason}")
        if box is not None:
            image.boxes.append(box)
            image.names.append(name)

    def unlisted(self) -> None:
        """Warn about images beside the listed ones that no JSON lists."""
        for folder in sorted(self.folders):
            for path in sorted(folder.iterdir()):
                if is_image_name(path.name) and path.is_file() and path not in self.located:
                    self.warnings.add(path, "not_listed", "image not listed in any JSON; skipped")


def read_coco(path: Path) -> RecordSet:
    """Read COCO JSON detection annotations and their images.

    Args:
        path: a folder (its ``annotations/*.json``, or ``*.json`` at the top or one folder
            down; ``instances_*`` preferred) or one JSON file.

    Returns:
        A :class:`RecordSet`: one record per listed image found on disk (background images
        included), ``class_names`` every category name in the order of the categories' ids
        (over all the JSONs), ``splits`` from the JSONs' names (``instances_val2017`` ->
        ``val``) when they name at least two splits.
    """
    path = Path(path)
    root = path if path.is_dir() else path.parent
    reader = _Reader(root)
    files = coco_json_files(path)
    if not files:
        reader.warnings.add(root, "missing_label", "no COCO JSON file found")
    for json_path in files:
        reader.read_file(json_path)
    reader.unlisted()
    images = sorted(reader.images.values(), key=lambda i: i.path)
    by_id = reader.category_names
    names = list(dict.fromkeys(by_id[k] for k in sorted(by_id)))
    index = {name: i for i, name in enumerate(names)}
    stems = unique_stems([image.path for image in images], root)
    records = [
        make_record(stem, image.path, image.size, image.boxes, image.names, index)
        for stem, image in zip(stems, images, strict=True)
    ]
    records.sort(key=lambda r: r.stem)
    assigned = {stem: image.split for stem, image in zip(stems, images, strict=True)}
    splits = kept_splits(assigned, set(assigned))
    return RecordSet(root, records, names, splits, reader.warnings.items)


# ----------------------------------------------------------------------------- writer


def coco_json(
    records: Sequence[Record], class_names: Sequence[str], file_names: Sequence[str]
) -> dict[str, Any]:
    """One COCO detection file for ``records`` (pycocotools, CVAT and Label Studio read it).

    Args:
        records: the images and their boxes (xyxy pixels, labels indexing ``class_names``).
        class_names: categories get ids ``1..N`` in this order.
        file_names: each record's ``file_name`` as it will lie in the export.

    Returns:
        ``{"info", "licenses", "categories", "images", "annotations"}``; ``bbox`` is
        ``[x, y, w, h]`` pixels with two decimals, ``area = w * h``, ``iscrowd = 0``.
    """
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, (record, name) in enumerate(zip(records, file_names, strict=True), start=1):
        images.append(
            {"id": image_id, "file_name": name, "width": record.width, "height": record.height}
        )
        xyxy = torch.from_numpy(np.asarray(record.boxes, np.float64).reshape(-1, 4))
        for box, label in zip(xyxy_to_xywh(xyxy).tolist(), record.labels.tolist(), strict=True):
            x, y, w, h = (round(v, 2) for v in box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label) + 1,
                    "bbox": [x, y, w, h],
                    "area": round(w * h, 2),
                    "iscrowd": 0,
                    "segmentation": [],
                }
            )
    categories = [
        {"id": i, "name": name, "supercategory": ""} for i, name in enumerate(class_names, start=1)
    ]
    return {
        "info": {"description": "Exported by the vision workbench"},
        "licenses": [],
        "categories": categories,
        "images": images,
        "annotations": annotations,
    }


def coco_files(
    records: Sequence[Record],
    class_names: Sequence[str],
    splits: Mapping[str, Sequence[str]] | None = None,
) -> Iterator[ExportFile]:
    """The files of a COCO export (CVAT's layout).

    Without ``splits``: ``images/<stem><ext>`` and ``annotations/instances_default.json``.
    With ``splits`` (split -> stems): ``images/<split>/...`` and one
    ``annotations/instances_<split>.json`` per split.
    """
    groups = {"default": records} if splits is None else _by_split(records, splits)
    for split, members in groups.items():
        folder = "images/" if splits is None else f"images/{split}/"
        names = [f"{r.stem}{r.image_path.suffix.lower()}" for r in members]
        for record, name in zip(members, names, strict=True):
            yield folder + name, record.image_path
        document = coco_json(members, class_names, names)
        yield f"annotations/instances_{split}.json", json.dumps(document).encode()


def _by_split(
    records: Sequence[Record], splits: Mapping[str, Sequence[str]]
) -> dict[str, list[Record]]:
    by_stem = {record.stem: record for record in records}
    return {split: [by_stem[s] for s in stems if s in by_stem] for split, stems in splits.items()}
