"""`manage.py import_dataset PATH --format voc --name NAME [--source web|app]`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.images.importers import import_voc
from webapp.images.models import Task, slug_validator

FORMATS = {"voc": import_voc}


class Command(BaseCommand):
    help = "Import a labelled dataset folder; skipped boxes and images are listed by file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path")
        parser.add_argument("--format", choices=sorted(FORMATS), default="voc")
        parser.add_argument("--name", required=True, help="Dataset name (created if new).")
        parser.add_argument(
            "--source", default="web", help="Where these images come from, e.g. web or app."
        )
        parser.add_argument("--task", choices=[t.value for t in Task], default=Task.DETECTION)

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

        report = FORMATS[options["format"]](
            root,
            name=options["name"],
            source=options["source"],
            task=options["task"],
            on_progress=progress,
        )
        for warning in report.warnings:
            self.stderr.write(f"warning: {warning}")
        splits = ", ".join(f"{k} {v}" for k, v in sorted(report.splits.items()))
        self.stdout.write(
            f"Dataset “{report.dataset.name}” (id {report.dataset.pk}): "
            f"{report.images_added} images and {report.boxes_added} boxes added, "
            f"{report.images_existing} images already there, {len(report.warnings)} warnings. "
            f"Splits from {report.split_source}: {splits or 'none'}."
        )
