"""Train, register and evaluate models: the Django side of training, as plain functions.

The ``manage.py`` commands call these, and they are written for training and evaluation jobs
to call as they are: they take rows and configuration dataclasses, report through two callbacks
(``on_progress`` for each step and epoch of ``training.fit.fit``, ``log`` for sentences
meant for people), raise :class:`TrainingError` with a message for people when a request
cannot be carried out, and return the new :class:`ModelVersion` or the metrics.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from inference.calibration import (
    WorkingScores,
    fit_working_scores,
    raw_working_threshold,
    serving_scores,
)
from inference.face_backbones import BackboneError, DlibBackbone, FaceBackbone, OnnxBackbone
from inference.face_pipeline import largest_face
from inference.predict import Predictor
from inference.preprocess import load_rgb
from inference.runtime import pick_device
from inference.siamese import save_verifier
from inference.verification_metrics import Calibration
from inference.yolo import YoloConfig, save_detector
from training.augment import AugmentConfig
from training.detection import (
    DEFAULT_AUGMENT_CONFIG,
    DEFAULT_DETECTOR_CONFIG,
    DEFAULT_FIT_CONFIG,
    EVAL_SCORE_THRESHOLD,
    DetectionSample,
    DetectorTrainingResult,
    evaluate_detector,
    report_at_threshold,
    train_detector,
)
from training.fit import FitConfig, Progress, format_seconds
from training.formats.folders import FaceSample
from training.models import ModelKind, ModelVersion
from training.samples import (
    class_names_of,
    face_samples,
    split_samples,
    whole_image_face_samples,
)
from training.verification import (
    DEFAULT_VERIFIER_TRAIN_CONFIG,
    VerifierTrainConfig,
    VerifierTrainingResult,
    evaluate_verifier,
    train_verifier,
)
from webapp.accounts.models import User
from webapp.analysis.evaluate import check_request, evaluate_now
from webapp.images.models import Dataset, Task
from webapp.jobs.errors import JobError

Log = Callable[[str], object]
OnProgress = Callable[[Progress], None]
Splits = dict[str, list[FaceSample]]
# The operating points the calibration measures (besides the EER point).
TARGET_FARS = (0.01, 0.001)
EVALUATION_SPLITS = ("train", "train_val", "val", "test")


class TrainingError(ValueError):
    """A training or evaluation request that cannot be carried out; the message says why."""


def _quiet(message: str) -> None:
    """The default ``log``: say nothing."""


@dataclass(frozen=True)
class Registration:
    """How a trained model is recorded.

    Attributes:
        name: the version's name; empty: "<dataset> <kind>".
        activate: serve it at once (the first version of a kind is always served).
        command: the command line that reproduces the run, if it came from one.
        created_by: who asked for it.
    """

    name: str = ""
    activate: bool = False
    command: str = ""
    created_by: User | None = None


@dataclass(frozen=True)
class DetectorTraining:
    """What to train for a detector: the configs, the kind to register it as, the seed."""

    # YoloConfig is a mutable dataclass: each DetectorTraining gets its own copy.
    model_config: YoloConfig = field(default_factory=lambda: copy.deepcopy(DEFAULT_DETECTOR_CONFIG))
    fit_config: FitConfig = DEFAULT_FIT_CONFIG
    augment_config: AugmentConfig | None = DEFAULT_AUGMENT_CONFIG
    kind: str = ModelKind.DETECTOR
    seed: int = 0
    # A faces dataset whose train-split faces stored as whole images (face crops such as
    # ORL's portraits) join the training images, each with one box: the whole image.
    whole_image_faces: str = ""


@dataclass(frozen=True)
class VerifierTraining:
    """What to train for a verifier.

    Attributes:
        config: the pure training configuration (nets, sampler, budget, members).
        target_far: operate at this false-accept rate (one of :data:`TARGET_FARS`), or
            ``None`` for the EER point.
        face_boxes: "detector": faces stored as whole images are framed by the active face
            detector, exactly as serving frames uploads; "stored": used as stored.
        seed: seeds training and the evaluation pairs.
        backbone: a frozen pretrained face embedding to train our head on
            (:mod:`inference.face_backbones`), or None for our own net from scratch.
    """

    config: VerifierTrainConfig = DEFAULT_VERIFIER_TRAIN_CONFIG
    target_far: float | None = None
    face_boxes: Literal["detector", "stored"] = "detector"
    seed: int = 0
    backbone: FaceBackbone | None = None

    def __post_init__(self) -> None:
        # Refuse an operating point the calibration does not measure, before any training.
        if self.target_far is not None and self.target_far not in TARGET_FARS:
            raise TrainingError(
                f"target FAR must be one of {TARGET_FARS} (or none, for the EER point), "
                f"got {self.target_far}"
            )


DEFAULT_REGISTRATION = Registration()


@dataclass(frozen=True)
class _Run:
    """Where a training runs and whom it tells: the device and the two callbacks."""

    device: torch.device
    on_progress: OnProgress | None
    log: Log


# ----------------------------------------------------------------------------- look-ups
def dataset_named(name: str) -> Dataset:
    """The dataset called ``name``; :class:`TrainingError` if there is none."""
    dataset = Dataset.objects.filter(name=name).first()
    if dataset is None:
        raise TrainingError(f"No dataset named {name!r}.")
    return dataset


def detector_version(pk: int) -> ModelVersion:
    """The detector model version ``pk``; :class:`TrainingError` if there is none."""
    version = ModelVersion.objects.filter(pk=pk, kind=ModelKind.DETECTOR).first()
    if version is None:
        raise TrainingError(f"No detector model version {pk}.")
    return version


# ----------------------------------------------------------------------------- training
def train_and_register(
    dataset: Dataset,
    training: DetectorTraining | VerifierTraining,
    registration: Registration = DEFAULT_REGISTRATION,
    *,
    device: torch.device | None = None,
    on_progress: OnProgress | None = None,
    log: Log = _quiet,
) -> ModelVersion:
    """Train the model ``training`` describes on ``dataset``, register it, return the version.

    A detector (:class:`DetectorTraining`) trains on the dataset's train split and
    early-stops on its val split; the version's metrics are those of val and, when the
    dataset has one, test. A verifier (:class:`VerifierTraining`) trains on a faces
    dataset's train people and early-stops on the val people's EER, then is calibrated on
    every person it never trained on (val and test people): ROC, AUC, EER, TAR at FAR 1% and
    0.1%, and the decision threshold, which the version carries.

    Args:
        dataset: the rows to train on (its splits as persisted).
        training: what to train and how.
        registration: how to record the result.
        device: where to train (default: ``inference.runtime.pick_device()``).
        on_progress: ``training.fit.fit``'s callback, after every step and epoch (it may
            raise ``training.fit.FitCancelled``).
        log: sentences for people (sizes, budget, metrics, why training stopped).

    Raises:
        TrainingError: too little data (no train or val images; fewer than 2 train or val
            people), a detection dataset for a verifier, or a configuration training refuses.
    """
    run = _Run(device or pick_device(), on_progress, log)
    if isinstance(training, VerifierTraining):
        return _train_verifier(dataset, training, registration, run)
    return _train_detector(dataset, training, registration, run)


# ----------------------------------------------------------------------------- detector
def _train_detector(
    dataset: Dataset, training: DetectorTraining, registration: Registration, run: _Run
) -> ModelVersion:
    device, on_progress, log = run.device, run.on_progress, run.log
    class_names = class_names_of(dataset)
    splits = split_samples(dataset, class_names)
    for split in ("train", "val"):
        if not splits.get(split):
            raise TrainingError(f"Dataset {dataset.name!r} has no {split} images.")
    if training.whole_image_faces:
        try:
            faces = dataset_named(training.whole_image_faces)
            extra = whole_image_face_samples(faces, class_names)
        except ValueError as exc:
            raise TrainingError(str(exc)) from None
        log(f"Adding {len(extra)} whole-image faces of {training.whole_image_faces!r}.")
        splits["train"] = [*splits["train"], *extra]
    fit_config = training.fit_config
    log(
        f"Training on {len(splits['train'])} images, validating on {len(splits['val'])}, "
        f"classes {class_names}, device {device}, budget "
        f"{fit_config.max_epochs} epochs / {fit_config.max_minutes or '∞'} minutes."
    )
    try:
        result = train_detector(
            splits["train"],
            splits["val"],
            class_names,
            model_config=training.model_config,
            fit_config=fit_config,
            augment_config=training.augment_config,
            on_progress=on_progress,
            seed=training.seed,
            device=device,
        )
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    metrics = _detector_metrics(result, splits.get("test", []), log)
    version = _register_detector(dataset, training.kind, result, metrics, registration)
    for split in ("val", "test"):
        if split in metrics:
            log(f"{split}: {_detection_text(metrics[split])}")
    log(
        f"Stopped: {result.stopped_reason} after {len(result.history)} epochs, "
        f"{format_seconds(result.elapsed_seconds)}."
    )
    return version


def _detector_metrics(
    result: DetectorTrainingResult, test: list[DetectionSample], log: Log
) -> dict[str, Any]:
    """Val (and test) metrics, with the working threshold and calibration fitted on val.

    Both come from the val predictions already made for the metrics (at the evaluation
    floor, greedy matching at IoU 0.5); test is reported at that threshold, never fitted on.
    """
    working = fit_working_scores(
        result.metrics.matched, split="val", score_floor=EVAL_SCORE_THRESHOLD
    )
    serving = working.serving() if working else serving_scores({}, result.model_config.to_dict())
    metrics: dict[str, Any] = {"val": report_at_threshold(result.metrics, serving)}
    if test:
        img_size = result.model_config.img_size
        tested = evaluate_detector(result.model, test, img_size)
        metrics["test"] = report_at_threshold(tested, serving)
    if working is not None:
        metrics.update(working.to_metrics())
    log(_working_text(working, serving.threshold))
    return metrics


def _working_text(working: WorkingScores | None, fallback: float) -> str:
    if working is None:
        return (
            "No validation box is a true positive: scores stay raw and the working threshold "
            f"is the model's default {fallback:.2f}."
        )
    point = working.threshold
    return (
        f"Working threshold {point.threshold:.3f} on calibrated confidence (max F1 on val: "
        f"precision {point.precision:.3f}, recall {point.recall:.3f}, F1 {point.f1:.3f}); "
        f"raw score {working.raw_threshold.threshold:.3f} for clients of raw scores."
    )


def _detection_text(m: dict[str, Any]) -> str:
    return (
        f"mAP@0.5 {m['map50']:.3f}  mAP@[.5:.95] {m['map50_95']:.3f}  at the working "
        f"threshold {m['score_threshold']:.3f}: precision {m['precision']:.3f}  "
        f"recall {m['recall']:.3f}  F1 {m['f1']:.3f}"
    )


def _register_detector(
    dataset: Dataset,
    kind: str,
    result: DetectorTrainingResult,
    metrics: dict[str, Any],
    registration: Registration,
) -> ModelVersion:
    return ModelVersion.register(
        kind,
        lambda path: save_detector(path, result.model),
        activate=registration.activate,
        name=registration.name or f"{dataset.name} {ModelKind(kind).label.lower()}",
        config=result.model_config.to_dict(),
        class_names=list(result.model_config.class_names),
        metrics=metrics,
        dataset=dataset,
        command=registration.command,
        training_seconds=result.elapsed_seconds,
        created_by=registration.created_by,
    )


def evaluate_detector_version(
    version: ModelVersion,
    split: str,
    dataset: Dataset | None = None,
    *,
    created_by: User | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate a model version on one split of a dataset (default: its own dataset).

    The same function as an evaluation job (``webapp.analysis.evaluate``): it stores an
    ``Evaluation`` with its metrics and one ``ErrorCase`` per mistake, and returns the
    metrics. Detectors and verifiers alike, despite the name (kept for its callers).

    Returns:
        JSON-ready. Detectors: ``model_version``, ``dataset``, ``split``, ``images``,
        ``map50``, ``map50_95``, per-class AP by class name, precision / recall / F1 at the
        version's working threshold (overall and ``per_class`` by class name), that
        ``score_threshold``, its ``score_scale`` ("calibrated" when the version has a
        score calibration, else "raw") and ``threshold_rule``; then ``error_rate``
        (1 - F1), ``error_cases``, ``errors_by_kind``, ``confusion_matrix``,
        ``pr_curves``, ``label_errors`` and ``evaluation`` (the stored row's id).
        Verifiers: EER, AUC, TAR at FAR 1% / 0.1%, the threshold, false accepts and
        rejects, ``error_rate`` and the ROC.

    Raises:
        TrainingError: no dataset (none given and the version records none), an unknown
            split, no images in the split, a model that does not fit the dataset, or a
            checkpoint that cannot be loaded.
    """
    if split not in EVALUATION_SPLITS:
        raise TrainingError(f"Unknown split {split!r}; one of {EVALUATION_SPLITS}.")
    dataset = dataset or version.dataset
    if dataset is None:
        raise TrainingError(
            f"Model version {version.pk} records no dataset of its own: name one to evaluate on."
        )
    try:
        request = check_request(version.pk, dataset.pk, split)
        evaluation = evaluate_now(request, created_by, progress or _no_progress)
    except JobError as exc:
        raise TrainingError(exc.message) from None
    return dict(evaluation.metrics)


