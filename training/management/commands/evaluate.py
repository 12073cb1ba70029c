"""`manage.py evaluate --model-version ID --split test [--dataset NAME] [--json]`.

Without ``--dataset`` the detector is evaluated on the dataset it was trained on (the one its
model version records); ``training.services.evaluate_detector_version`` does the work.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.services import (
    EVALUATION_SPLITS,
    TrainingError,
    dataset_named,
    detector_version,
    evaluate_detector_version,
)


class Command(BaseCommand):
    help = "Evaluate a detector model version on a split of a dataset."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model-version", type=int, required=True)
        parser.add_argument("--split", default="test", choices=EVALUATION_SPLITS)
        parser.add_argument("--dataset", help="Default: the dataset the model was trained on.")
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            version = detector_version(options["model_version"])
            dataset = dataset_named(options["dataset"]) if options["dataset"] else None
            if dataset is None and version.dataset is None:
                raise TrainingError(
                    f"Model version {version.pk} ({version.name}) records no dataset it was "
                    "trained on: name one with --dataset NAME."
                )
            result = evaluate_detector_version(version, options["split"], dataset)
        except TrainingError as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        for key, value in result.items():
            self.stdout.write(f"{key}: {value}")
