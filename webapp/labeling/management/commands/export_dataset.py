"""`manage.py export_dataset --dataset NAME --format coco|yolo|voc|faces --out FILE.zip [--splits]`.

Writes the dataset's human labels (never model predictions) and its images as a zip;
``--splits`` adds each image's split the format's way (sub-folders, or VOC's ImageSets).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.images.models import Dataset
from webapp.labeling.exporters import EXPORT_FORMATS, ExportFailed, export_dataset


class Command(BaseCommand):
    help = "Export a dataset's labels and images as a COCO, YOLO, VOC or faces-layout zip."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True, help="The dataset's name.")
        parser.add_argument("--format", choices=EXPORT_FORMATS, required=True)
        parser.add_argument("--out", required=True, help="The zip file to write.")
        parser.add_argument(
            "--splits", action="store_true", help="Keep the splits (sub-folders or ImageSets)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dataset = Dataset.objects.filter(name=options["dataset"]).first()
        if dataset is None:
            raise CommandError(f"No dataset named {options['dataset']!r}.")
        out = Path(options["out"])
        if out.suffix.lower() != ".zip":
            raise CommandError("--out must name a .zip file.")
        if not out.parent.is_dir():
            raise CommandError(f"{out.parent} is not a folder.")
        partial = out.with_name(out.name + ".part")
        try:
            summary = export_dataset(dataset, options["format"], partial, splits=options["splits"])
        except ExportFailed as exc:
            partial.unlink(missing_ok=True)
            raise CommandError(str(exc)) from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(out)  # a reader of --out never sees half a zip
        for name in summary.missing:
            self.stderr.write(f"warning: {name}: its file is gone from storage; left out")
        with_splits = ", with splits" if options["splits"] else ""
        self.stdout.write(
            f"Wrote {out}: {summary.images} images, {summary.boxes} boxes, "
            f"{summary.classes} classes ({summary.format}{with_splits})."
        )
