"""`manage.py evaluate --model-version ID --split test [--dataset NAME] [--json]`."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference.runtime import CheckpointError, pick_device
from inference.yolo import load_detector
from training.detection import evaluate_detector
from training.models import ModelKind, ModelVersion
from training.samples import split_samples
from webapp.images.models import Dataset


class Command(BaseCommand):
    help = "Evaluate a detector model version on a split of a dataset."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model-version", type=int, required=True)
        parser.add_argument(
            "--split", default="test", choices=["train", "train_val", "val", "test"]
        )
        parser.add_argument("--dataset", help="Default: the dataset the model was trained on.")
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args: Any, **options: Any) -> None:
        version = ModelVersion.objects.filter(
            pk=options["model_version"], kind=ModelKind.DETECTOR
        ).first()
        if version is None:
            raise CommandError(f"No detector model version {options['model_version']}.")
        dataset = (
            Dataset.objects.filter(name=options["dataset"]).first()
            if options["dataset"]
            else version.dataset
        )
        if dataset is None:
            raise CommandError("Name a dataset with --dataset (the model's own is unknown).")
        samples = split_samples(dataset, list(version.class_names)).get(options["split"], [])
        if not samples:
            raise CommandError(f"Dataset {dataset.name!r} has no {options['split']} images.")
        try:
            model = load_detector(
                version.path,
                device=pick_device(),
                expected_sha256=version.sha256,
            )
        except CheckpointError as exc:
            raise CommandError(str(exc)) from None
        metrics = evaluate_detector(model, samples, model.config.img_size)
        names = list(version.class_names)
        result = {
            "model_version": version.pk,
            "dataset": dataset.name,
            "split": options["split"],
            "images": len(samples),
            "map50": metrics.map50,
            "map50_95": metrics.map50_95,
            "per_class_ap50": {names[int(k)]: v for k, v in metrics.per_class_ap50.items()},
            "per_class_ap50_95": {names[int(k)]: v for k, v in metrics.per_class_ap50_95.items()},
            "precision": metrics.precision,
            "recall": metrics.recall,
            "f1": metrics.f1,
            "score_threshold": metrics.score_threshold,
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        for key, value in result.items():
            self.stdout.write(f"{key}: {value}")
