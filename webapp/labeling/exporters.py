"""Export a dataset's labels as a zip: COCO, YOLO (Ultralytics), Pascal VOC, or identity folders.

Only human boxes are labels: model boxes are predictions and never leave in an export. Rows
become the pure writers' records here (``training.formats``), whose files
:func:`training.formats.archive.write_zip` packs under one top folder. Images are written as
stored (the uploaded bytes, or their EXIF-rotated re-encoding: the pixels the boxes are on).

``splits=True`` writes each image's split (scheme :data:`training.splits.SPLIT_SCHEME`) the
format's way: sub-folders for COCO (``images/<split>/`` + ``instances_<split>.json``), YOLO
(``images/<split>/``, ``labels/<split>/``, ``data.yaml`` entries) and faces
(``<split>/<person>/``); ``ImageSets/Main/<split>.txt`` for VOC. Images without a split go
under ``unassigned``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from django.core.files.storage import default_storage
from django.db.models import Prefetch

from training.formats.archive import write_zip
from training.formats.coco import coco_files
from training.formats.folders import FaceSample, identity_files
from training.formats.records import ExportFile, Record, export_stems
from training.formats.voc import voc_files
from training.formats.yolo import yolo_files
from training.splits import SPLIT_SCHEME
from webapp.faces.models import Face, FaceLabel
from webapp.images.models import Box, BoxOrigin, Dataset, Image, SplitAssignment, Task

EXPORT_FORMATS = ("coco", "yolo", "voc", "faces")
UNASSIGNED = "unassigned"
SPLIT_ORDER = ("train", "train_val", "val", "test", UNASSIGNED)


class ExportFailed(ValueError):
    """The export cannot be made as asked (unknown format, faces of a detection dataset)."""


@dataclass(frozen=True)
class ExportSummary:
    """What went into the zip."""

    format: str
    images: int
    boxes: int
    classes: int
    files: int
    missing: tuple[str, ...] = ()  # images whose file is gone from storage (left out)


@dataclass
class _Rows:
    """A dataset's images as records, with their splits and the images left out."""

    records: list[Record]
    images: list[Image]
    class_names: list[str]
    split_of: dict[str, str]
    missing: list[str]


def _image_path(image: Image) -> Path:
    return Path(default_storage.path(image.file.name))


def dataset_rows(dataset: Dataset) -> _Rows:
    """Every image of ``dataset`` with its human boxes (background images included)."""
    class_names = sorted(dataset.classes.values_list("name", flat=True))
    index = {name: i for i, name in enumerate(class_names)}
    human = Box.objects.filter(origin=BoxOrigin.HUMAN).select_related("label_class").order_by("pk")
    images = list(
        dataset.images.order_by("pk").prefetch_related(
            Prefetch("boxes", queryset=human, to_attr="human_boxes")
        )
    )
    splits = dict(
        SplitAssignment.objects.filter(image__dataset=dataset, scheme=SPLIT_SCHEME).values_list(
            "image_id", "split"
        )
    )
    stems = export_stems([image.original_name or f"image-{image.pk}" for image in images])
    rows = _Rows([], [], class_names, {}, [])
    for image, stem in zip(images, stems, strict=True):
        path = _image_path(image)
        if not path.is_file():
            rows.missing.append(image.original_name or f"image {image.pk}")
            continue
        boxes: list[Box] = image.human_boxes
        names = tuple(b.label_class.name for b in boxes)
        rows.records.append(
            Record(
                stem=stem,
                image_path=path,
                width=image.width,
                height=image.height,
                boxes=np.array([b.xyxy for b in boxes], np.float32).reshape(-1, 4),
                class_names=names,
                labels=np.array([index[n] for n in names], np.int64),
            )
        )
        rows.images.append(image)
        rows.split_of[stem] = splits.get(image.pk, UNASSIGNED)
    return rows


