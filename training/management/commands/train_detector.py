"""`manage.py train_detector --dataset NAME [--epochs N | --minutes M] [--img-size S]`.

Trains our YOLO detector from scratch on the dataset's train split, early-stopping on its
validation split, evaluates on its test split, and registers a model version
(``training.services.train_and_register``). The last line printed is `model_version=<id>`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.core.management.base import CommandParser

from training.detection import (
    DEFAULT_AUGMENT_CONFIG,
    DEFAULT_DETECTOR_CONFIG,
    DEFAULT_FIT_CONFIG,
    FACE_AUGMENT_CONFIG,
)
from training.management.training_command import TrainingCommand
from training.models import ModelKind
from training.options import add_fit_arguments, fit_config_from_args, parse_ints
from training.services import DetectorTraining, TrainingError


class Command(TrainingCommand[DetectorTraining]):
    help = "Train the object detector on a dataset and register the result as a model version."
    command_name = "train_detector"
    recorded_flags = (
        "kind",
        "epochs",
        "minutes",
        "img_size",
        "strides",
        "batch_size",
        "lr",
        "grayscale",
        "face_augment",
        "whole_image_faces",
        "seed",
        "device",
    )

    def add_training_arguments(self, parser: CommandParser) -> None:
        fit_options = ("epochs", "minutes", "batch_size", "lr")
        add_fit_arguments(parser, DEFAULT_FIT_CONFIG, fit_options, exclusive_budget=True)
        parser.add_argument("--img-size", type=int, default=DEFAULT_DETECTOR_CONFIG.img_size)
        parser.add_argument(
            "--strides",
            default=",".join(str(v) for v in DEFAULT_DETECTOR_CONFIG.strides),
            help="Output scales in pixels per grid cell, from 32,16,8 (add 8 for small objects).",
        )
        parser.add_argument(
            "--kind",
            choices=[ModelKind.DETECTOR, ModelKind.FACE_DETECTOR],
            default=ModelKind.DETECTOR,
            help="Register as the object detector or as the face detector.",
        )
        parser.add_argument(
            "--grayscale",
            type=float,
            default=None,
            help="Probability of training on a grey copy of an image (so grey photos work); "
            f"default {DEFAULT_AUGMENT_CONFIG.grayscale_p}, with --face-augment "
            f"{FACE_AUGMENT_CONFIG.grayscale_p}.",
        )
        parser.add_argument(
            "--face-augment",
            action="store_true",
            help="Faces for portraits too: zoom onto single faces, strong gamma, contrast and "
            "one-sided shading (--grayscale still sets the grey share).",
        )
        parser.add_argument(
            "--whole-image-faces",
            default="",
            metavar="DATASET",
            help="A faces dataset whose train-split face crops (faces stored as whole images) "
            "are added as training images, each one face filling the image.",
        )

    def training(self, options: dict[str, Any]) -> DetectorTraining:
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
            base = FACE_AUGMENT_CONFIG if options["face_augment"] else DEFAULT_AUGMENT_CONFIG
            grey = base.grayscale_p if options["grayscale"] is None else options["grayscale"]
            augment = dataclasses.replace(base, grayscale_p=grey)
        except ValueError as exc:
            raise TrainingError(str(exc)) from None
        return DetectorTraining(
            model_config=model_config,
            fit_config=fit_config,
            augment_config=augment,
            kind=options["kind"],
            seed=options["seed"],
            whole_image_faces=options["whole_image_faces"],
        )

    def recorded(self, options: dict[str, Any], training: DetectorTraining) -> dict[str, Any]:
        # The resolved rate and batch size are recorded, so the line reproduces the run even
        # after the defaults change; the default kind is left out.
        return {
            **options,
            "kind": None if options["kind"] == ModelKind.DETECTOR else options["kind"],
            "face_augment": options["face_augment"] or None,
            "whole_image_faces": options["whole_image_faces"] or None,
            "lr": training.fit_config.learning_rate,
            "batch_size": training.fit_config.batch_size,
        }
