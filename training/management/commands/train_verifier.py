"""`manage.py train_verifier --dataset NAME [--minutes M] [--target-far F]`.

Trains the Siamese face verifier from scratch with the contrastive loss on the faces of the
dataset's train-split people, early-stops on the validation people's EER, then calibrates on
every person the net never trained on (validation and test people): ROC, AUC, EER, TAR at
FAR 1% and 0.1%, and the decision threshold (the EER point by default, or the distance
whose FAR is ``--target-far``). Registers a ``verifier`` model version carrying the
threshold; the last line printed is ``model_version=<id>``.
"""

from __future__ import annotations

import dataclasses
import shlex
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference.face_pipeline import largest_face
from inference.predict import Predictor
from inference.preprocess import load_rgb
from inference.runtime import pick_device
from inference.siamese import save_verifier
from inference.verification_metrics import Calibration
from training.fit import epoch_printer
from training.formats.folders import FaceSample
from training.models import ModelKind, ModelVersion
from training.samples import face_samples
from training.verification import (
    DEFAULT_VERIFIER_FIT_CONFIG,
    DEFAULT_VERIFIER_MEMBERS,
    evaluate_verifier,
    train_verifier,
)
from webapp.images.models import Dataset, Task

TARGET_FARS = (0.01, 0.001)


def check_target_far(target_far: float | None) -> None:
    """Refuse an operating point the calibration does not measure, before any training."""
    if target_far is not None and target_far not in TARGET_FARS:
        raise CommandError("--target-far must be 0.01 or 0.001 (or leave it out for the EER point)")


def threshold_for(calibration: Calibration, target_far: float | None) -> tuple[float, str]:
    """The decision threshold and its rule: the EER point, or FAR = 1% / 0.1%."""
    check_target_far(target_far)
    if target_far is None:
        return calibration.eer_threshold, "eer"
    if target_far == 0.01:
        return calibration.threshold_far_1pct, "far=0.01"
    return calibration.threshold_far_01pct, "far=0.001"


def _command_line(options: dict[str, Any]) -> str:
    words = ["python", "manage.py", "train_verifier", "--dataset", options["dataset"]]
    flags = ("epochs", "minutes", "lr", "members", "target_far", "face_boxes", "seed", "device")
    for flag in flags:
        if options.get(flag) is not None:
            words += [f"--{flag.replace('_', '-')}", str(options[flag])]
    return shlex.join(words)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