def _no_progress(fraction: float, message: str) -> None:
    """The default progress of an evaluation: say nothing."""


# ----------------------------------------------------------------------------- verifier
def _train_verifier(
    dataset: Dataset, training: VerifierTraining, registration: Registration, run: _Run
) -> ModelVersion:
    device, on_progress, log = run.device, run.on_progress, run.log
    splits = verifier_splits(dataset, training.face_boxes, log)
    fit_config = training.config.fit_config
    start = (
        f"a head on the frozen {training.backbone.spec.kind} backbone"
        if training.backbone is not None
        else "our net from scratch"
    )
    log(
        f"Training {start} on {len(splits['train'])} faces of {_people(splits['train'])} "
        f"people, validating on {_people(splits['val'])} other people, device {device}, budget "
        f"{fit_config.max_epochs} epochs / {fit_config.max_minutes} minutes."
    )
    try:
        result = train_verifier(
            splits["train"],
            splits["val"],
            training.config,
            on_progress=on_progress,
            seed=training.seed,
            device=device,
            backbone=training.backbone,
        )
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    metrics = verifier_metrics(result, splits, training)
    version = _register_verifier(dataset, result, metrics, registration)
    for split in ("val", "test", "unseen"):
        if split in metrics:
            log(f"{split}: {_rates_text(metrics[split])}")
    log(
        f"Threshold ({metrics['threshold_rule']}): distance < {metrics['threshold']:.4f} "
        "means the same person."
    )
    if result.backbone is not None and result.best_epoch < 0:
        log(
            "No epoch of the head beat the backbone's own embedding on the validation "
            "people: the backbone is served as it is."
        )
    log(
        f"Stopped: {result.stopped_reason} after {len(result.history)} epochs "
        f"({result.elapsed_seconds / 60:.1f} min)."
    )
    return version


