"""The work of one trial of a training run, and the choices between trials.

:func:`train` trains one detector with a run's configuration plus the trial's overrides,
measures it on every split (train, train-val, validation, test: the diagnosis compares
them), fits its working threshold and score calibration on validation, times it (the
satisficing metrics) and stores its best weights. :func:`first_round`, :func:`next_round`,
:func:`choose` and :func:`diagnose` wrap the pure search, selection and diagnosis.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from inference.calibration import fit_working_scores, serving_scores
from inference.face_backbones import BackboneVerifier
from inference.preprocess import load_rgb
from inference.runtime import pick_device
from inference.siamese import EmbeddingConfig, SiameseNet, save_verifier
from inference.stats import dataset_normalization
from inference.yolo import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    YoloConfig,
    YoloDetector,
    load_detector,
    save_detector,
)
from training.augment import AugmentConfig
from training.detection import (
    DEFAULT_AUGMENT_CONFIG,
    DEFAULT_DETECTOR_CONFIG,
    DEFAULT_FIT_CONFIG,
    EVAL_SCORE_THRESHOLD,
    FACE_AUGMENT_CONFIG,
    FACE_DETECTOR_CONFIG,
    DetectionSample,
    TransferStart,
    evaluate_detector,
    report_at_threshold,
    train_detector,
)
from training.diagnosis import diagnose as diagnose_errors
from training.fit import FitCancelled, FitConfig, Progress
from training.formats.folders import FaceSample
from training.models import ModelVersion, Trial
from training.run_config import RunConfig, RunConfigError
from training.samples import class_names_of, split_samples, whole_image_face_samples
from training.search import coarse_trials, fine_trials
from training.selection import pick
from training.verification import DEFAULT_VERIFIER_TRAIN_CONFIG, evaluate_verifier
from training.verification import train_verifier as train_face_verifier
from webapp.images.models import Dataset

Report = Callable[[float, str], None]  # (fraction of the trial, message); may raise
# The train split is measured on at most this many images (deterministically chosen): the
# diagnosis needs the training error, not every image of a big set.
TRAIN_EVAL_IMAGES = 500
LATENCY_RUNS = 5
STATS_IMAGES = 200


class TrialCancelled(Exception):
    """The trial's job was cancelled; what was saved is kept."""


@dataclass(frozen=True)
class Outcome:
    """What a finished trial stores on its row."""

    curves: list[dict[str, Any]]
    metrics: dict[str, Any]
    objective: float | None
    satisficing: dict[str, float]
    checkpoint: str
    summary: str

    def fields(self) -> dict[str, Any]:
        return {
            "curves": self.curves,
            "metrics": self.metrics,
            "objective": self.objective,
            "satisficing": self.satisficing,
            "checkpoint": self.checkpoint,
        }


# ---------------------------------------------------------------------------- configs


def fit_config(config: RunConfig, base: FitConfig | None = None) -> FitConfig:
    """The loop's settings: the task's defaults (``base``; the detector's when None) with
    what the run sets."""
    defaults = base or DEFAULT_FIT_CONFIG
    overrides = {
        name: getattr(config, name)
        for name in ("optimizer", "learning_rate", "weight_decay", "batch_size", "lr_schedule")
        if getattr(config, name) is not None
    }
    if config.decay_rate is not None:
        overrides["decay_rate"] = config.decay_rate
    if config.patience is not None:
        overrides["patience"] = config.patience
    minutes = config.trial_minutes()
    overrides["max_epochs"] = config.epochs or defaults.max_epochs
    # An epoch budget alone means "train that many epochs"; else the time budget binds.
    overrides["max_minutes"] = (
        minutes if minutes else (None if config.epochs else defaults.max_minutes)
    )
    try:
        return dataclasses.replace(defaults, **overrides)
    except ValueError as exc:
        raise RunConfigError(str(exc)) from None


def augment_config(config: RunConfig, extra: set[str]) -> AugmentConfig:
    """The task's augmentation (a face detector's: zoom onto a face, light, grey), plus
    what the run (or the error sheet's tags) asks for."""
    wanted = set(config.augment) | extra
    changes: dict[str, Any] = {}
    fields = {f.name for f in dataclasses.fields(AugmentConfig)}
    if "color" in wanted:
        changes["color_p"] = 0.8
    if "blur" in wanted and "blur_p" in fields:
        changes["blur_p"] = 0.3
    if "rotate" in wanted and "rotate_p" in fields:
        changes["rotate_p"] = 0.3
    if "occlude" in wanted:
        changes["occlude_p"] = 0.3
    base = FACE_AUGMENT_CONFIG if config.task == "face_detector" else DEFAULT_AUGMENT_CONFIG
    return dataclasses.replace(base, **changes)


