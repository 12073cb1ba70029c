"""The one training loop: model-agnostic, readable top to bottom, reporting through a callback.

The model-specific parts come in as three callables, so the same loop trains the detector and
the face verifier:

- ``train_batches(epoch) -> Iterable[batch]``: the mini-batches of one epoch (the callable
  decides the shuffling, e.g. seeded with ``seed + epoch``);
- ``step(model, batch) -> {"loss": Tensor, ...}``: a forward pass returning the scalar loss
  to minimise plus any parts worth plotting (e.g. ``"box"``, ``"cls"``);
- ``evaluate(model) -> {"map50": 0.61, ...}``: validation metrics, called once per epoch
  under ``torch.no_grad()`` with the model in ``eval()`` mode.

The optimisers and the learning-rate decay follow the deep-learning notes: Adam by default
(beta1 0.9, beta2 0.999, eps 1e-8), RMSprop, or gradient descent with momentum 0.9; decay
``alpha0 / (1 + decay_rate * epoch)``, ``alpha0 * k**epoch``, steps, or cosine. Training stops
at ``max_epochs``, at the ``max_minutes`` wall-clock budget, or early when the validation
metric has not improved for ``patience`` epochs; the weights of the best epoch are returned.

Cancelling: ``on_progress`` may raise :class:`FitCancelled`. :func:`fit` catches it, puts
the model back in ``train()`` mode and *returns* normally with ``stopped_reason ==
"cancelled"`` and the best weights seen so far (``None`` if no epoch finished), so the caller
can decide whether to keep them. Any other exception propagates unchanged.

Resuming: with ``checkpoint_path`` :func:`fit` writes the whole training state after every
epoch (model, optimiser, scheduler, epoch, best metric and weights, early-stopping counter,
history, elapsed time, the torch / numpy / Python random states and any ``stateful``
objects such as the augmentation's generator) with :func:`save_training_state`; a run whose
worker died passes :func:`load_training_state`'s result as ``resume_from`` and continues
with the next epoch, ending with the same weights as a run that was never interrupted (on
the CPU, with deterministic ``train_batches``/``step``). The state file is loaded with
``torch.load(weights_only=True)``: no code runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import math
import os
import pickle
import random
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    LambdaLR,
    LRScheduler,
    StepLR,
)

from inference.runtime import CheckpointError

Batch = TypeVar("Batch")
OptimizerName = Literal["adam", "rmsprop", "momentum"]
ScheduleName = Literal["none", "inverse_time", "exponential", "step", "cosine"]
StopReason = Literal["early_stopping", "max_epochs", "time_budget", "cancelled"]
Phase = Literal["train", "eval", "done"]

# 2: adds best_epoch, best_state, the early-stopping counter, history, elapsed time, random
# states and stopped_reason, so that a run can resume exactly. Version 1 states lack them.
TRAINING_STATE_VERSION = 2


class FitCancelled(Exception):
    """Raise from ``on_progress`` to stop training; :func:`fit` returns a "cancelled" result."""


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite: training diverged (usually a too-high learning rate)."""