def face_backbone(choice: str, onnx_file: Path | None = None) -> FaceBackbone | None:
    """The verifier's starting point: ``"ours"`` (our net from scratch: None), ``"dlib"``
    (the installed dlib ResNet) or ``"onnx"`` (the ONNX file ``onnx_file``).

    Raises:
        TrainingError: an unknown choice, dlib not installed, or a file that does not fit.
    """
    if choice in ("", "ours", "scratch"):
        return None
    try:
        if choice == "dlib":
            return DlibBackbone()
        if choice == "onnx":
            if onnx_file is None:
                raise TrainingError("An ONNX backbone needs its file.")
            return OnnxBackbone(onnx_file.read_bytes())
    except BackboneError as exc:
        raise TrainingError(str(exc)) from None
    raise TrainingError(f"backbone must be ours, dlib or onnx, got {choice!r}")


def _people(samples: list[FaceSample]) -> int:
    return len({s.identity for s in samples})


def verifier_splits(
    dataset: Dataset, face_boxes: Literal["detector", "stored"], log: Log
) -> Splits:
    """The dataset's faces by split, framed as asked, checked to be enough to train on."""
    if dataset.task != Task.FACES:
        raise TrainingError(
            f"Dataset {dataset.name!r} is a {dataset.task} dataset; import faces with "
            "`import_dataset PATH --format folders` (one folder per person)."
        )
    splits = face_samples(dataset)
    if face_boxes == "detector":
        splits = _detector_boxes(splits, log)
    for split in ("train", "val"):
        people = _people(splits.get(split, []))
        if people < 2:
            raise TrainingError(
                f"Dataset {dataset.name!r} has {people} {split} people; "
                "training needs at least 2 in train and 2 in val."
            )
    return splits


