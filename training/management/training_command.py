"""The shape of the commands that train one model and register it (``train_detector``,
``train_verifier``): parse options, build the request, call ``training.services``, print.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference.runtime import pick_device
from training.fit import epoch_printer
from training.options import command_line
from training.services import (
    DetectorTraining,
    Registration,
    TrainingError,
    VerifierTraining,
    dataset_named,
    train_and_register,
)

TrainingT = TypeVar("TrainingT", DetectorTraining, VerifierTraining)


class TrainingCommand(BaseCommand, Generic[TrainingT]):
    """Train on ``--dataset`` and register the result; the last line is ``model_version=<id>``.

    Subclasses add their own options (:meth:`add_training_arguments`), turn the parsed
    options into a request (:meth:`training`), and name the options the version's recorded
    command line repeats (:attr:`recorded_flags`, in order, when given).
    """

    command_name = ""
    recorded_flags: tuple[str, ...] = ()

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True)
        self.add_training_arguments(parser)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--name", default="", help="Default: '<dataset> <kind>'.")
        parser.add_argument(
            "--activate",
            action="store_true",
            help="Serve the new version (the first of its kind is always served).",
        )
        parser.add_argument("--device", default=None, help="cpu or cuda (default: auto)")

    def add_training_arguments(self, parser: CommandParser) -> None:
        """The options of this kind of model."""

    def training(self, options: dict[str, Any]) -> TrainingT:
        """The request the options describe; :class:`TrainingError` for bad values."""
        raise NotImplementedError

    def recorded(self, options: dict[str, Any], training: TrainingT) -> dict[str, Any]:
        """The option values the recorded command line shows (default: as parsed)."""
        return options

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            training = self.training(options)
            line = command_line(
                self.command_name, self.recorded(options, training), self.recorded_flags
            )
            registration = Registration(
                name=options["name"], activate=options["activate"], command=line
            )
            version = train_and_register(
                dataset_named(options["dataset"]),
                training,
                registration,
                device=pick_device(options["device"]),
                on_progress=epoch_printer(self.stderr.write),
                log=self.stdout.write,
            )
        except TrainingError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"model_version={version.pk}")
