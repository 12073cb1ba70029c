"""Import identity-labelled faces: ``root/<person>/<image>``, one subject per folder.

This is the layout of ORL / AT&T (``faces/sN/K.pgm``) and of most face collections people
keep. Each image goes through the same validation as an upload and becomes a whole-image
``Face`` of its person's ``Subject``. The split is by **person** (deterministic 60/20/20 over
the folder names): a verifier is validated and tested on people it never trained on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from django.db import transaction

from training.formats.folders import load_identity_folder
from training.splits import SPLIT_SCHEME, deterministic_split
from webapp.faces.models import Face, FaceLabel, FaceOrigin, Subject
from webapp.images.ingest import DuplicateImage, ImageRejected, ingest_image
from webapp.images.models import Dataset, ImageStatus, SplitAssignment, Task
from webapp.labeling.importers import ImportReport


def import_identity_folders(
    root: Path,
    *,
    name: str,
    source: str = "web",
    on_progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import ``root/<person>/<image>`` into the faces dataset ``name`` (task "faces").

    Re-importing the same folder adds nothing (images are deduplicated by content) and
    repairs a missing face row.
    """
    samples = load_identity_folder(root)
    if not samples:
        raise ValueError(f"{root} has no <person>/<image> files")
    dataset, _ = Dataset.objects.get_or_create(name=name, defaults={"task": Task.FACES})
    if dataset.task != Task.FACES:
        raise ValueError(f"dataset {name!r} exists and is a {dataset.task} dataset, not faces")
    report = ImportReport(dataset=dataset)
    people = sorted({s.identity for s in samples})
    split_of = {p: k for k, members in deterministic_split(people).items() for p in members}
    report.split_source = "a deterministic 60/20/20 split by person"
    subjects = {p: Subject.objects.get_or_create(dataset=dataset, name=p)[0] for p in people}
    for done, sample in enumerate(samples, start=1):
        subject, split = subjects[sample.identity], split_of[sample.identity]
        _import_face(sample.image_path, dataset, subject, split, source, report)
        if on_progress:
            on_progress(done, len(samples))
    return report


def _import_face(
    path: Path, dataset: Dataset, subject: Subject, split: str, source: str, report: ImportReport
) -> None:
    try:
        data = path.read_bytes()
        with transaction.atomic():
            try:
                image = ingest_image(
                    data, dataset=dataset, user=None, original_name=path.name, source=source
                )
                report.images_added += 1
            except DuplicateImage as dup:
                image = dup.existing
                report.images_existing += 1
            if not image.faces.filter(subject=subject).exists():
                Face.objects.create(
                    image=image,
                    subject=subject,
                    origin=FaceOrigin.HUMAN,
                    score=1.0,
                    label=FaceLabel.PERSON,
                )
                report.boxes_added += 1
            _, created = SplitAssignment.objects.get_or_create(
                image=image, scheme=SPLIT_SCHEME, defaults={"split": split}
            )
            if created:
                report.splits[split] = report.splits.get(split, 0) + 1
            if image.status == ImageStatus.NEW:
                image.status = ImageStatus.LABELED
                image.save(update_fields=["status"])
    except (ImageRejected, OSError) as exc:
        message = exc.message if isinstance(exc, ImageRejected) else str(exc)
        code = exc.code if isinstance(exc, ImageRejected) else "unreadable_image"
        report.warn(f"{path.parent.name}/{path.name}", code, f"image skipped: {message}")