def _detector_boxes(splits: Splits, log: Log) -> Splits:
    """Frame whole-image faces with the serving face detector's largest box, if any.

    Serving crops every upload around the detector's box (plus a margin); a verifier
    trained on whole images would see a different framing in training than in use.
    """
    from webapp.faces.services import serving_face_detector

    version = serving_face_detector()
    if version is None:
        log("No face detector serves: training on the faces as stored.")
        return splits
    detector = Predictor.from_checkpoint(version.path, expected_sha256=version.sha256)
    bar = raw_working_threshold(version.metrics, version.config)  # as serving finds faces
    framed, total = 0, 0
    out: Splits = {}
    for split, samples in splits.items():
        out[split] = []
        for sample in samples:
            if sample.box is None:
                total += 1
                box = largest_face(detector, load_rgb(sample.image_path), bar)
                if box is not None:
                    framed += 1
                    sample = dataclasses.replace(sample, box=box)
            out[split].append(sample)
    log(
        f"Face detector {version.pk} framed {framed} of {total} whole-image faces "
        "(the rest stay whole, as serving uses a small image without a found face)."
    )
    return out


def threshold_for(calibration: Calibration, target_far: float | None) -> tuple[float, str]:
    """The decision threshold and its rule: the EER point, or FAR = 1% / 0.1%."""
    if target_far is None:
        return calibration.eer_threshold, "eer"
    if target_far == 0.01:
        return calibration.threshold_far_1pct, "far=0.01"
    if target_far == 0.001:
        return calibration.threshold_far_01pct, "far=0.001"
    raise TrainingError(f"target FAR must be one of {TARGET_FARS}, got {target_far}")