@dataclass(frozen=True)
class FitConfig:
    """Everything that shapes one training run; the tools build overrides on it.

    The commands, the experiments and the bench build them from command-line options with
    ``training.options.fit_config_from_args``.

    Attributes:
        optimizer: "adam" (default), "rmsprop" or "momentum" (SGD with momentum).
        learning_rate: alpha0, the initial learning rate.
        weight_decay: L2 penalty coefficient, applied to weights only (not biases or norm
            parameters, which it would only pull towards zero without regularising).
        batch_size: mini-batch size; a power of two as the notes recommend. ``fit`` does not
            batch the data itself: this is validated here and read by whoever builds batches.
        beta1, beta2, eps: Adam's moment decay rates and denominator term.
        momentum: beta of gradient descent with momentum.
        rmsprop_gamma: decay of RMSprop's running mean of squared gradients (Hinton's 0.9).
        lr_schedule: "none", "inverse_time", "exponential", "step" or "cosine"; stepped once
            per epoch.
        decay_rate: for "inverse_time": ``alpha = alpha0 / (1 + decay_rate * epoch)``.
        exp_gamma: for "exponential": ``alpha = alpha0 * exp_gamma ** epoch``.
        step_epochs, step_gamma: for "step": multiply by ``step_gamma`` every ``step_epochs``.
        min_lr: for "cosine": the rate reached at ``max_epochs``.
        max_epochs: epochs at most.
        max_minutes: wall-clock budget in minutes (``None``: no budget); whichever of this and
            ``max_epochs`` comes first stops training.
        patience: epochs without improvement before stopping early (``None``: never).
        metric: key of ``evaluate()``'s result used for early stopping and the best epoch.
        mode: "max" if a larger ``metric`` is better (mAP), "min" if smaller is (a loss).
        min_delta: an improvement must beat the best by more than this to count.
        grad_clip_norm: clip the global gradient L2 norm to this (``None``: no clipping).
        seed: seeds torch's generator at the start of :func:`fit` (dropout and any torch
            randomness in ``step``); seed the model's initialisation yourself, before building it.
        restore_best_weights: load the best epoch's weights into the model when :func:`fit`
            returns (the notes' early stopping). Off by default: the model keeps the *last*
            weights and ``FitResult.best_state`` holds the best, as callers expect today.
    """

    optimizer: OptimizerName = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 16
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    momentum: float = 0.9
    rmsprop_gamma: float = 0.9
    lr_schedule: ScheduleName = "none"
    decay_rate: float = 0.1
    exp_gamma: float = 0.95
    step_epochs: int = 5
    step_gamma: float = 0.9
    min_lr: float = 0.0
    max_epochs: int = 30
    max_minutes: float | None = None
    patience: int | None = 10
    metric: str = "map50"
    mode: Literal["max", "min"] = "max"
    min_delta: float = 0.0
    grad_clip_norm: float | None = None
    seed: int = 0
    restore_best_weights: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.batch_size & (self.batch_size - 1):
            raise ValueError(
                f"batch_size must be a power of two (1, 2, 4, 8, 16, 32, 64, ...), "
                f"got {self.batch_size}"
            )
        if self.optimizer not in ("adam", "rmsprop", "momentum"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}")
        if self.lr_schedule not in ("none", "inverse_time", "exponential", "step", "cosine"):
            raise ValueError(f"unknown lr_schedule {self.lr_schedule!r}")
        if self.mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {self.mode!r}")
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise ValueError("learning_rate must be > 0 and weight_decay >= 0")
        if self.max_epochs < 1 or (self.max_minutes is not None and self.max_minutes <= 0):
            raise ValueError("max_epochs must be >= 1 and max_minutes > 0 when given")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {self.patience}")
        if self.step_epochs < 1:
            raise ValueError(f"step_epochs must be >= 1, got {self.step_epochs}")
        if self.grad_clip_norm is not None and self.grad_clip_norm <= 0:
            raise ValueError(f"grad_clip_norm must be > 0 or None, got {self.grad_clip_norm}")


# Adam at 3e-3 with cosine decay to 1e-5 over ``max_epochs``: the recipe both the detector
# (BCCD) and the verifier (ORL) experiments settled on; each model's defaults set the rest
# (see DEFAULT_FIT_CONFIG in training.detection, DEFAULT_VERIFIER_FIT_CONFIG in
# training.verification, and the experiment logs they cite).
ADAM_COSINE = FitConfig(optimizer="adam", learning_rate=3e-3, lr_schedule="cosine", min_lr=1e-5)


