"""`manage.py train_verifier --dataset NAME [--backbone dlib|PATH.onnx] [--target-far F]`.

Trains the Siamese face verifier with the contrastive loss (from scratch, or as our head on a
frozen pretrained backbone: ``--backbone dlib`` or an ONNX face embedding) on the faces of the
dataset's train-split people, early-stops on the validation people's EER, then calibrates on
every person the net never trained on (validation and test people): ROC, AUC, EER, TAR at
FAR 1% and 0.1%, and the decision threshold (the EER point by default, or the distance
whose FAR is ``--target-far``). Registers a ``verifier`` model version carrying the
threshold (``training.services.train_and_register``); the last line printed is
``model_version=<id>``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from training.management.training_command import TrainingCommand
from training.options import add_fit_arguments, fit_config_from_args
from training.services import TARGET_FARS, TrainingError, VerifierTraining, face_backbone
from training.verification import DEFAULT_VERIFIER_FIT_CONFIG, DEFAULT_VERIFIER_TRAIN_CONFIG


class Command(TrainingCommand[VerifierTraining]):
    help = "Train the face verifier on a faces dataset and register it with its threshold."
    command_name = "train_verifier"
    recorded_flags = (
        "epochs",
        "minutes",
        "lr",
        "members",
        "target_far",
        "face_boxes",
        "backbone",
        "seed",
        "device",
    )

    def add_training_arguments(self, parser: CommandParser) -> None:
        add_fit_arguments(parser, DEFAULT_VERIFIER_FIT_CONFIG, ("epochs", "minutes", "lr"))
        parser.add_argument(
            "--members",
            type=int,
            default=DEFAULT_VERIFIER_TRAIN_CONFIG.members,
            help="Independently trained nets averaged into one verifier (sharing the budget).",
        )
        parser.add_argument(
            "--target-far",
            type=float,
            choices=TARGET_FARS,
            default=None,
            help="Operate at this false-accept rate (0.01 or 0.001); default: the EER point.",
        )
        parser.add_argument(
            "--face-boxes",
            choices=("detector", "stored"),
            default="detector",
            help=(
                "detector (default): faces stored as whole images are framed by the active "
                "face detector, exactly as serving frames uploads; stored: use them as stored."
            ),
        )

        parser.add_argument(
            "--backbone",
            default="ours",
            help=(
                "ours (default): our net from scratch, for users with many people of their "
                "own; dlib: dlib's pretrained ResNet face embedding with our head on top; or "
                "the path of an ONNX face-embedding file (ArcFace-style)."
            ),
        )

    def training(self, options: dict[str, Any]) -> VerifierTraining:
        try:
            config = dataclasses.replace(
                DEFAULT_VERIFIER_TRAIN_CONFIG,
                fit_config=fit_config_from_args(DEFAULT_VERIFIER_FIT_CONFIG, options),
                members=options["members"],
            )
        except ValueError as exc:
            raise TrainingError(str(exc)) from None
        choice = str(options["backbone"])
        onnx = Path(choice) if choice.lower().endswith(".onnx") else None
        if onnx is not None and not onnx.is_file():
            raise TrainingError(f"--backbone {choice}: no such file")
        return VerifierTraining(
            config=config,
            target_far=options["target_far"],
            face_boxes=options["face_boxes"],
            seed=options["seed"],
            backbone=face_backbone("onnx" if onnx else choice, onnx),
        )

    def recorded(self, options: dict[str, Any], training: VerifierTraining) -> dict[str, Any]:
        # The resolved rate is recorded, so the line reproduces the run after defaults change.
        backbone = None if options["backbone"] in ("ours", "") else options["backbone"]
        members = None if backbone else options["members"]  # a backbone trains one head
        return {
            **options,
            "lr": training.config.fit_config.learning_rate,
            "backbone": backbone,
            "members": members,
        }
