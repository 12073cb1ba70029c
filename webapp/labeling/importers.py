"""Import a labelled dataset (COCO, YOLO, Pascal VOC, identity folders) into rows.

Parsing is the pure ``training.formats`` readers; this module turns any reader's
:class:`~training.formats.records.RecordSet` into rows: the Dataset (created if new) with its
classes (:func:`~webapp.labeling.classes.ensure_classes`, one colour per class name), Images
through the same validation as uploads, human Boxes, a persisted split and one
:class:`~webapp.images.models.LabelChange` ("import") per image whose labels it set.

Nothing is dropped silently: every skipped or repaired item is in the report with its file
name and reason. The same image bytes twice (two names, or two splits) become one image with
every box of both (exact duplicates dropped, and counted); an image already in the dataset
before this import keeps its boxes (people may have corrected them since) and the report
says when the file's boxes differ.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from training.formats import READERS, FormatWarning, Record, RecordSet, rename_classes
from training.formats.archive import ArchiveLimits, UnsafeArchive, dataset_root, extract_zip
from training.splits import SPLIT_SCHEME, deterministic_split
from webapp.accounts.models import User
from webapp.env import env_int
from webapp.images.ingest import DuplicateImage, ImageRejected, ingest_image
from webapp.images.models import (
    Box,
    BoxOrigin,
    Dataset,
    Image,
    ImageStatus,
    LabelChange,
    LabelClass,
    SplitAssignment,
    Task,
)
from webapp.labeling.classes import ensure_classes

IMPORT_FORMATS = ("coco", "yolo", "voc", "folders")
# Defaults of the settings an installation may override (IMPORT_MAX_BYTES and friends).
DEFAULT_MAX_BYTES = 2 * 1024**3
DEFAULT_MAX_ENTRIES = 100_000
DEFAULT_MAX_UNPACKED_BYTES = 8 * 1024**3
# A job's result keeps this many warnings (all of them are counted, by code).
MAX_RESULT_WARNINGS = 1000
MAX_CLASS_NAME = 100  # LabelClass.name

Progress = Callable[[int, int], None]
BoxKey = tuple[str, float, float, float, float]


class ImportFailed(ValueError):
    """The whole import was refused (bad archive, wrong dataset kind, bad class names)."""


def _limit(name: str, default: int) -> int:
    """A size limit: the Django setting ``name`` if there is one, else the environment
    variable ``name`` (checked, loud on a bad value), else ``default``."""
    value = getattr(settings, name, None)
    return int(value) if value is not None else env_int(name, default, minimum=1)


def import_max_bytes() -> int:
    """The largest upload accepted for import (``IMPORT_MAX_BYTES``, 2 GB)."""
    return _limit("IMPORT_MAX_BYTES", DEFAULT_MAX_BYTES)


def archive_limits() -> ArchiveLimits:
    """What one uploaded zip may unpack to: ``IMPORT_MAX_ENTRIES`` entries and
    ``IMPORT_MAX_UNPACKED_BYTES`` bytes (100,000 and 8 GB)."""
    return ArchiveLimits(
        max_entries=_limit("IMPORT_MAX_ENTRIES", DEFAULT_MAX_ENTRIES),
        max_total_bytes=_limit("IMPORT_MAX_UNPACKED_BYTES", DEFAULT_MAX_UNPACKED_BYTES),
    )


@dataclass
class ImportReport:
    """What an import did: counts per split, and every problem with its file and reason."""

    dataset: Dataset
    images_added: int = 0
    images_existing: int = 0
    boxes_added: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    split_source: str = ""
    problems: list[FormatWarning] = field(default_factory=list)
    format: str = ""

    @property
    def warnings(self) -> list[str]:
        """The problems as ``"file: reason"`` lines (commands print these)."""
        return [str(problem) for problem in self.problems]

    def warn(self, file: str, code: str, reason: str) -> None:
        self.problems.append(FormatWarning(file, code, reason))

    def count_split(self, split: str) -> None:
        self.splits[split] = self.splits.get(split, 0) + 1

    def as_result(self) -> dict[str, Any]:
        """The job's result: JSON, file names relative to the imported folder."""
        return {
            "dataset": {"id": self.dataset.pk, "name": self.dataset.name},
            "format": self.format,
            "images_added": self.images_added,
            "images_existing": self.images_existing,
            "boxes_added": self.boxes_added,
            "splits": dict(sorted(self.splits.items())),
            "split_source": self.split_source,
            "warnings": [p.as_dict() for p in self.problems[:MAX_RESULT_WARNINGS]],
            "warnings_total": len(self.problems),
            "warnings_by_code": dict(Counter(p.code for p in self.problems).most_common()),
        }


