"""Import a labelled dataset from a folder (Pascal VOC today; COCO and YOLO come later).

Parsing is the pure `training.formats` readers; this module turns their records into rows:
a Dataset with its classes, Images (through the same validation as uploads), human Boxes
and a persisted split. Every skipped box or image is reported with its file name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction

from training.formats.voc import VocRecord, read_voc, rename_classes
from training.splits import SPLIT_SCHEME, deterministic_split
from webapp.images.ingest import DuplicateImage, ImageRejected, ingest_image
from webapp.images.models import (
    Box,
    BoxOrigin,
    Dataset,
    ImageStatus,
    LabelClass,
    SplitAssignment,
    Task,
)
from webapp.labeling.classes import ensure_classes


@dataclass
class ImportReport:
    dataset: Dataset
    images_added: int = 0
    images_existing: int = 0
    boxes_added: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    split_source: str = ""
    warnings: list[str] = field(default_factory=list)


def import_voc(
    root: Path,
    *,
    name: str,
    source: str = "web",
    task: str = Task.DETECTION,
    on_progress: Callable[[int, int], None] | None = None,
    class_map: Mapping[str, str] | None = None,
) -> ImportReport:
    """Import a Pascal VOC folder; ``class_map`` renames (and so may merge) classes."""
    parsed = read_voc(root)
    if class_map:
        parsed = rename_classes(parsed, class_map)
    dataset, _ = Dataset.objects.get_or_create(name=name, defaults={"task": task})
    report = ImportReport(dataset=dataset)
    report.warnings += [f"{w.file}: {w.reason}" for w in parsed.warnings]
    classes = ensure_classes(dataset, parsed.class_names)
    stems = [record.stem for record in parsed.records]
    if parsed.splits:
        split_of = {s: split for split, members in parsed.splits.items() for s in members}
        report.split_source = "the folder's ImageSets/Main"
    else:
        split_of = {s: k for k, members in deterministic_split(stems).items() for s in members}
        report.split_source = "a deterministic 60/20/20 split"
    for done, record in enumerate(parsed.records, start=1):
        _import_record(record, dataset, classes, split_of.get(record.stem), source, report)
        if on_progress:
            on_progress(done, len(parsed.records))
    return report


def _import_record(
    record: VocRecord,
    dataset: Dataset,
    classes: dict[str, LabelClass],
    split: str | None,
    source: str,
    report: ImportReport,
) -> None:
    try:
        data = Path(record.image_path).read_bytes()
        with transaction.atomic():
            image = ingest_image(
                data,
                dataset=dataset,
                user=None,
                original_name=Path(record.image_path).name,
                source=source,
            )
            if (image.width, image.height) != (record.width, record.height):
                report.warnings.append(
                    f"{record.stem}: stored as {image.width}×{image.height} after EXIF "
                    f"rotation, annotations are {record.width}×{record.height}; boxes skipped"
                )
            else:
                Box.objects.bulk_create(
                    [
                        Box(
                            image=image,
                            label_class=classes[cls],
                            x1=float(b[0]),
                            y1=float(b[1]),
                            x2=float(b[2]),
                            y2=float(b[3]),
                            origin=BoxOrigin.HUMAN,
                        )
                        for b, cls in zip(record.boxes, record.class_names, strict=True)
                    ]
                )
                report.boxes_added += len(record.boxes)
            if split:
                SplitAssignment.objects.create(image=image, scheme=SPLIT_SCHEME, split=split)
                report.splits[split] = report.splits.get(split, 0) + 1
            if len(record.boxes):
                image.status = ImageStatus.LABELED
                image.save(update_fields=["status"])
        report.images_added += 1
    except DuplicateImage:
        report.images_existing += 1
    except (ImageRejected, OSError) as exc:
        message = exc.message if isinstance(exc, ImageRejected) else str(exc)
        report.warnings.append(f"{Path(record.image_path).name}: image skipped: {message}")
