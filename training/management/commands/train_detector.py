"""`manage.py train_detector --dataset NAME [--epochs N | --minutes M] [--img-size S]`.

Trains our YOLO detector from scratch on the dataset's train split, early-stopping on its
validation split, evaluates on its test split, and registers a model version
(``training.services.train_detector_version``). The last line printed is
`model_version=<id>`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference.runtime import pick_device
from training.detection import DEFAULT_AUGMENT_CONFIG, DEFAULT_DETECTOR_CONFIG, DEFAULT_FIT_CONFIG
from training.fit import epoch_printer
from training.models import ModelKind
from training.options import add_fit_arguments, command_line, fit_config_from_args, parse_ints
from training.services import (
    DetectorTraining,
    Registration,
    TrainingError,
    dataset_named,
    train_detector_version,
)

# Recorded in the version's command, in this order, when given.
FLAGS = (
    "kind",
    "epochs",
    "minutes",
    "img_size",
    "strides",
    "batch_size",
    "lr",
    "grayscale",
    "seed",
    "device",
)


class Command(BaseCommand):
    help = "Train the object detector on a dataset and register the result as a model version."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True)
        add_fit_arguments(
            parser,
            DEFAULT_FIT_CONFIG,
            ("epochs", "minutes", "batch_size", "lr"),
            exclusive_budget=True,
        )
        parser.add_argument("--img-size", type=int, default=DEFAULT_DETECTOR_CONFIG.img_size)
        parser.add_argument(
            "--strides",
            default=",".join(str(v) for v in DEFAULT_DETECTOR_CONFIG.strides),
            help="Output scales in pixels per grid cell, from 32,16,8 (add 8 for small objects).",
        )
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
        try:
            training = _training(options)
            dataset = dataset_named(options["dataset"])
            version = train_detector_version(
                dataset,
                training,
                _registration(options, training),
                device=pick_device(options["device"]),
                on_progress=epoch_printer(self.stderr.write),
                log=self.stdout.write,
            )
        except TrainingError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"model_version={version.pk}")


def _training(options: dict[str, Any]) -> DetectorTraining:
    try:
        model_config = dataclasses.replace(
            DEFAULT_DETECTOR_CONFIG,
            img_size=options["img_size"],
            strides=parse_ints(options["strides"]),
            priors=None,
        )
    except ValueError as exc:
        raise TrainingError(f"--strides/--img-size: {exc}") from None
    try:
        fit_config = fit_config_from_args(DEFAULT_FIT_CONFIG, options, epochs_drop_clock=True)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    return DetectorTraining(
        model_config=model_config,
        fit_config=fit_config,
        augment_config=dataclasses.replace(
            DEFAULT_AUGMENT_CONFIG, grayscale_p=options["grayscale"]
        ),
        kind=options["kind"],
        seed=options["seed"],
    )


def _registration(options: dict[str, Any], training: DetectorTraining) -> Registration:
    # The resolved rate and batch size are recorded, so the line reproduces the run even
    # after the defaults change; the default kind is left out.
    recorded = {
        **options,
        "kind": None if options["kind"] == ModelKind.DETECTOR else options["kind"],
        "lr": training.fit_config.learning_rate,
        "batch_size": training.fit_config.batch_size,
    }
    return Registration(
        name=options["name"],
        activate=options["activate"],
        command=command_line("train_detector", recorded, FLAGS),
    )