@dataclass(frozen=True)
class Progress:
    """One progress report, sent after every training step and every evaluation.

    Attributes:
        epoch: 0-based index of the current epoch (show ``epoch + 1`` to people).
        max_epochs: the configured number of epochs.
        step: steps done in this epoch (1-based after the first step; 0 before).
        steps_in_epoch: steps per epoch, ``None`` while unknown (an iterable without
            ``len()`` during the first epoch).
        fraction: 0..1 of the run done, by epochs or by the time budget, whichever is further;
            never decreases, and is 1.0 in the final report.
        eta_seconds: estimated seconds left (``None`` before anything can be estimated).
        elapsed_seconds: wall-clock seconds since :func:`fit` started.
        lr: the current learning rate (of the first parameter group).
        losses: the last step's losses as floats (train phase) or the epoch means (eval, done).
        metrics: the last evaluation's metrics (empty before the first one).
        phase: "train" after a step, "eval" after an evaluation, "done" at the end.
    """

    epoch: int
    max_epochs: int
    step: int
    steps_in_epoch: int | None
    fraction: float
    eta_seconds: float | None
    elapsed_seconds: float
    lr: float
    losses: dict[str, float]
    metrics: dict[str, float]
    phase: Phase


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of history, for learning curves.

    Attributes:
        epoch: 0-based epoch index.
        lr: learning rate used during this epoch.
        train_loss: mean of the steps' ``"loss"``.
        train_losses: mean of every key ``step`` returned.
        metrics: ``evaluate()``'s result after this epoch.
        seconds: wall-clock seconds of training plus evaluation.
    """

    epoch: int
    lr: float
    train_loss: float
    train_losses: dict[str, float]
    metrics: dict[str, float]
    seconds: float


@dataclass
class FitResult:
    """What a run produced.

    Attributes:
        best_state: ``state_dict`` copied (on CPU) at the best epoch; ``None`` only when
            cancelled before any epoch finished.
        best_metric: the best value of ``config.metric`` (``None`` as for ``best_state``).
        best_epoch: 0-based index of that epoch (-1 if none).
        history: one :class:`EpochRecord` per evaluated epoch.
        stopped_reason: "early_stopping", "max_epochs", "time_budget" or "cancelled".
        elapsed_seconds: wall-clock duration of the run, including the time before a resume.
        resumed_after_epoch: the last epoch of the state it resumed from (``None``: a fresh
            run).
    """

    best_state: dict[str, torch.Tensor] | None
    best_metric: float | None
    best_epoch: int
    history: list[EpochRecord] = field(default_factory=list)
    stopped_reason: StopReason = "max_epochs"
    elapsed_seconds: float = 0.0
    resumed_after_epoch: int | None = None


def format_seconds(seconds: float) -> str:
    """``125.0`` -> ``"2m05s"``."""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def epoch_printer(write: Callable[[str], object]) -> Callable[[Progress], None]:
    """An ``on_progress`` callback that writes one line per evaluated epoch.

    The line: epoch, share done, ETA, learning rate, loss and the validation metrics.
    """
    last = {"epoch": -1}

    def report(progress: Progress) -> None:
        if progress.phase == "eval" and progress.metrics and progress.epoch != last["epoch"]:
            last["epoch"] = progress.epoch
            metrics = " ".join(f"{k} {v:.3f}" for k, v in progress.metrics.items())
            write(
                f"epoch {progress.epoch + 1}/{progress.max_epochs} "
                f"{progress.fraction:4.0%} ETA {format_seconds(progress.eta_seconds or 0.0)} "
                f"lr {progress.lr:.2e} loss {progress.losses.get('loss', float('nan')):.4f} "
                f"{metrics}"
            )

    return report


def minibatch_indices(
    n: int, batch_size: int, epoch: int, seed: int = 0, shuffle: bool = True
) -> list[torch.Tensor]:
    """The mini-batches of one epoch as index tensors: every example exactly once.

    Args:
        n: examples in the training set.
        batch_size: examples per batch, a power of two (the notes' 64, 128, 256, ...); with
            ``batch_size >= n`` this is batch gradient descent (one batch per epoch), which
            the notes advise for sets under about 2,000 examples.
        epoch: 0-based; the order is drawn from its own generator seeded with ``seed +
            epoch``, so an epoch's batches do not depend on what ran before (a resumed run
            sees the same batches).
        shuffle: False keeps the examples in order.

    Returns:
        ``ceil(n / batch_size)`` int64 tensors, all of ``batch_size`` examples but the last
        (the remainder, kept rather than dropped so small sets lose nothing).
    """
    if batch_size < 1 or batch_size & (batch_size - 1):
        raise ValueError(f"batch_size must be a power of two, got {batch_size}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if shuffle:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))
    else:
        order = torch.arange(n)
    return list(torch.split(order, batch_size))


def make_optimizer(params: Iterable[nn.Parameter], config: FitConfig) -> Optimizer:
    """Build the configured optimiser.

    L2 weight decay goes only to tensors with two or more dimensions (conv and linear
    weights): decaying biases and batch-norm scales does not regularise, it only shrinks them.
    Every optimiser adds ``weight_decay * w`` to the gradient, i.e. the gradient of the notes'
    L2 term ``weight_decay / 2 * ||W||^2`` (not AdamW's decoupled decay).

    How PyTorch's updates relate to the notes' formulas (``tests/training/test_fit_optimizers``
    checks each against a slow reference written from the notes):

    * Momentum: PyTorch keeps ``v = beta v + g`` and steps ``w -= alpha_t v``; the notes keep
      ``v = beta v + alpha g`` and step ``w -= v``. With a constant rate the two are the same
      sequence of weights. Under learning-rate decay they differ: PyTorch scales the whole
      accumulated velocity by the *current* rate, the notes keep each past gradient at the
      rate it was taken with.
    * RMSprop and Adam: PyTorch divides by ``sqrt(E[g^2]) + eps`` (Adam: ``sqrt(v_hat) +
      eps``, as in Kingma and Ba's paper), the notes by ``sqrt(E[g^2] + eps)``. Everything
      else (the running averages, Adam's bias correction, the first step from zero state)
      is the notes' formula. With eps = 1e-8 the two differ only where the squared-gradient
      average is itself below about 1e-8.

    Args:
        params: the parameters to train, e.g. ``model.parameters()``; frozen ones are skipped.
        config: uses ``optimizer``, ``learning_rate``, ``weight_decay`` and the optimiser's own
            constants.

    Returns:
        A ``torch.optim`` optimiser with two parameter groups (decayed, not decayed).
    """
    trainable = [p for p in params if p.requires_grad]
    decayed = [p for p in trainable if p.ndim >= 2]
    plain = [p for p in trainable if p.ndim < 2]
    groups: list[dict[str, Any]] = [
        {"params": decayed, "weight_decay": config.weight_decay},
        {"params": plain, "weight_decay": 0.0},
    ]
    lr = config.learning_rate
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=(config.beta1, config.beta2), eps=config.eps)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, alpha=config.rmsprop_gamma, eps=config.eps)
    # PyTorch folds alpha into the update (v = beta v + g; w -= alpha v): with a constant
    # rate this is the notes' v = beta v + alpha g; w -= v.
    return torch.optim.SGD(groups, lr=lr, momentum=config.momentum)


def make_scheduler(optimizer: Optimizer, config: FitConfig) -> LRScheduler:
    """Build the per-epoch learning-rate decay; call ``scheduler.step()`` after each epoch.

    Args:
        optimizer: the optimiser whose ``lr`` the scheduler sets.
        config: uses ``lr_schedule`` and its constants. Epochs count from 0, so epoch 0
            always trains at ``learning_rate``.

    Returns:
        A scheduler; for "none" a constant one, so the loop needs no special case.
    """
    schedule = config.lr_schedule
    if schedule == "inverse_time":
        rate = config.decay_rate
        return LambdaLR(optimizer, lambda epoch: 1.0 / (1.0 + rate * epoch))
    if schedule == "exponential":
        return ExponentialLR(optimizer, gamma=config.exp_gamma)
    if schedule == "step":
        return StepLR(optimizer, step_size=config.step_epochs, gamma=config.step_gamma)
    if schedule == "cosine":
        return CosineAnnealingLR(optimizer, T_max=config.max_epochs, eta_min=config.min_lr)
    return LambdaLR(optimizer, lambda epoch: 1.0)


def training_state(
    model: nn.Module,
    optimizer: Optimizer,
    config: FitConfig,
    epoch: int,
    best_metric: float | None,
    scheduler: LRScheduler | None = None,
) -> dict[str, Any]:
    """Everything needed to resume a run, as plain containers of tensors and primitives.

    The result loads with ``torch.load(..., weights_only=True)``; writing it (with a checksum)
    is the caller's job.

    Args:
        model, optimizer: their ``state_dict()`` is taken (tensors are not copied).
        config: stored as a dict (``FitConfig(**state["config"])`` rebuilds it).
        epoch: 0-based index of the last finished epoch.
        best_metric: best validation metric so far, or ``None``.
        scheduler: optional; otherwise rebuild it from ``config`` with ``last_epoch=epoch``.

    Returns:
        ``{"format_version", "model", "optimizer", "scheduler", "config", "epoch",
        "best_metric"}``; :func:`fit` adds the rest of what resuming needs (see
        :func:`_resume_state`).
    """
    return {
        "format_version": TRAINING_STATE_VERSION,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "config": dataclasses.asdict(config),
        "epoch": epoch,
        "best_metric": best_metric,
    }


class Stateful(Protocol):
    """Anything with ``state_dict`` / ``load_state_dict`` (a module, :class:`GeneratorState`)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: Mapping[str, Any], /) -> object: ...


class GeneratorState:
    """A ``numpy.random.Generator`` seen as :class:`Stateful`, e.g. the augmentation's.

    Pass ``{"augment": GeneratorState(rng)}`` as ``fit(..., stateful=...)`` so a resumed run
    continues the generator where the interrupted one was, instead of replaying it.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def state_dict(self) -> dict[str, Any]:
        return {"bit_generator": dict(self.rng.bit_generator.state)}

    def load_state_dict(self, state_dict: Mapping[str, Any], /) -> object:
        self.rng.bit_generator.state = dict(state_dict["bit_generator"])
        return None


def save_training_state(path: str | Path, state: Mapping[str, Any]) -> str:
    """Write a training state atomically (temp file, fsync, rename); return its sha256.

    A worker killed while writing leaves the previous state under ``path``, never half a file.
    """
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    data = buffer.getvalue()
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return hashlib.sha256(data).hexdigest()


def load_training_state(path: str | Path) -> dict[str, Any]:
    """Read a state written by :func:`save_training_state`, without running any code.

    Raises:
        CheckpointError: missing, unreadable or not a training state (a pickle that would
            run code is refused by ``weights_only=True``).
    """
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise CheckpointError(f"training state not found: {path}") from exc
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"{path} is not a readable training state: {exc}") from exc
    if not isinstance(state, dict) or not {"format_version", "model", "epoch"} <= set(state):
        raise CheckpointError(f"{path} is not a training state written by training.fit")
    if int(state["format_version"]) > TRAINING_STATE_VERSION:
        raise CheckpointError(
            f"{path} uses training-state format {state['format_version']}; this code reads up "
            f"to {TRAINING_STATE_VERSION}"
        )
    return state


def _rng_states() -> dict[str, Any]:
    """Every global generator a training step may draw from, as weights-only-loadable values."""
    legacy = np.random.get_state(legacy=True)
    assert isinstance(legacy, tuple)  # legacy=True: ("MT19937", keys, pos, has_gauss, cached)
    name, keys, pos, has_gauss, cached = legacy
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (name, np.asarray(keys).tolist(), pos, has_gauss, cached),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: Mapping[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class EarlyStopping:
    """Tracks the best value of a metric and how many epochs have passed without beating it.

    Args:
        patience: epochs without improvement before :attr:`should_stop` (``None``: never).
        mode: "max" if larger is better, "min" if smaller is.
        min_delta: an improvement must beat the best by more than this.
    """

    def __init__(self, patience: int | None, mode: Literal["max", "min"], min_delta: float):
        self.patience = patience
        self.sign = 1.0 if mode == "max" else -1.0  # compare as "larger is better"
        self.min_delta = min_delta
        self.best: float | None = None
        self.epochs_without_improvement = 0

    def update(self, value: float) -> bool:
        """Record one epoch's metric; return True if it is a new best."""
        if math.isnan(value):
            improved = False  # a NaN metric (e.g. no validation boxes) is never a new best
        elif self.best is None:
            improved = True
        else:
            improved = self.sign * (value - self.best) > self.min_delta
        if improved:
            self.best = value
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        return improved

    @property
    def should_stop(self) -> bool:
        """True once ``patience`` epochs in a row brought no improvement."""
        return self.patience is not None and self.epochs_without_improvement >= self.patience


class _Clock:
    """Elapsed time, the time budget, and the monotonic fraction-done estimate."""

    def __init__(self, config: FitConfig, already: float = 0.0) -> None:
        # ``already``: seconds spent before a resume, so the budget covers the whole run.
        self.start = time.monotonic() - already
        self.budget = None if config.max_minutes is None else config.max_minutes * 60.0
        self.max_epochs = config.max_epochs
        self.last_fraction = 0.0

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def out_of_time(self) -> bool:
        return self.budget is not None and self.elapsed() >= self.budget

    def fraction(self, epoch: int, step: int, steps: int | None) -> float:
        """Fraction done by epochs or by time, whichever is further; never goes back."""
        in_epoch = 0.0 if not steps else min(step / steps, 1.0)
        by_epochs = (epoch + in_epoch) / self.max_epochs
        by_time = 0.0 if self.budget is None else self.elapsed() / self.budget
        self.last_fraction = max(self.last_fraction, min(1.0, max(by_epochs, by_time)))
        return self.last_fraction

    def eta(self, fraction: float) -> float | None:
        if fraction <= 0.0:
            return None
        return self.elapsed() * (1.0 - fraction) / fraction


@dataclass
class _Run:
    """Mutable state of one :func:`fit` call, so the helpers below stay short."""

    model: nn.Module
    config: FitConfig
    optimizer: Optimizer
    clock: _Clock
    on_progress: Callable[[Progress], None] | None
    stopper: EarlyStopping
    result: FitResult
    scheduler: LRScheduler
    checkpoint_path: Path | None = None
    stateful: Mapping[str, Stateful] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    steps_in_epoch: int | None = None

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def report(self, epoch: int, step: int, losses: Mapping[str, float], phase: Phase) -> None:
        if self.on_progress is None:
            return
        fraction = 1.0 if phase == "done" else self.clock.fraction(epoch, step, self.steps_in_epoch)
        progress = Progress(
            epoch=epoch,
            max_epochs=self.config.max_epochs,
            step=step,
            steps_in_epoch=self.steps_in_epoch,
            fraction=fraction,
            eta_seconds=0.0 if phase == "done" else self.clock.eta(fraction),
            elapsed_seconds=self.clock.elapsed(),
            lr=self.lr(),
            losses=dict(losses),
            metrics=dict(self.metrics),
            phase=phase,
        )
        self.on_progress(progress)


def _train_step(
    run: _Run, step: Callable[[nn.Module, Batch], dict[str, torch.Tensor]], batch: Batch
) -> dict[str, float]:
    """Forward, backward, clip, update; return the losses as floats."""
    losses = step(run.model, batch)
    if "loss" not in losses:
        raise KeyError(f"step() must return a 'loss' entry, got keys {sorted(losses)}")
    loss = losses["loss"]
    # .item() syncs the device once per step, which we need anyway to catch divergence early.
    values = {name: float(value.detach().item()) for name, value in losses.items()}
    if not math.isfinite(values["loss"]):
        raise NonFiniteLossError(
            f"loss is {values['loss']}: training diverged; try a lower learning_rate "
            f"(now {run.lr():g}) or set grad_clip_norm"
        )
    run.optimizer.zero_grad(set_to_none=True)
    torch.autograd.backward(loss)
    if run.config.grad_clip_norm is not None:
        nn.utils.clip_grad_norm_(run.model.parameters(), run.config.grad_clip_norm)
    run.optimizer.step()
    return values


def _train_epoch(
    run: _Run,
    epoch: int,
    batches: Iterable[Batch],
    step: Callable[[nn.Module, Batch], dict[str, torch.Tensor]],
) -> tuple[dict[str, float], bool]:
    """Train one epoch; return the mean of each loss and whether the time budget ran out."""
    if isinstance(batches, Sized):
        run.steps_in_epoch = len(batches)
    sums: dict[str, float] = {}
    done = 0
    out_of_time = False
    for batch in batches:
        values = _train_step(run, step, batch)
        for name, value in values.items():
            sums[name] = sums.get(name, 0.0) + value
        done += 1
        run.report(epoch, done, values, "train")
        if run.clock.out_of_time():
            out_of_time = True
            break
    run.steps_in_epoch = run.steps_in_epoch or done  # learnt from the first epoch if unsized
    return {name: total / max(done, 1) for name, total in sums.items()}, out_of_time


def _evaluate(
    model: nn.Module, evaluate: Callable[[nn.Module], Mapping[str, float]], metric: str
) -> dict[str, float]:
    """Run ``evaluate`` under no_grad in eval mode (dropout off, batch-norm running stats)."""
    model.eval()
    try:
        with torch.no_grad():
            metrics = {name: float(value) for name, value in evaluate(model).items()}
    finally:
        model.train()
    if metric not in metrics:
        raise KeyError(f"evaluate() returned {sorted(metrics)}; FitConfig.metric is {metric!r}")
    return metrics


def _state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the weights that later optimiser steps cannot change."""
    return {name: t.detach().to("cpu", copy=True) for name, t in model.state_dict().items()}


def _resume_state(run: _Run, epoch: int, stopped: StopReason | None) -> dict[str, Any]:
    """The full training state after ``epoch`` (0-based), for :func:`save_training_state`."""
    result = run.result
    state = training_state(
        run.model, run.optimizer, run.config, epoch, result.best_metric, run.scheduler
    )
    state.update(
        best_epoch=result.best_epoch,
        best_state=result.best_state,
        epochs_without_improvement=run.stopper.epochs_without_improvement,
        history=[dataclasses.asdict(record) for record in result.history],
        elapsed_seconds=run.clock.elapsed(),
        steps_in_epoch=run.steps_in_epoch,
        rng=_rng_states(),
        stateful={name: obj.state_dict() for name, obj in run.stateful.items()},
        stopped_reason=stopped,
    )
    return state


def _checkpoint(run: _Run, epoch: int, stopped: StopReason | None = None) -> None:
    if run.checkpoint_path is not None:
        save_training_state(run.checkpoint_path, _resume_state(run, epoch, stopped))


def _restore(run: _Run, state: Mapping[str, Any]) -> tuple[int, StopReason | None]:
    """Load a saved state into the run; return the next epoch and the saved stop reason."""
    if int(state.get("format_version", 0)) < 2 or "rng" not in state:
        raise ValueError("the training state predates resuming (format 1): start a new run")
    saved = dict(state["config"])
    now = dataclasses.asdict(run.config)
    changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if changed:
        raise ValueError(f"cannot resume with a different FitConfig; changed: {changed}")
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    if state["scheduler"] is not None:
        run.scheduler.load_state_dict(state["scheduler"])
    result = run.result
    result.best_state, result.best_metric = state["best_state"], state["best_metric"]
    result.best_epoch = int(state["best_epoch"])
    result.history = [EpochRecord(**record) for record in state["history"]]
    result.resumed_after_epoch = int(state["epoch"])
    run.stopper.best = state["best_metric"]
    run.stopper.epochs_without_improvement = int(state["epochs_without_improvement"])
    run.steps_in_epoch = state["steps_in_epoch"]
    run.clock = _Clock(run.config, already=float(state["elapsed_seconds"]))
    for name, obj in run.stateful.items():
        obj.load_state_dict(state["stateful"][name])
    _set_rng_states(state["rng"])
    return int(state["epoch"]) + 1, state["stopped_reason"]


def _run_epochs(
    run: _Run,
    train_batches: Callable[[int], Iterable[Batch]],
    step: Callable[[nn.Module, Batch], dict[str, torch.Tensor]],
    evaluate: Callable[[nn.Module], Mapping[str, float]],
    start_epoch: int = 0,
) -> StopReason:
    """The epoch loop: train, evaluate, keep the best, decay the rate, save, decide to stop."""
    config, result = run.config, run.result
    if start_epoch > 0:  # resumed: the saved epoch may already have ended the run
        if run.stopper.should_stop:
            return "early_stopping"
        if run.clock.out_of_time():
            return "time_budget"
    for epoch in range(start_epoch, config.max_epochs):
        started, lr = time.monotonic(), run.lr()
        means, out_of_time = _train_epoch(run, epoch, train_batches(epoch), step)
        # Even when the budget ran out mid-epoch we evaluate once, so a best state exists.
        run.metrics = _evaluate(run.model, evaluate, config.metric)
        if run.stopper.update(run.metrics[config.metric]):
            result.best_state = _state_copy(run.model)
            result.best_metric, result.best_epoch = run.stopper.best, epoch
        result.history.append(
            EpochRecord(
                epoch,
                lr,
                means.get("loss", math.nan),
                means,
                run.metrics,
                time.monotonic() - started,
            )
        )
        run.scheduler.step()
        _checkpoint(run, epoch)  # before the report, so a cancel raised there keeps it
        run.report(epoch, run.steps_in_epoch or 0, means, "eval")
        if run.stopper.should_stop:
            return "early_stopping"
        if out_of_time or run.clock.out_of_time():
            return "time_budget"
    return "max_epochs"


def fit(
    model: nn.Module,
    train_batches: Callable[[int], Iterable[Batch]],
    step: Callable[[nn.Module, Batch], dict[str, torch.Tensor]],
    evaluate: Callable[[nn.Module], Mapping[str, float]],
    config: FitConfig,
    on_progress: Callable[[Progress], None] | None = None,
    *,
    checkpoint_path: str | Path | None = None,
    resume_from: Mapping[str, Any] | None = None,
    stateful: Mapping[str, Stateful] | None = None,
) -> FitResult:
    """Train ``model`` until max_epochs, the time budget, early stopping, or cancellation.

    Args:
        model: any ``nn.Module``, already on its device; it is trained in place and left in
            ``train()`` mode with the *last* weights (load ``result.best_state`` for the best,
            or set ``config.restore_best_weights``).
        train_batches: ``epoch -> iterable of batches`` for that epoch (0-based epoch).
        step: ``(model, batch) -> losses``; must contain a scalar ``"loss"`` to minimise.
        evaluate: ``model -> metrics``; must contain ``config.metric``.
        config: the run's settings.
        on_progress: called after every step and evaluation; raise :class:`FitCancelled`
            from it to stop (then ``fit`` returns a result with ``stopped_reason ==
            "cancelled"``). Keep it cheap or throttle it: it runs on the training thread.
        checkpoint_path: write the full training state here after every epoch (atomically)
            and once more, with ``stopped_reason``, when the run ends (not when cancelled).
        resume_from: a state from :func:`load_training_state`; training continues with the
            epoch after the saved one. A state whose run had ended returns that result at
            once. The ``config`` must equal the saved one (``ValueError`` naming the fields
            that differ otherwise).
        stateful: extra objects whose state is saved and restored with the run, e.g.
            ``{"augment": GeneratorState(rng)}``; the same names when resuming.

    Returns:
        A :class:`FitResult`. Raises :class:`NonFiniteLossError` if the loss diverges, and
        ``KeyError`` if ``step`` or ``evaluate`` omit the required keys.
    """
    torch.manual_seed(config.seed)
    optimizer = make_optimizer(model.parameters(), config)
    run = _Run(
        model=model,
        config=config,
        optimizer=optimizer,
        clock=_Clock(config),
        on_progress=on_progress,
        stopper=EarlyStopping(config.patience, config.mode, config.min_delta),
        result=FitResult(best_state=None, best_metric=None, best_epoch=-1),
        scheduler=make_scheduler(optimizer, config),
        checkpoint_path=None if checkpoint_path is None else Path(checkpoint_path),
        stateful=dict(stateful or {}),
    )
    start_epoch, saved_reason = 0, None
    if resume_from is not None:
        start_epoch, saved_reason = _restore(run, resume_from)
    model.train()
    try:
        if saved_reason is not None:
            reason: StopReason = saved_reason
        else:
            reason = _run_epochs(run, train_batches, step, evaluate, start_epoch)
            _checkpoint(run, run.result.history[-1].epoch, reason)
    except FitCancelled:
        reason = "cancelled"
    finally:
        model.train()  # also after any other exception, so the caller's model is not left in eval
    return _finish(run, reason)


def _finish(run: _Run, reason: StopReason) -> FitResult:
    """Record how the run ended, restore the best weights if asked, send the last report."""
    run.result.stopped_reason = reason
    run.result.elapsed_seconds = run.clock.elapsed()
    if run.config.restore_best_weights and run.result.best_state is not None:
        run.model.load_state_dict(run.result.best_state)
    if reason != "cancelled":
        last = run.result.history[-1]
        # The run is over: a FitCancelled raised by this last report changes nothing.
        with contextlib.suppress(FitCancelled):
            run.report(last.epoch, run.steps_in_epoch or 0, last.train_losses, "done")
    return run.result