# ---------------------------------------------------------------------------- training


def _progress(
    trial: Trial, report: Report, curves: list[dict[str, Any]], *, members: bool = False
) -> Callable[[Progress], None]:
    """Record each epoch's curve point and report progress. ``members``: the model is an
    ensemble trained one net after another, so an epoch count that starts again is the next
    member's (each point names its member)."""

    def on_progress(p: Progress) -> None:
        if p.phase == "eval":
            member: dict[str, int] = {}
            if members:
                last = curves[-1] if curves else {"epoch": 0, "member": 1}
                restarted = p.epoch + 1 <= int(last["epoch"])
                member["member"] = int(last.get("member", 1)) + (1 if restarted else 0)
            curves.append(
                {
                    **member,
                    "epoch": p.epoch + 1,
                    "lr": p.lr,
                    "loss": p.losses.get("loss"),
                    **{k: v for k, v in p.metrics.items() if isinstance(v, int | float)},
                    "seconds": round(p.elapsed_seconds, 2),
                }
            )
            Trial.objects.filter(pk=trial.pk).update(curves=curves)
        eta = f", about {round(p.eta_seconds)} s left" if p.eta_seconds else ""
        try:
            report(p.fraction, f"Trial {trial.number}: epoch {p.epoch + 1} of {p.max_epochs}{eta}")
        except TrialCancelled:
            raise FitCancelled() from None

    return on_progress


def train(trial: Trial, config: RunConfig, report: Report) -> Outcome:
    """Train and measure one trial; raises :class:`TrialCancelled` if cancelled."""
    if config.task == "verifier":
        return train_verifier_trial(trial, config, report)
    return train_detector_trial(trial, config, report)


def train_detector_trial(trial: Trial, config: RunConfig, report: Report) -> Outcome:
    """Train and measure one detector trial."""
    from webapp.analysis.actions import training_augmentations

    dataset = trial.run.dataset
    class_names = class_names_of(dataset)
    splits = split_samples(dataset, class_names)
    if config.whole_image_faces is not None:
        faces = Dataset.objects.get(pk=config.whole_image_faces)
        splits["train"] = [*splits["train"], *whole_image_face_samples(faces, class_names)]
    model_config, start = _start(trial, config, splits["train"])
    curves = list(trial.curves)  # a resumed trial keeps the epochs it had done
    result = train_detector(
        splits["train"],
        splits["val"],
        class_names,
        model_config=model_config,
        fit_config=fit_config(config),
        augment_config=augment_config(config, training_augmentations(dataset)),
        on_progress=_progress(trial, report, curves),
        seed=config.seed + trial.number,
        device=pick_device(),
        start=start,
        checkpoint_path=_state_path(trial),
    )
    if result.stopped_reason == "cancelled":
        raise TrialCancelled()
    report(1.0, f"Trial {trial.number}: measuring on every split")
    metrics = measure(result.model, result.metrics, splits)
    if result.transfer:
        metrics["_transfer"] = result.transfer
    metrics["_model_config"] = result.model_config.to_dict()
    metrics["_class_names"] = list(result.model_config.class_names)
    checkpoint, size_mb = _store(trial, result.model)
    satisficing = {"size_mb": size_mb, "latency_ms": latency_ms(result.model)}
    metric, _ = config.objective
    objective = metrics["val"].get(metric)
    summary = (
        f"val mAP@0.5 {objective:.3f} after {len(result.history)} epochs ({result.stopped_reason})"
        if objective is not None
        else "no validation metric"
    )
    return Outcome(curves, metrics, objective, satisficing, checkpoint, summary)