@dataclass
class _Seen:
    """An image this import has met: where it came from, and whether it was already there."""

    image: Image
    file: str
    split: str | None
    preexisting: bool


def _box_keys(names: Sequence[str], boxes: Any) -> list[BoxKey]:
    """Boxes as comparable keys: class and coordinates to a hundredth of a pixel."""
    keys: list[BoxKey] = []
    for name, box in zip(names, boxes, strict=True):
        x1, y1, x2, y2 = (round(float(v), 2) for v in box)
        keys.append((name, x1, y1, x2, y2))
    return keys


def _stored_keys(image: Image) -> list[BoxKey]:
    rows = image.boxes.filter(origin=BoxOrigin.HUMAN).select_related("label_class")
    return _box_keys([b.label_class.name for b in rows], [b.xyxy for b in rows])


class _Importer:
    """Turns records into rows for one dataset; holds the report and what it has seen."""

    def __init__(
        self, data: RecordSet, dataset: Dataset, source: str, user: User | None, fmt: str
    ) -> None:
        self.data, self.dataset, self.source, self.user = data, dataset, source, user
        self.report = ImportReport(dataset=dataset, format=fmt)
        self.classes: dict[str, LabelClass] = {}
        self.seen: dict[str, _Seen] = {}

    def file_name(self, record: Record) -> str:
        try:
            return record.image_path.relative_to(self.data.root).as_posix()
        except ValueError:
            return record.image_path.name

    def scrub(self, text: str) -> str:
        """Never show the server's folder in a message (PIL errors name the full path)."""
        return text.replace(f"{self.data.root}/", "").replace(str(self.data.root), "")

    def add(self, record: Record, split: str | None) -> None:
        file = self.file_name(record)
        try:
            data = record.image_path.read_bytes()
        except OSError as error:
            self.report.warn(file, "unreadable_image", f"image skipped: {self.scrub(str(error))}")
            return
        digest = hashlib.sha256(data).hexdigest()
        if digest in self.seen:
            self.merge(self.seen[digest], record, file, split)
            return
        try:
            with transaction.atomic():
                image = ingest_image(
                    data,
                    dataset=self.dataset,
                    user=self.user,
                    original_name=record.image_path.name,
                    source=self.source,
                )
                self.label_new(image, record, file, split)
        except DuplicateImage as dup:
            self.seen[digest] = _Seen(dup.existing, file, split, preexisting=True)
            self.already_there(dup.existing, record, file, split)
            return
        except ImageRejected as rejected:
            self.report.warn(file, rejected.code, f"image skipped: {rejected.message}")
            return
        self.report.images_added += 1
        self.seen[digest] = _Seen(image, file, split, preexisting=False)

    def label_new(self, image: Image, record: Record, file: str, split: str | None) -> None:
        """Boxes, split and status of an image this import just stored."""
        if (image.width, image.height) != (record.width, record.height):
            self.report.warn(
                file,
                "size_mismatch",
                f"stored as {image.width}×{image.height} after EXIF rotation, annotations "
                f"are {record.width}×{record.height}; its {len(record.boxes)} box(es) skipped",
            )
        else:
            self.write_boxes(image, record.class_names, record.boxes)
        if split:
            SplitAssignment.objects.create(image=image, scheme=SPLIT_SCHEME, split=split)
            self.report.count_split(split)

    def write_boxes(self, image: Image, names: Sequence[str], boxes: Any) -> None:
        """Create human boxes; label the image and record the change when there are any."""
        rows = [
            Box(
                image=image,
                label_class=self.classes[name],
                x1=float(b[0]),
                y1=float(b[1]),
                x2=float(b[2]),
                y2=float(b[3]),
                origin=BoxOrigin.HUMAN,
                created_by=self.user,
            )
            for b, name in zip(boxes, names, strict=True)
        ]
        if not rows:
            return
        before = _snapshot(image)
        Box.objects.bulk_create(rows)
        self.report.boxes_added += len(rows)
        Image.objects.filter(pk=image.pk).update(
            labels_version=F("labels_version") + 1,
            status=ImageStatus.LABELED,
            labeled_by=self.user,
            labeled_at=timezone.now(),
        )
        image.refresh_from_db(fields=["labels_version", "status", "labeled_by", "labeled_at"])
        LabelChange.objects.create(
            image=image,
            version=image.labels_version,
            user=self.user,
            action="import",
            before=before,
            after=_snapshot(image),
        )

    def merge(self, seen: _Seen, record: Record, file: str, split: str | None) -> None:
        """The same bytes again: one image keeps every box, each drop is counted and said."""
        where = f"the same image as {seen.file}"
        if seen.preexisting:
            self.already_there(seen.image, record, file, split)
            return
        if (seen.image.width, seen.image.height) != (record.width, record.height):
            self.report.warn(file, "duplicate_image", f"{where}; its sizes differ: boxes skipped")
            return
        stored = set(_stored_keys(seen.image))
        keys = _box_keys(record.class_names, record.boxes.tolist())
        new = [i for i, key in enumerate(keys) if key not in stored]
        with transaction.atomic():
            self.write_boxes(
                seen.image, [record.class_names[i] for i in new], record.boxes[new].tolist()
            )
        moved = f"; kept in {seen.split} (this file is in {split})" if split != seen.split else ""
        self.report.warn(
            file,
            "duplicate_image",
            f"{where}: kept one image, {len(new)} box(es) merged into it, "
            f"{len(keys) - len(new)} exact duplicate(s) dropped{moved}",
        )

    def already_there(self, image: Image, record: Record, file: str, split: str | None) -> None:
        """An image the dataset had before this import: its boxes stay as people left them."""
        self.report.images_existing += 1
        theirs = Counter(_box_keys(record.class_names, record.boxes.tolist()))
        if theirs != Counter(_stored_keys(image)):
            self.report.warn(
                file,
                "already_imported",
                f"already in the dataset (image {image.pk}) with other boxes; its boxes were "
                f"kept and this file's {len(record.boxes)} box(es) were not imported",
            )
        if split:
            _, created = SplitAssignment.objects.get_or_create(
                image=image, scheme=SPLIT_SCHEME, defaults={"split": split}
            )
            if created:
                self.report.count_split(split)


