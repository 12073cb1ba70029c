"""`manage.py evaluate --model-version ID --split test [--dataset NAME] [--json]`.

Without ``--dataset`` the model is evaluated on the dataset it was trained on (the one its
model version records). ``training.services.evaluate_detector_version`` does the work, the
same function as an evaluation job: the evaluation is stored, with one error case per
mistake, and appears on the dataset's evaluations page. Detectors and verifiers alike.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.models import ModelKind, ModelVersion
from training.services import (
    EVALUATION_SPLITS,
    TrainingError,
    dataset_named,
    evaluate_detector_version,
)

EVALUATED_KINDS = (ModelKind.DETECTOR, ModelKind.FACE_DETECTOR, ModelKind.VERIFIER)
# Long lists and matrices: in --json, summarised in the plain output.
BULKY = ("pr_curves", "roc", "calibration", "confusion_matrix", "class_names")


def _version(pk: int) -> ModelVersion:
    version = ModelVersion.objects.filter(pk=pk, kind__in=EVALUATED_KINDS).first()
    if version is None:
        raise TrainingError(f"No detector or verifier model version {pk}.")
    return version


class Command(BaseCommand):
    help = "Evaluate a detector or verifier model version on a split of a dataset."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model-version", type=int, required=True)
        parser.add_argument("--split", default="test", choices=EVALUATION_SPLITS)
        parser.add_argument("--dataset", help="Default: the dataset the model was trained on.")
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            version = _version(options["model_version"])
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
            if key not in BULKY:
                self.stdout.write(f"{key}: {value}")
        matrix = result.get("confusion_matrix")
        if isinstance(matrix, dict):
            self._confusion(matrix)

    def _confusion(self, matrix: dict[str, Any]) -> None:
        """The confusion matrix as a small table: rows true class, columns predicted."""
        labels = [str(label) for label in matrix["labels"]]
        width = max(len(label) for label in [*labels, "true \\ predicted"]) + 2
        self.stdout.write("confusion matrix (rows: true class, columns: predicted class):")
        self.stdout.write(
            "true \\ predicted".ljust(width) + "".join(x.rjust(width) for x in labels)
        )
        for label, row in zip(labels, matrix["matrix"], strict=True):
            self.stdout.write(label.ljust(width) + "".join(str(n).rjust(width) for n in row))
