"""What a training run asks for, as one dataclass saved with the run (pure, no Django).

The API, the training page and ``manage.py train`` all build a :class:`RunConfig`; a
random search's trials are overrides of it (:attr:`RunConfig.search`). The hash of its
JSON tells a retraining with unchanged data and config, which is skipped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

Task = Literal["detector", "face_detector", "verifier"]
TASKS = ("detector", "face_detector", "verifier")
DETECTOR_TASKS = ("detector", "face_detector")
AUGMENTS = ("blur", "color", "rotate", "occlude")
# The fields that must be whole numbers when given, and the largest seed NumPy and torch take.
WHOLE_FIELDS = (
    "epochs",
    "img_size",
    "batch_size",
    "patience",
    "freeze_blocks",
    "start_from",
    "whole_image_faces",
)
MAX_SEED = 2**32 - 1
OPTIMIZERS = ("adam", "rmsprop", "momentum")
SCHEDULES = ("none", "inverse_time", "exponential", "step", "cosine")
# "ours" is the detector's own backbone; the torchvision ones start from a weights file the
# user brings (ImageNet resnet18 / mobilenet_v3_small), or from random weights.
BACKBONES = ("ours", "resnet18", "mobilenet_v3_small")
# A verifier's start: our net from scratch, dlib's pretrained face embedding (installed with
# the app), or a face-embedding ONNX file the user brings (``TrainingRun.backbone_file``).
FACE_BACKBONES = ("ours", "dlib", "onnx")
# The optimising metric by task and whether larger is better (EER: smaller).
OBJECTIVES = {
    "detector": ("map50", "max"),
    "face_detector": ("map50", "max"),
    "verifier": ("eer", "min"),
}


class RunConfigError(ValueError):
    """A run configuration that cannot be trained; the message names the field."""


@dataclass(frozen=True)
class SearchSpec:
    """A random search: ``trials`` in all, a coarse round then (``rounds=2``) a finer one
    around the best of the first, as the notes advise; each trial gets an equal share of the
    run's time budget."""

    trials: int = 8
    rounds: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("trials", "rounds", "seed"):
            _check(_whole(getattr(self, name)), f"search.{name} must be a whole number.")
        _check(0 <= self.seed <= MAX_SEED, f"search.seed: 0 to {MAX_SEED}.")
        if not 1 <= self.trials <= 64:
            raise RunConfigError("search.trials must be between 1 and 64.")
        if self.rounds not in (1, 2):
            raise RunConfigError("search.rounds must be 1 or 2.")


