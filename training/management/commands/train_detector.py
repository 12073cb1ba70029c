"""`manage.py train_detector --dataset NAME [--epochs N | --minutes M] [--img-size S]`.

Trains our YOLO detector from scratch on the dataset's train split, early-stopping on its
validation split, evaluates on its test split, and registers a model version. The last
line printed is `model_version=<id>`.
"""

from __future__ import annotations

import dataclasses
import shlex
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference.runtime import pick_device
from inference.yolo import save_detector
from training.detection import (
    DEFAULT_AUGMENT_CONFIG,
    DEFAULT_DETECTOR_CONFIG,
    DEFAULT_FIT_CONFIG,
    evaluate_detector,
    train_detector,
)
from training.fit import epoch_printer, format_seconds
from training.models import ModelKind, ModelVersion
from training.samples import class_names_of, split_samples
from webapp.images.models import Dataset


def _command_line(options: dict[str, Any]) -> str:
    """The command that reproduces this run, rebuilt from the parsed options."""
    words = ["python", "manage.py", "train_detector", "--dataset", options["dataset"]]
    if options.get("kind") not in (None, ModelKind.DETECTOR):
        words += ["--kind", options["kind"]]
    for flag in (
        "epochs",
        "minutes",
        "img_size",
        "strides",
        "batch_size",
        "lr",
        "grayscale",
        "seed",
        "device",
    ):
        if options.get(flag) is not None:
            words += [f"--{flag.replace('_', '-')}", str(options[flag])]
    return shlex.join(words)


class Command(BaseCommand):
    help = "Train the object detector on a dataset and register the result as a model version."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True)
        budget = parser.add_mutually_exclusive_group()
        budget.add_argument("--epochs", type=int, help="Maximum number of epochs.")
        budget.add_argument("--minutes", type=float, help="Wall-clock budget in minutes.")
        parser.add_argument("--img-size", type=int, default=DEFAULT_DETECTOR_CONFIG.img_size)
        parser.add_argument(
            "--strides",
            default=",".join(str(v) for v in DEFAULT_DETECTOR_CONFIG.strides),
            help="Output scales in pixels per grid cell, from 32,16,8 (add 8 for small objects).",
        )
        parser.add_argument("--batch-size", type=int, default=DEFAULT_FIT_CONFIG.batch_size)
        parser.add_argument("--lr", type=float, default=DEFAULT_FIT_CONFIG.learning_rate)
        parser.add_argument(
            "--grayscale",
            type=float,
            default=DEFAULT_AUGMENT_CONFIG.grayscale_p,
            help="Probability of training on a grey copy of an image (so grey photos work).",
        )
        parser.add_argument(
            "--kind",
            choices=[ModelKind.DETECTOR, ModelKind.FACE_DETECTOR],
            default=ModelKind.DETECTOR,
            help="Register as the object detector or as the face detector.",
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--name", default="")
        parser.add_argument(
            "--activate",
            action="store_true",
            help="Serve the new version (the first detector is always served).",
        )
        parser.add_argument("--device", default=None, help="cpu or cuda (default: auto)")

    def handle(self, *args: Any, **options: Any) -> None:
        dataset = Dataset.objects.filter(name=options["dataset"]).first()
        if dataset is None:
            raise CommandError(f"No dataset named {options['dataset']!r}.")
        class_names = class_names_of(dataset)
        splits = split_samples(dataset, class_names)
        for split in ("train", "val"):
            if not splits.get(split):
                raise CommandError(f"Dataset {dataset.name!r} has no {split} images.")
        fit_config = dataclasses.replace(
            DEFAULT_FIT_CONFIG,
            batch_size=options["batch_size"],
            learning_rate=options["lr"],
            max_epochs=options["epochs"] or DEFAULT_FIT_CONFIG.max_epochs,
            max_minutes=options["minutes"]
            if options["minutes"]
            else (None if options["epochs"] else DEFAULT_FIT_CONFIG.max_minutes),
        )
        try:
            strides = tuple(int(v) for v in options["strides"].split(","))
            model_config = dataclasses.replace(
                DEFAULT_DETECTOR_CONFIG, img_size=options["img_size"], strides=strides, priors=None
            )
        except ValueError as exc:
            raise CommandError(f"--strides/--img-size: {exc}") from None
        device = pick_device(options["device"])
        self.stdout.write(
            f"Training on {len(splits['train'])} images, validating on {len(splits['val'])}, "
            f"classes {class_names}, device {device}, budget "
            f"{fit_config.max_epochs} epochs / {fit_config.max_minutes or '∞'} minutes."
        )
        try:
            result = train_detector(
                splits["train"],
                splits["val"],
                class_names,
                model_config=model_config,
                fit_config=fit_config,
                augment_config=dataclasses.replace(
                    DEFAULT_AUGMENT_CONFIG, grayscale_p=options["grayscale"]
                ),
                on_progress=epoch_printer(self.stderr.write),
                seed=options["seed"],
                device=device,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        metrics = {"val": result.metrics.to_dict()}
        if splits.get("test"):
            metrics["test"] = evaluate_detector(
                result.model, splits["test"], model_config.img_size
            ).to_dict()
        version = self._register(dataset, result, metrics, options)
        for split, values in metrics.items():
            self.stdout.write(
                f"{split}: mAP@0.5 {values['map50']:.3f}  mAP@[.5:.95] {values['map50_95']:.3f}"
            )
        self.stdout.write(
            f"Stopped: {result.stopped_reason} after {len(result.history)} epochs, "
            f"{format_seconds(result.elapsed_seconds)}."
        )
        self.stdout.write(f"model_version={version.pk}")

    def _register(
        self, dataset: Dataset, result: Any, metrics: dict[str, Any], options: dict[str, Any]
    ) -> ModelVersion:
        return ModelVersion.register(
            options["kind"],
            lambda path: save_detector(path, result.model),
            activate=options["activate"],
            name=options["name"] or f"{dataset.name} {ModelKind(options['kind']).label.lower()}",
            config=result.model_config.to_dict(),
            class_names=list(result.model_config.class_names),
            metrics=metrics,
            dataset=dataset,
            command=_command_line(options),
            training_seconds=result.elapsed_seconds,
        )