def train_verifier_trial(trial: Trial, config: RunConfig, report: Report) -> Outcome:
    """Train and measure one Siamese verifier trial (the same contrastive loop as
    ``train_verifier``): EER on every split's people (train, train-val, val, test), the
    threshold and calibration on the people it never trained on.

    A verifier trial does not resume mid-way: a trial whose worker died starts again.
    """
    from training import services

    if config.start_from is not None:
        raise RunConfigError(
            "A verifier starts from scratch or from a backbone: start_from is for detectors."
        )
    onnx = trial.run.backbone_file
    if (config.backbone == "onnx") != bool(onnx):
        raise RunConfigError("backbone 'onnx' needs a backbone_file (.onnx), and only it does.")
    backbone = services.face_backbone(
        config.backbone, Path(default_storage.path(onnx)) if onnx else None
    )
    splits = services.verifier_splits(trial.run.dataset, "detector", lambda _m: None)
    base = DEFAULT_VERIFIER_TRAIN_CONFIG
    vconfig = dataclasses.replace(base, fit_config=fit_config(config, base.fit_config))
    curves = list(trial.curves)
    result = train_face_verifier(
        splits["train"],
        splits["val"],
        vconfig,
        on_progress=_progress(
            trial, report, curves, members=vconfig.members > 1 and backbone is None
        ),
        seed=config.seed + trial.number,
        device=pick_device(),
        backbone=backbone,
    )
    if result.stopped_reason == "cancelled":
        raise TrialCancelled()
    report(1.0, f"Trial {trial.number}: measuring on every split")
    metrics = services.verifier_metrics(
        result, splits, services.VerifierTraining(config=vconfig, seed=config.seed)
    )
    for name in ("train", "train_val"):
        faces = splits.get(name, [])
        if len({f.identity for f in faces}) >= 2:
            calibration = evaluate_verifier(result.model, faces, rng_seed=config.seed)
            metrics[name] = services.calibration_summary(calibration)
    metrics["_model_config"] = services.verifier_version_config(result)
    metrics["_class_names"] = []
    extra = {"threshold": metrics["threshold"], "threshold_rule": metrics["threshold_rule"]}
    checkpoint, size_mb = _store_file(
        trial, lambda path: save_verifier(path, result.model, extra=extra)
    )
    satisficing = {
        "size_mb": size_mb,
        "latency_ms": _verifier_latency_ms(result.model, result.embedding_config, splits),
    }
    objective = metrics["val"].get("eer")
    summary = (
        f"val EER {100 * objective:.1f}% after {len(result.history)} epochs "
        f"({result.stopped_reason})"
        if objective is not None
        else "no validation metric"
    )
    return Outcome(curves, metrics, objective, satisficing, checkpoint, summary)


def _verifier_latency_ms(
    model: SiameseNet, shape: EmbeddingConfig, splits: dict[str, list[FaceSample]]
) -> float:
    """Median CPU time to embed one face crop (a satisficing metric); a backbone verifier's
    includes its backbone, timed on one of the run's own faces."""
    net = model.to("cpu").eval().embedding
    if isinstance(net, BackboneVerifier):
        sample = next(s for faces in splits.values() for s in faces)
        crop = net.make_crop(load_rgb(sample.image_path), sample.box)
        return _median_ms(lambda: net.embed([crop]), repeats=5)
    x = torch.zeros(1, shape.in_channels, shape.input_size, shape.input_size)
    return _median_ms(lambda: net(x))


def _state_path(trial: Trial) -> Path:
    """Where the trial's training state lives between epochs (resumed after a crash).

    The name is drawn once per trial and kept on its row: a redelivered trial finds its own
    state, and a file some other trial left (a database restored or reset while the media
    stayed) is never mistaken for it.
    """
    name = trial.state_file
    if not name:
        name = f"runs/{trial.run_id}/trial-{trial.number}-{uuid.uuid4().hex}.state"
        Trial.objects.filter(pk=trial.pk).update(state_file=name)
        trial.state_file = name
    path = Path(default_storage.path(name))
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _start(
    trial: Trial, config: RunConfig, train: list[DetectionSample]
) -> tuple[YoloConfig, TransferStart | None]:
    """The architecture and the transfer start: one of our versions (with its input
    normalisation), a backbone file the user brought (ImageNet's statistics, which its
    weights learnt), or random weights (the training split's own statistics)."""
    run = trial.run
    base = FACE_DETECTOR_CONFIG if config.task == "face_detector" else DEFAULT_DETECTOR_CONFIG
    state: dict[str, Any] | None = None
    if run.start_from_id is not None:
        version = ModelVersion.objects.get(pk=run.start_from_id)
        cpu = torch.device("cpu")
        source = load_detector(version.path, device=cpu, expected_sha256=version.sha256)
        base, state = source.config, source.state_dict()
    changes: dict[str, Any] = {"priors": None, "img_size": config.img_size or base.img_size}
    if state is None and config.backbone != "ours":
        changes["backbone"] = config.backbone
    file = Path(default_storage.path(run.backbone_file)) if run.backbone_file else None
    if state is None:
        if file is not None:
            changes["input_mean"], changes["input_std"] = IMAGENET_MEAN, IMAGENET_STD
        else:
            changes["input_mean"], changes["input_std"] = train_statistics(train)
    model_config = dataclasses.replace(base, **changes)
    if state is None and file is None:
        return model_config, None
    return model_config, TransferStart(state=state, backbone_file=file, freeze=config.freeze_blocks)