def _groups(rows: _Rows) -> dict[str, list[str]]:
    """``{split: stems}`` in the usual order, empty splits left out."""
    groups: dict[str, list[str]] = {}
    for record in rows.records:
        groups.setdefault(rows.split_of[record.stem], []).append(record.stem)
    order = {name: i for i, name in enumerate(SPLIT_ORDER)}
    return dict(sorted(groups.items(), key=lambda kv: (order.get(kv[0], 99), kv[0])))


def _face_files(dataset: Dataset, rows: _Rows, splits: bool) -> Iterator[ExportFile]:
    stem_of = {image.pk: record for image, record in zip(rows.images, rows.records, strict=True)}
    faces = (
        Face.objects.filter(image__dataset=dataset, subject__isnull=False)
        .exclude(label__in=[FaceLabel.UNKNOWN, FaceLabel.NOT_FACE])
        .select_related("subject")
        .order_by("subject__name", "pk")
    )
    items = []
    for face in faces:
        record = stem_of.get(face.image_id)
        if record is None or face.subject is None:
            continue
        box = face.box
        whole = box is None or box == (0.0, 0.0, float(record.width), float(record.height))
        suffix = record.image_path.suffix.lower()
        name = f"{record.stem}{suffix}" if whole else f"{record.stem}-face{face.pk}{suffix}"
        sample = FaceSample(record.image_path, face.subject.name, None if whole else box)
        items.append((sample, name, rows.split_of[record.stem] if splits else None))
    yield from identity_files(items)


def export_files(
    dataset: Dataset, fmt: str, *, splits: bool = False
) -> tuple[Iterator[ExportFile], _Rows]:
    """The files of ``dataset``'s export in ``fmt`` (lazily), and the rows they come from.

    Raises:
        ExportFailed: an unknown format, or ``faces`` for a dataset that is not a faces one.
    """
    if fmt not in EXPORT_FORMATS:
        raise ExportFailed(f"format must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}")
    if fmt == "faces" and dataset.task != Task.FACES:
        raise ExportFailed(
            f"dataset “{dataset.name}” is a {dataset.task} dataset: the faces layout "
            "(one folder per person) is for faces datasets"
        )
    rows = dataset_rows(dataset)
    groups = _groups(rows) if splits else None
    if fmt == "coco":
        files = coco_files(rows.records, rows.class_names, groups)
    elif fmt == "yolo":
        files = yolo_files(rows.records, rows.class_names, groups)
    elif fmt == "voc":
        files = voc_files(rows.records, groups, rows.class_names)
    else:
        files = _face_files(dataset, rows, splits)
    return files, rows


def export_slug(dataset: Dataset) -> str:
    """The dataset's name as a file name (letters, digits, ``-``, ``_``)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", dataset.name).strip("-").lower() or "dataset"


def export_filename(dataset: Dataset, fmt: str) -> str:
    """``<dataset>-<format>.zip``, the name the download and the top folder get."""
    return f"{export_slug(dataset)}-{fmt}.zip"


def export_dataset(
    dataset: Dataset, fmt: str, target: Path | BinaryIO, *, splits: bool = False
) -> ExportSummary:
    """Write ``dataset``'s export in ``fmt`` as a zip to ``target`` (a path or a binary file).

    Everything lies under one top folder, ``<dataset>-<format>/``. When image files are
    gone from storage, they are left out and named in ``export_warnings.txt``.

    Raises:
        ExportFailed: see :func:`export_files`.
    """
    files, rows = export_files(dataset, fmt, splits=splits)
    if rows.missing:
        note = "Images left out, their files are gone from storage:\n"
        note += "".join(f"{name}\n" for name in rows.missing)
        files = _chain(files, ("export_warnings.txt", note.encode()))
    prefix = export_filename(dataset, fmt).removesuffix(".zip") + "/"
    count = write_zip(target, files, prefix=prefix)
    return ExportSummary(
        format=fmt,
        images=len(rows.records),
        boxes=sum(len(r.boxes) for r in rows.records),
        classes=len(rows.class_names),
        files=count,
        missing=tuple(rows.missing),
    )


def _chain(files: Iterator[ExportFile], last: ExportFile) -> Iterator[ExportFile]:
    yield from files
    yield last