def verifier_metrics(
    result: VerifierTrainingResult, splits: Splits, training: VerifierTraining
) -> dict[str, Any]:
    """Threshold, calibration on every unseen person, and per-split summaries."""
    unseen = splits.get("val", []) + splits.get("test", [])
    calibration = evaluate_verifier(result.model, unseen, rng_seed=training.seed)
    threshold, rule = threshold_for(calibration, training.target_far)
    metrics: dict[str, Any] = {
        "threshold": threshold,
        "threshold_rule": rule,
        # 1:K recognition compares a face with every enrolled person, so its chance of
        # a false accept grows with K: it answers at the stricter FAR = 1% point.
        "recognition_threshold": calibration.threshold_far_1pct,
        "recognition_threshold_rule": "far=0.01",
        "calibration": calibration.to_dict(),
        "calibration_people": _people(unseen),
        "val": calibration_summary(result.calibration),
        "unseen": calibration_summary(calibration),
    }
    if _people(splits.get("test", [])) >= 2:  # pairs of different people need two
        test = evaluate_verifier(result.model, splits["test"], rng_seed=training.seed)
        metrics["test"] = calibration_summary(test)
    return metrics


def _register_verifier(
    dataset: Dataset,
    result: VerifierTrainingResult,
    metrics: dict[str, Any],
    registration: Registration,
) -> ModelVersion:
    extra = {"threshold": metrics["threshold"], "threshold_rule": metrics["threshold_rule"]}
    return ModelVersion.register(
        ModelKind.VERIFIER,
        lambda path: save_verifier(path, result.model, extra=extra),
        activate=registration.activate,
        name=registration.name or f"{dataset.name} verifier",
        config=verifier_version_config(result),
        class_names=[],
        metrics=metrics,
        dataset=dataset,
        command=registration.command,
        training_seconds=result.elapsed_seconds,
        created_by=registration.created_by,
    )


def verifier_version_config(result: VerifierTrainingResult) -> dict[str, Any]:
    """What a verifier version records of its shape: our net's config, or the backbone (kind,
    file name and sha256, input) under the head; always the margin and the output size."""
    if result.backbone is not None:
        return {
            "backbone": result.backbone.to_dict(),
            "margin": result.margin,
            "members": 1,
            "output_dim": result.backbone.output_dim,
            "head_trained": result.best_epoch >= 0,
        }
    return {
        **result.embedding_config.to_dict(),
        "margin": result.margin,
        "members": result.members,
        "output_dim": result.members * result.embedding_config.embedding_dim,
    }


def calibration_summary(calibration: Calibration) -> dict[str, float]:
    return {
        "eer": calibration.eer,
        "auc": calibration.auc,
        "tar_at_far_1pct": calibration.tar_at_far_1pct,
        "tar_at_far_01pct": calibration.tar_at_far_01pct,
        "eer_threshold": calibration.eer_threshold,
        "n_same": calibration.n_same,
        "n_different": calibration.n_different,
    }


def _rates_text(m: dict[str, float]) -> str:
    def pct(value: float) -> str:
        return f"{100 * value:.1f}%"

    return (
        f"EER {pct(m['eer'])}  AUC {m['auc']:.3f}  TAR@FAR=1% {pct(m['tar_at_far_1pct'])}  "
        f"TAR@FAR=0.1% {pct(m['tar_at_far_01pct'])}"
    )
