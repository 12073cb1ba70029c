"""`manage.py import_dataset PATH --format voc|folders --name NAME [--source web|app]`.

``--format folders`` reads ``PATH/<person>/<image>`` (one subject per folder) into a faces
dataset; ``--class-map old=new,...`` renames or merges VOC classes (``--single-class face``
maps every class to one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.formats.voc import read_voc
from webapp.faces.importers import import_identity_folders
from webapp.images.importers import import_voc
from webapp.images.models import Task, slug_validator

FORMATS = ("folders", "voc")


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
    help = "Import a labelled dataset folder; skipped boxes and images are listed by file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path")
        parser.add_argument("--format", choices=FORMATS, default="voc")
        parser.add_argument("--name", required=True, help="Dataset name (created if new).")
        parser.add_argument(
            "--source", default="web", help="Where these images come from, e.g. web or app."
        )
        parser.add_argument("--task", choices=[t.value for t in Task], default=Task.DETECTION)
        classes = parser.add_mutually_exclusive_group()
        classes.add_argument(
            "--class-map", default="", help="Rename/merge classes: old=new,old2=new (VOC)."
        )
        classes.add_argument(
            "--single-class", default="", help="Merge every class into this one (VOC)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        root = Path(options["path"])
        if not root.is_dir():
            raise CommandError(f"{root} is not a folder.")
        try:
            slug_validator(options["source"])
        except Exception as exc:
            raise CommandError(f"--source: {exc}") from None

        def progress(done: int, total: int) -> None:
            if done == total or done % 50 == 0:
                self.stderr.write(f"  {done}/{total} images")

        class_map = parse_class_map(options["class_map"])
        if options["single_class"]:
            class_map = {name: options["single_class"] for name in read_voc(root).class_names}
        common = {"name": options["name"], "source": options["source"], "on_progress": progress}
        try:
            if options["format"] == "folders":
                report = import_identity_folders(root, **common)
            else:
                report = import_voc(
                    root, task=options["task"], class_map=class_map or None, **common
                )
        except ValueError as exc:
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
