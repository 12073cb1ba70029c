"""`manage.py train_verifier --dataset NAME [--minutes M] [--target-far F]`.

Trains the Siamese face verifier from scratch with the contrastive loss on the faces of the
dataset's train-split people, early-stops on the validation people's EER, then calibrates on
every person the net never trained on (validation and test people): ROC, AUC, EER, TAR at
FAR 1% and 0.1%, and the decision threshold (the EER point by default, or the distance
whose FAR is ``--target-far``). Registers a ``verifier`` model version carrying the
threshold (``training.services.train_verifier_version``); the last line printed is
``model_version=<id>``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference.runtime import pick_device
from training.fit import epoch_printer
from training.options import add_fit_arguments, command_line, fit_config_from_args
from training.services import (
    TARGET_FARS,
    Registration,
    TrainingError,
    VerifierTraining,
    dataset_named,
    train_verifier_version,
)
from training.verification import DEFAULT_VERIFIER_FIT_CONFIG, DEFAULT_VERIFIER_TRAIN_CONFIG

# Recorded in the version's command, in this order, when given.
FLAGS = ("epochs", "minutes", "lr", "members", "target_far", "face_boxes", "seed", "device")


class Command(BaseCommand):
    help = "Train the face verifier on a faces dataset and register it with its threshold."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True)
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
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--name", default="")
        parser.add_argument("--activate", action="store_true", help="Serve the new version.")
        parser.add_argument("--device", default=None, help="cpu or cuda (default: auto)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            training = _training(options)
            version = train_verifier_version(
                dataset_named(options["dataset"]),
                training,
                _registration(options, training),
                device=pick_device(options["device"]),
                on_progress=epoch_printer(self.stderr.write),
                log=self.stdout.write,
            )
        except TrainingError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"model_version={version.pk}")


def _training(options: dict[str, Any]) -> VerifierTraining:
    try:
        config = dataclasses.replace(
            DEFAULT_VERIFIER_TRAIN_CONFIG,
            fit_config=fit_config_from_args(DEFAULT_VERIFIER_FIT_CONFIG, options),
            members=options["members"],
        )
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    return VerifierTraining(
        config=config,
        target_far=options["target_far"],
        face_boxes=options["face_boxes"],
        seed=options["seed"],
    )


def _registration(options: dict[str, Any], training: VerifierTraining) -> Registration:
    # The resolved rate is recorded, so the line reproduces the run after defaults change.
    recorded = {**options, "lr": training.config.fit_config.learning_rate}
    return Registration(
        name=options["name"],
        activate=options["activate"],
        command=command_line("train_verifier", recorded, FLAGS),
    )
