"""People-disjoint cross-validation of the face verifier (pure code, no Django).

Each fold's people are its test set; of the remaining people a share is held out for early
stopping and the rest train the net, so no person is in two roles within a fold and
verification is always measured on people the network never saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from inference.face_backbones import FaceBackbone
from inference.pairs import people_disjoint_folds
from inference.verification_metrics import Calibration
from training.fit import StopReason
from training.formats.folders import FaceSample
from training.verification import (
    DEFAULT_VERIFIER_TRAIN_CONFIG,
    VerifierTrainConfig,
    evaluate_verifier,
    train_verifier,
)

SUMMARY_METRICS = ("eer", "auc", "tar_at_far_1pct", "tar_at_far_01pct")


@dataclass
class FoldResult:
    """One fold of :func:`cross_validate`.

    Attributes:
        fold: 0-based fold index.
        seed: the fold's seed (training and the test pairs' ``rng_seed``).
        train_people, val_people, test_people: the identities actually passed to training,
            early stopping and testing (pairwise disjoint).
        test: metrics on the test people's pairs.
        val: validation metrics of the kept weights.
        epochs: epochs trained; best_epoch: 0-based kept epoch.
        seconds: wall-clock seconds of training plus testing.
        stopped_reason: why training stopped.
    """

    fold: int
    seed: int
    train_people: list[str]
    val_people: list[str]
    test_people: list[str]
    test: Calibration
    val: Calibration
    epochs: int
    best_epoch: int
    seconds: float
    stopped_reason: StopReason


@dataclass
class CrossValidation:
    """Per-fold results and their mean and (population) standard deviation.

    Attributes:
        folds: one :class:`FoldResult` per fold.
        mean, std: over folds, for each of :data:`SUMMARY_METRICS` (rates in [0, 1]).
    """

    folds: list[FoldResult]
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)

    def summarise(self) -> None:
        """Fill :attr:`mean` and :attr:`std` from :attr:`folds`."""
        for name in SUMMARY_METRICS:
            values = np.array([getattr(f.test, name) for f in self.folds], dtype=np.float64)
            self.mean[name], self.std[name] = float(values.mean()), float(values.std())


def _split_validation(
    people: Sequence[str], val_fraction: float, rng: np.random.Generator
) -> tuple[list[str], list[str]]:
    """Hold ``val_fraction`` of ``people`` (at least 2, for negative pairs) out for validation."""
    n_val = max(2, round(val_fraction * len(people)))
    if len(people) - n_val < 2:
        raise ValueError(f"{len(people)} training people cannot spare {n_val} for validation")
    chosen = set(rng.choice(len(people), size=n_val, replace=False).tolist())
    train = [p for i, p in enumerate(people) if i not in chosen]
    return train, [p for i, p in enumerate(people) if i in chosen]


def _run_fold(
    fold: int,
    people: tuple[list[str], list[str], list[str]],
    samples: Sequence[FaceSample],
    seed: int,
    config: VerifierTrainConfig,
    device: torch.device | None,
    backbone: FaceBackbone | None = None,
) -> FoldResult:
    start = time.monotonic()
    train_ids, val_ids, test_ids = (set(p) for p in people)
    train = [s for s in samples if s.identity in train_ids]
    val = [s for s in samples if s.identity in val_ids]
    test = [s for s in samples if s.identity in test_ids]
    result = train_verifier(train, val, config, seed=seed, device=device, backbone=backbone)
    test_cal = evaluate_verifier(result.model, test, rng_seed=seed)
    return FoldResult(
        fold=fold,
        seed=seed,
        train_people=sorted({s.identity for s in train}),
        val_people=sorted({s.identity for s in val}),
        test_people=sorted({s.identity for s in test}),
        test=test_cal,
        val=result.calibration,
        epochs=len(result.history),
        best_epoch=result.best_epoch,
        seconds=time.monotonic() - start,
        stopped_reason=result.stopped_reason,
    )


def cross_validate(
    samples: Sequence[FaceSample],
    k: int = 5,
    config: VerifierTrainConfig = DEFAULT_VERIFIER_TRAIN_CONFIG,
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    on_fold: Callable[[FoldResult], None] | None = None,
    device: torch.device | None = None,
    backbone: FaceBackbone | None = None,
) -> CrossValidation:
    """People-disjoint k-fold evaluation of ``training.verification.train_verifier``.

    For each fold: its people are the test set; of the remaining people ``val_fraction``
    (at least 2) are held out for early stopping and the rest train the net. No person is
    ever in two of these roles within a fold.

    Args:
        samples: all faces, several people with several faces each.
        k: number of folds (``inference.pairs.people_disjoint_folds``).
        seed: seeds the folds, the validation split and each fold's training (``seed + fold``).
        val_fraction: share of each fold's training people held out as validation.
        config: how each fold's verifier is trained (``train_verifier``'s config).
        on_fold: called with each finished fold (e.g. to print it).
        device: where to train (default CPU).
        backbone: train a head on this frozen pretrained backbone in each fold.

    Returns:
        :class:`CrossValidation` with per-fold results and mean / std of the test metrics.
    """
    folds = people_disjoint_folds([s.identity for s in samples], k, seed=seed)
    rng = np.random.default_rng(seed)
    cv = CrossValidation(folds=[])
    for fold, (train_people, test_people) in enumerate(folds):
        train_ids, val_ids = _split_validation(train_people, val_fraction, rng)
        people = (train_ids, val_ids, test_people)
        cv.folds.append(_run_fold(fold, people, samples, seed + fold, config, device, backbone))
        if on_fold is not None:
            on_fold(cv.folds[-1])
    cv.summarise()
    return cv