class Command(BaseCommand):
    help = "Train the face verifier on a faces dataset and register it with its threshold."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--epochs", type=int, help="Maximum number of epochs.")
        parser.add_argument("--minutes", type=float, help="Wall-clock budget in minutes.")
        parser.add_argument("--lr", type=float, default=DEFAULT_VERIFIER_FIT_CONFIG.learning_rate)
        parser.add_argument(
            "--members",
            type=int,
            default=DEFAULT_VERIFIER_MEMBERS,
            help="Independently trained nets averaged into one verifier (sharing the budget).",
        )
        parser.add_argument(
            "--target-far",
            type=float,
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
        dataset = Dataset.objects.filter(name=options["dataset"]).first()
        if dataset is None:
            raise CommandError(f"No dataset named {options['dataset']!r}.")
        if dataset.task != Task.FACES:
            raise CommandError(
                f"Dataset {dataset.name!r} is a {dataset.task} dataset; import faces with "
                "`import_dataset PATH --format folders` (one folder per person)."
            )
        splits = face_samples(dataset)
        if options["face_boxes"] == "detector":
            splits = self._detector_boxes(splits)
        for split in ("train", "val"):
            people = {s.identity for s in splits.get(split, [])}
            if len(people) < 2:
                raise CommandError(
                    f"Dataset {dataset.name!r} has {len(people)} {split} people; "
                    "training needs at least 2 in train and 2 in val."
                )
        unseen = splits.get("val", []) + splits.get("test", [])
        check_target_far(options["target_far"])
        fit_config = dataclasses.replace(
            DEFAULT_VERIFIER_FIT_CONFIG,
            learning_rate=options["lr"],
            max_epochs=options["epochs"] or DEFAULT_VERIFIER_FIT_CONFIG.max_epochs,
            max_minutes=options["minutes"] or DEFAULT_VERIFIER_FIT_CONFIG.max_minutes,
        )
        device = pick_device(options["device"])
        self.stdout.write(
            f"Training on {len(splits['train'])} faces of "
            f"{len({s.identity for s in splits['train']})} people, validating on "
            f"{len({s.identity for s in splits['val']})} other people, device {device}, budget "
            f"{fit_config.max_epochs} epochs / {fit_config.max_minutes} minutes."
        )
        try:
            result = train_verifier(
                splits["train"],
                splits["val"],
                fit_config=fit_config,
                members=options["members"],
                on_progress=epoch_printer(self.stderr.write),
                seed=options["seed"],
                device=device,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        calibration = evaluate_verifier(result.model, unseen, rng_seed=options["seed"])
        threshold, rule = threshold_for(calibration, options["target_far"])
        metrics: dict[str, Any] = {
            "threshold": threshold,
            "threshold_rule": rule,
            # 1:K recognition compares a face with every enrolled person, so its chance of
            # a false accept grows with K: it answers at the stricter FAR = 1% point.
            "recognition_threshold": calibration.threshold_far_1pct,
            "recognition_threshold_rule": "far=0.01",
            "calibration": calibration.to_dict(),
            "calibration_people": len({s.identity for s in unseen}),
            "val": _summary(result.calibration),
            "unseen": _summary(calibration),
        }
        if splits.get("test"):
            test = evaluate_verifier(result.model, splits["test"], rng_seed=options["seed"])
            metrics["test"] = _summary(test)
        version = self._register(dataset, result, metrics, options)
        for split in ("val", "test", "unseen"):
            if split in metrics:
                m = metrics[split]
                self.stdout.write(
                    f"{split}: EER {_pct(m['eer'])}  AUC {m['auc']:.3f}  "
                    f"TAR@FAR=1% {_pct(m['tar_at_far_1pct'])}  "
                    f"TAR@FAR=0.1% {_pct(m['tar_at_far_01pct'])}"
                )
        self.stdout.write(f"Threshold ({rule}): distance < {threshold:.4f} means the same person.")
        self.stdout.write(
            f"Stopped: {result.stopped_reason} after {len(result.history)} epochs "
            f"({result.elapsed_seconds / 60:.1f} min)."
        )
        self.stdout.write(f"model_version={version.pk}")

    def _detector_boxes(self, splits: dict[str, list[FaceSample]]) -> dict[str, list[FaceSample]]:
        """Frame whole-image faces with the active face detector's largest box, if any.

        Serving crops every upload around the detector's box (plus a margin); a verifier
        trained on whole images would see a different framing in training than in use.
        """
        version = ModelVersion.active(ModelKind.FACE_DETECTOR)
        if version is None:
            self.stderr.write("No face detector is active: training on the faces as stored.")
            return splits
        detector = Predictor.from_checkpoint(version.path, expected_sha256=version.sha256)
        framed, total = 0, 0
        out: dict[str, list[FaceSample]] = {}
        for split, samples in splits.items():
            out[split] = []
            for sample in samples:
                if sample.box is None:
                    total += 1
                    box = largest_face(detector, load_rgb(sample.image_path))
                    if box is not None:
                        framed += 1
                        sample = dataclasses.replace(sample, box=box)
                out[split].append(sample)
        self.stdout.write(
            f"Face detector {version.pk} framed {framed} of {total} whole-image faces "
            "(the rest stay whole, as serving uses a small image without a found face)."
        )
        return out

    def _register(
        self, dataset: Dataset, result: Any, metrics: dict[str, Any], options: dict[str, Any]
    ) -> ModelVersion:
        extra = {"threshold": metrics["threshold"], "threshold_rule": metrics["threshold_rule"]}
        return ModelVersion.register(
            ModelKind.VERIFIER,
            lambda path: save_verifier(path, result.model, extra=extra),
            activate=options["activate"],
            name=options["name"] or f"{dataset.name} verifier",
            config={
                **result.embedding_config.to_dict(),
                "margin": result.margin,
                "members": result.members,
                "output_dim": result.members * result.embedding_config.embedding_dim,
            },
            class_names=[],
            metrics=metrics,
            dataset=dataset,
            command=_command_line(options),
            training_seconds=result.elapsed_seconds,
        )


def _summary(calibration: Calibration) -> dict[str, float]:
    return {
        "eer": calibration.eer,
        "auc": calibration.auc,
        "tar_at_far_1pct": calibration.tar_at_far_1pct,
        "tar_at_far_01pct": calibration.tar_at_far_01pct,
        "eer_threshold": calibration.eer_threshold,
        "n_same": calibration.n_same,
        "n_different": calibration.n_different,
    }