def _snapshot(image: Image) -> list[dict[str, Any]]:
    """The image's human boxes as the change history keeps them."""
    rows = image.boxes.filter(origin=BoxOrigin.HUMAN).select_related("label_class").order_by("pk")
    return [{"label": b.label_class.name, "box": [round(v, 2) for v in b.xyxy]} for b in rows]


def _splits(data: RecordSet) -> tuple[dict[str, str], str]:
    """Each record's split and where the split came from.

    The folder's own split when it has one; records it does not name (and every record of
    a folder without one) get the deterministic 60/20/20 split of their stems.
    """
    split_of = data.split_of()
    rest = [r.stem for r in data.records if r.stem not in split_of]
    made = {s: k for k, members in deterministic_split(rest).items() for s in members}
    if not split_of:
        return made, "a deterministic 60/20/20 split"
    source = "the folder's own split"
    if made:
        source += f" ({len(made)} image(s) it does not name: a deterministic 60/20/20 split)"
    return {**split_of, **made}, source


def import_records(
    data: RecordSet,
    dataset: Dataset,
    *,
    source: str = "web",
    user: User | None = None,
    on_progress: Progress | None = None,
    fmt: str = "",
) -> ImportReport:
    """Import what a reader found into ``dataset`` (see the module docstring).

    Raises:
        ImportFailed: a class name is longer than the database keeps.
    """
    too_long = [name for name in data.class_names if len(name) > MAX_CLASS_NAME]
    if too_long:
        raise ImportFailed(f"class names over {MAX_CLASS_NAME} characters: {too_long[:3]}")
    importer = _Importer(data, dataset, source, user, fmt)
    importer.report.problems += [
        FormatWarning(w.file, w.code, importer.scrub(w.reason)) for w in data.warnings
    ]
    importer.classes = ensure_classes(dataset, data.class_names)
    split_of, importer.report.split_source = _splits(data)
    for done, record in enumerate(data.records, start=1):
        importer.add(record, split_of.get(record.stem))
        if on_progress:
            on_progress(done, len(data.records))
    return importer.report