@dataclass(frozen=True)
class RunConfig:
    """One training request.

    Attributes:
        task: "detector", "face_detector" (a detector of face boxes for the face search,
            trained with the face augmentation: zoom onto a face, strong light changes,
            grey; three scales) or "verifier".
        minutes: the whole run's wall-clock budget (shared by its trials), or None.
        epochs: the most epochs per trial (None: the task's default).
        img_size: the detector's input side in pixels (a multiple of 32).
        optimizer, learning_rate, weight_decay, batch_size, lr_schedule, decay_rate,
        patience: the loop's settings (``training.fit.FitConfig``); None keeps the task's
            default.
        augment: switched on for this run besides the defaults: "blur", "color", "rotate",
            "occlude" (a band across one object: sunglasses, masks, hair)
            (the error sheet's tag actions add theirs).
        freeze_blocks: when fine-tuning, the first N backbone blocks stay frozen (None: the
            notes' rule of thumb by the amount of data).
        start_from: a model version id to fine-tune from.
        whole_image_faces: a face detector's: the id of a faces dataset whose train-split
            photos of one face (stored without a box, as ORL's) join training as faces
            that fill the photo.
        backbone: a detector's: "ours" (default), "resnet18" or "mobilenet_v3_small"
            (torchvision architectures; their weights come from a file the user brings, see
            ``TrainingRun.backbone_file``). A verifier's: "ours" (from scratch), "dlib"
            (dlib's pretrained face embedding under our head) or "onnx" (the user's ONNX
            face embedding, ``TrainingRun.backbone_file``).
        search: a random search, or None for one trial with these settings.
        satisficing: limits a winner must meet, e.g. ``{"latency_ms": 50, "size_mb": 20}``.
        seed: seeds the trials.
    """

    task: Task = "detector"
    minutes: float | None = None
    epochs: int | None = None
    img_size: int | None = None
    optimizer: str | None = None
    learning_rate: float | None = None
    weight_decay: float | None = None
    batch_size: int | None = None
    lr_schedule: str | None = None
    decay_rate: float | None = None
    patience: int | None = None
    augment: tuple[str, ...] = ()
    freeze_blocks: int | None = None
    start_from: int | None = None
    whole_image_faces: int | None = None
    backbone: str = "ours"
    search: SearchSpec | None = None
    satisficing: dict[str, float] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.task in TASKS, "task must be detector, face_detector or verifier.")
        for name in WHOLE_FIELDS:  # 1.5 epochs or "8" would only fail once training ran
            value = getattr(self, name)
            _check(value is None or _whole(value), f"{name} must be a whole number.")
        _check(_whole(self.seed) and 0 <= self.seed <= MAX_SEED, f"seed: 0 to {MAX_SEED}.")
        _check(self.start_from is None or self.start_from >= 1, "start_from: a model version id.")
        _check(
            self.whole_image_faces is None
            or (self.task == "face_detector" and self.whole_image_faces >= 1),
            "whole_image_faces: a faces dataset's id, for a face_detector run.",
        )
        allowed = FACE_BACKBONES if self.task == "verifier" else BACKBONES
        _check(self.backbone in allowed, f"backbone for a {self.task}: one of {allowed}.")
        _check(self.minutes is None or 0 < self.minutes <= 7 * 24 * 60, "minutes: 0 to a week.")
        _check(self.epochs is None or 1 <= self.epochs <= 10_000, "epochs: 1 to 10,000.")
        _check(
            self.img_size is None or (64 <= self.img_size <= 2048 and self.img_size % 32 == 0),
            "img_size must be a multiple of 32 from 64 to 2048.",
        )
        _check(self.optimizer in (None, *OPTIMIZERS), f"optimizer: one of {OPTIMIZERS}.")
        _check(self.lr_schedule in (None, *SCHEDULES), f"lr_schedule: one of {SCHEDULES}.")
        for name in ("learning_rate", "weight_decay", "decay_rate"):
            value = getattr(self, name)
            _check(value is None or (math.isfinite(value) and 0 <= value < 10), f"{name}: 0 to 10.")
        _check(self.learning_rate != 0, "learning_rate must be above 0.")
        size = self.batch_size
        _check(
            size is None or (1 <= size <= 1024 and size & (size - 1) == 0),
            "batch_size must be a power of two from 1 to 1024 (the notes' mini-batch sizes).",
        )
        _check(self.patience is None or 1 <= self.patience <= 1000, "patience: 1 to 1000.")
        _check(set(self.augment) <= set(AUGMENTS), f"augment: one of {AUGMENTS}.")
        _check(
            self.freeze_blocks is None or 0 <= self.freeze_blocks <= 20, "freeze_blocks: 0 to 20."
        )
        for key, limit in self.satisficing.items():
            _check(key in ("latency_ms", "size_mb"), "satisficing: latency_ms and size_mb.")
            _check(math.isfinite(limit) and limit > 0, f"satisficing.{key} must be above 0.")

    @property
    def objective(self) -> tuple[str, str]:
        """(metric, "max" | "min") the winner is chosen by, on validation."""
        return OBJECTIVES[self.task]

    @property
    def trials(self) -> int:
        return self.search.trials if self.search else 1

    def trial_minutes(self) -> float | None:
        """Each trial's share of the run's time budget."""
        return None if self.minutes is None else self.minutes / self.trials

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["augment"] = sorted(self.augment)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """From the API's or the stored JSON; unknown keys are an error, not ignored."""
        if not isinstance(data, dict):
            raise RunConfigError("The run configuration must be an object.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RunConfigError(f"Unknown field(s) {unknown}.")
        values = dict(data)
        search = values.get("search")
        if isinstance(search, dict):
            extra = sorted(set(search) - {"trials", "rounds", "seed"})
            if extra:
                raise RunConfigError(f"search: unknown field(s) {extra}.")
            values["search"] = SearchSpec(**search)
        elif search not in (None, False):
            raise RunConfigError('search must be an object such as {"trials": 8}.')
        else:
            values["search"] = None
        values["augment"] = tuple(values.get("augment") or ())
        values["satisficing"] = dict(values.get("satisficing") or {})
        try:
            return cls(**values)
        except TypeError as exc:
            raise RunConfigError(str(exc)) from None

    def with_overrides(self, params: dict[str, Any]) -> RunConfig:
        """This config with one trial's sampled hyper-parameters."""
        allowed = {f.name for f in dataclasses.fields(self)} - {"search", "task"}
        return dataclasses.replace(self, **{k: v for k, v in params.items() if k in allowed})

    def digest(self) -> str:
        """A hash of what shapes the result (not the seed of the search's bookkeeping)."""
        data = self.to_dict()
        if data["whole_image_faces"] is None:  # added later: older runs' digests stay
            del data["whole_image_faces"]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _whole(value: Any) -> bool:
    """An int, not a bool (JSON ``true`` is not 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise RunConfigError(message)