def train_statistics(
    train: list[DetectionSample],
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and std of the training images (at most :data:`STATS_IMAGES`,
    evenly spaced): the network's first step subtracts and divides by them, here and when
    serving. Validation and test stay unseen."""
    step = max(1, len(train) // STATS_IMAGES)
    return dataset_normalization(load_rgb(s.image_path) for s in train[::step][:STATS_IMAGES])


def measure(
    model: YoloDetector, val_metrics: Any, splits: dict[str, list[DetectionSample]]
) -> dict[str, Any]:
    """Metrics on every split at the working threshold fitted on val (the diagnosis' errors)."""
    working = fit_working_scores(val_metrics.matched, split="val", score_floor=EVAL_SCORE_THRESHOLD)
    serving = working.serving() if working else serving_scores({}, model.config.to_dict())
    metrics: dict[str, Any] = {"val": report_at_threshold(val_metrics, serving)}
    img_size = model.config.img_size
    for name in ("train", "train_val", "test"):
        samples = splits.get(name, [])
        if name == "train":
            samples = samples[:: max(1, len(samples) // TRAIN_EVAL_IMAGES)][:TRAIN_EVAL_IMAGES]
        if samples:
            metrics[name] = report_at_threshold(
                evaluate_detector(model, samples, img_size), serving
            )
    if working is not None:
        metrics.update(working.to_metrics())
    return metrics


def latency_ms(model: YoloDetector) -> float:
    """Median CPU time of one forward pass at the model's input size (a satisficing metric)."""
    size = model.config.img_size
    cpu = model.to("cpu").eval()
    x = torch.zeros(1, 3, size, size)
    return _median_ms(lambda: cpu(x))


def _median_ms(forward: Callable[[], object], repeats: int = LATENCY_RUNS) -> float:
    times = []
    with torch.inference_mode():
        forward()  # warm-up
        for _ in range(repeats):
            began = time.perf_counter()
            forward()
            times.append((time.perf_counter() - began) * 1000)
    return round(statistics.median(times), 2)


def _store(trial: Trial, model: YoloDetector) -> tuple[str, float]:
    return _store_file(trial, lambda path: save_detector(path, model))


def _store_file(trial: Trial, save: Callable[[Path], object]) -> tuple[str, float]:
    """Write the trial's best weights with ``save`` and keep them in storage."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        save(path)
        name = f"runs/{trial.run_id}/trial-{trial.number}.safetensors"
        if default_storage.exists(name):
            default_storage.delete(name)
        stored = default_storage.save(name, ContentFile(path.read_bytes()))
        return stored, round(path.stat().st_size / 2**20, 3)


# ---------------------------------------------------------------------------- choices


def first_round(config: RunConfig) -> list[dict[str, Any]]:
    """The overrides of the first trials: one empty set, or the coarse search's samples."""
    if config.search is None:
        return [{}]
    rounds = config.search.rounds
    coarse = config.search.trials if rounds == 1 else max(1, (config.search.trials * 5 + 7) // 8)
    return coarse_trials(config, coarse)


def next_round(config: RunConfig, trials: list[Trial]) -> list[dict[str, Any]]:
    """The finer round's overrides, once, when the search asks for two rounds."""
    if config.search is None or config.search.rounds < 2 or any(t.round == 2 for t in trials):
        return []
    left = config.search.trials - len(trials)
    done = [(t.params, t.objective) for t in trials if t.objective is not None]
    if left <= 0 or not done:
        return []
    return fine_trials(config, done, left)


def choose(config: RunConfig, trials: list[Trial]) -> tuple[Trial | None, list[str]]:
    """The winner and why each other trial lost."""
    _, mode = config.objective
    return pick(
        trials,
        objective=lambda t: t.objective,
        mode=mode,
        limits=config.satisficing,
        measured=lambda t: t.satisficing,
        name=lambda t: f"trial {t.number}",
    )


def diagnose(trial: Trial, human_error: float | None, config: RunConfig) -> dict[str, Any]:
    """The notes' bias / variance / mismatch table for the winner: a detector's error is
    1 − mAP@0.5, a verifier's its equal error rate."""
    metric, mode = config.objective

    def error(split: str) -> float | None:
        value = trial.metrics.get(split, {}).get(metric)
        if value is None:
            return None
        return float(value) if mode == "min" else 1.0 - float(value)

    return diagnose_errors(
        human=human_error,
        train=error("train"),
        train_val=error("train_val"),
        val=error("val"),
        test=error("test"),
    ).to_dict()