def _dataset(name: str | None, dataset: Dataset | None, task: str) -> Dataset:
    if dataset is not None:
        return dataset
    if not name:
        raise ImportFailed("a dataset name is needed")
    return Dataset.objects.get_or_create(name=name, defaults={"task": task})[0]


def import_folder(
    root: Path,
    fmt: str,
    *,
    name: str | None = None,
    dataset: Dataset | None = None,
    source: str = "web",
    task: str = Task.DETECTION,
    user: User | None = None,
    on_progress: Progress | None = None,
    class_map: Mapping[str, str] | None = None,
    single_class: str = "",
) -> ImportReport:
    """Read the folder ``root`` in ``fmt`` and import it into ``dataset`` (or the one named
    ``name``, created with ``task`` if new). ``class_map`` renames or merges classes;
    ``single_class`` merges every class into that one (e.g. face_mask's into ``face``).

    Raises:
        ImportFailed: an unknown format, a class map naming classes the folder lacks, or
            identity folders for a dataset that is not a faces dataset.
    """
    if fmt == "folders":
        # Imported here, not at the top: the faces importer builds its report from this
        # module's ImportReport.
        from webapp.faces.importers import import_identity_folders

        target = dataset.name if dataset is not None else name
        try:
            report = import_identity_folders(
                root, name=target or "", source=source, on_progress=on_progress
            )
        except ValueError as error:
            raise ImportFailed(str(error)) from None
        report.format = fmt
        return report
    if fmt not in READERS:
        raise ImportFailed(f"unknown format {fmt!r}; use one of {', '.join(IMPORT_FORMATS)}")
    data = READERS[fmt](root)
    if single_class:
        class_map = dict.fromkeys(data.class_names, single_class)
    if class_map:
        try:
            data = rename_classes(data, class_map)
        except ValueError as error:
            raise ImportFailed(str(error)) from None
    target_dataset = _dataset(name, dataset, task)
    return import_records(
        data, target_dataset, source=source, user=user, on_progress=on_progress, fmt=fmt
    )


def import_path(path: Path, fmt: str, **options: Any) -> ImportReport:
    """:func:`import_folder` on a folder, or on a ``.zip`` unpacked (safely, under the
    configured caps) into a temporary folder that is removed afterwards.

    Raises:
        ImportFailed: also for an unsafe or unreadable archive (its reason says which entry).
    """
    if path.is_dir():
        return import_folder(path, fmt, **options)
    with tempfile.TemporaryDirectory(prefix="import-") as tmp:
        try:
            extract_zip(path, Path(tmp), archive_limits())
        except UnsafeArchive as error:
            raise ImportFailed(f"the archive was refused: {error}") from None
        return import_folder(dataset_root(Path(tmp)), fmt, **options)


def import_voc(
    root: Path,
    *,
    name: str,
    source: str = "web",
    task: str = Task.DETECTION,
    on_progress: Progress | None = None,
    class_map: Mapping[str, str] | None = None,
) -> ImportReport:
    """Import a Pascal VOC folder; ``class_map`` renames (and so may merge) classes."""
    return import_folder(
        root,
        "voc",
        name=name,
        source=source,
        task=task,
        on_progress=on_progress,
        class_map=class_map,
    )
