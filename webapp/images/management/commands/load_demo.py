"""Load the demo dataset shipped in demo/ (idempotent: existing images are kept)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from webapp.images.ingest import DuplicateImage, ImageRejected, ingest_image
from webapp.images.models import Dataset, LabelClass, Task

DEMO_CLASSES = {"RBC": "#e6194b", "WBC": "#3cb44b", "Platelets": "#4363d8"}


class Command(BaseCommand):
    help = "Create the 'BCCD demo' dataset from the images shipped in demo/bccd."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--path", default=str(settings.BASE_DIR / "demo" / "bccd"))

    def handle(self, *args: Any, **options: Any) -> None:
        root = Path(options["path"])
        dataset, _ = Dataset.objects.get_or_create(
            name="BCCD demo",
            defaults={
                "task": Task.DETECTION,
                "description": "Blood-cell microscope photos from BCCD (MIT licence).",
            },
        )
        for name, color in DEMO_CLASSES.items():
            LabelClass.objects.get_or_create(dataset=dataset, name=name, defaults={"color": color})
        added = kept = 0
        for path in sorted((root / "JPEGImages").glob("*.jpg")):
            try:
                ingest_image(
                    path.read_bytes(),
                    dataset=dataset,
                    user=None,
                    original_name=path.name,
                    source="demo",
                )
                added += 1
            except DuplicateImage:
                kept += 1
            except ImageRejected as exc:
                self.stderr.write(f"skipped {path.name}: {exc.message}")
        self.stdout.write(
            f"Demo dataset “{dataset.name}”: {added} images added, {kept} already there."
        )
