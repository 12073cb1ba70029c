"""`manage.py import_dataset PATH --format coco|yolo|voc|folders --name NAME [--source SOURCE]`.

``PATH`` is a folder or a ``.zip`` of one (unpacked safely into a temporary folder).
``--format folders`` reads ``PATH/<person>/<image>`` (one subject per folder) into a faces
dataset; ``--class-map old=new,...`` renames or merges classes (``--single-class face``
maps every class to one). The folder's own train/val/test split is kept when it has one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.images.models import Task, slug_validator
from webapp.labeling.importers import IMPORT_FORMATS, ImportFailed, import_path

FORMATS = IMPORT_FORMATS


def parse_class_map(text: str) -> dict[str, str]:
    """``"a=face,b=face"`` -> ``{"a": "face", "b": "face"}``; names are stripped."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        old, sep, new = item.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise CommandError(f"--class-map: expected old=new, got {item!r}")
        mapping[old.strip()] = new.strip()
    return mapping


class Command(BaseCommand):
    help = "Import a labelled dataset folder or zip; skipped boxes and images are listed by file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="A folder, or a .zip of one.")
        parser.add_argument("--format", choices=FORMATS, default="voc")
        parser.add_argument("--name", required=True, help="Dataset name (created if new).")
        parser.add_argument(
            "--source", default="web", help="Where these images come from, e.g. web or app."
        )
        parser.add_argument("--task", choices=[t.value for t in Task], default=Task.DETECTION)
        classes = parser.add_mutually_exclusive_group()
        classes.add_argument("--class-map", default="", help="Rename/merge classes: old=new,...")
        classes.add_argument("--single-class", default="", help="Merge every class into this one.")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        if not path.is_dir() and not (path.is_file() and path.suffix.lower() == ".zip"):
            raise CommandError(f"{path} is not a folder or a .zip file.")
        try:
            slug_validator(options["source"])
        except Exception as exc:
            raise CommandError(f"--source: {exc}") from None

        def progress(done: int, total: int) -> None:
            if done == total or done % 50 == 0:
                self.stderr.write(f"  {done}/{total} images")

        try:
            report = import_path(
                path,
                options["format"],
                name=options["name"],
                source=options["source"],
                task=options["task"],
                on_progress=progress,
                class_map=parse_class_map(options["class_map"]) or None,
                single_class=options["single_class"],
            )
        except (ImportFailed, ValueError) as exc:
            raise CommandError(str(exc)) from None
        for warning in report.warnings:
            self.stderr.write(f"warning: {warning}")
        splits = ", ".join(f"{k} {v}" for k, v in sorted(report.splits.items()))
        self.stdout.write(
            f"Dataset “{report.dataset.name}” (id {report.dataset.pk}): "
            f"{report.images_added} images and {report.boxes_added} boxes added, "
            f"{report.images_existing} images already there, {len(report.warnings)} warnings. "
            f"Splits from {report.split_source}: {splits or 'none'}."
        )
