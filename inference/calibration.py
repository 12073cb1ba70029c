"""Detector scores a user can threshold: a calibration and a working threshold.

A YOLO confidence is trained toward P(object)·IoU, so it runs low, and how low depends on
the data: the same raw 0.25 can keep most boxes of one model and none of another. Two
things fitted on a validation split's matched detections
(:class:`inference.metrics.MatchedDetections`) fix that:

* **Calibration** (:class:`ScoreCalibration`): raw score -> the probability that a box with
  that score (and class) is a true positive at IoU 0.5. Fitted by isotonic regression
  (pool-adjacent-violators, :func:`pool_adjacent_violators`), per class when the class has
  at least ``min_outcomes`` true and false positives, else the curve of all classes. The
  curve is stored as breakpoints: each PAV block's mean score and its rate of true
  positives, linearly interpolated between blocks and flat beyond the ends ("centred"
  isotonic regression, Oron & Flournoy 2017): monotone like PAV, but strictly increasing
  between the ends, so thresholding the calibrated score keeps the same boxes as some raw
  threshold would (no ties created inside the range).
* **Working threshold** (:func:`best_f1`): the score that maximises F1 (IoU 0.5, greedy
  matching by score). It is chosen on the *calibrated* scale, the scale the endpoints
  filter on. On calibrated scores one threshold serves every class: the F1-optimal cut of
  calibrated probabilities is the same probability (about F1*/2) whatever the class.

Shapes: scores ``float (D,)`` in ``[0, 1]``, labels ``int64 (D,)``, outcomes ``bool (D,)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.metrics import MatchedDetections

__all__ = [
    "FORMAT_VERSION",
    "CalibrationUnreadable",
    "IsotonicCurve",
    "OperatingPoint",
    "ScoreCalibration",
    "ServingScores",
    "WorkingScores",
    "best_f1",
    "fit_isotonic",
    "fit_working_scores",
    "operating_point",
    "pool_adjacent_violators",
    "serving_scores",
]

FORMAT_VERSION = 1
FloatArray = npt.NDArray[np.float64]
# A class gets its own curve with at least this many true AND false positives: fewer give
# PAV a handful of blocks whose rates are mostly noise.
MIN_CLASS_OUTCOMES = 30
# The threshold of a model that stores no working threshold (YoloConfig's default).
DEFAULT_MIN_CONFIDENCE = 0.25
# Float32 scores carry ~1e-7 relative error: decoding this much below the analytic inverse
# keeps every box whose calibrated value reaches the threshold (the filter is exact after).
RAW_MARGIN = 1e-6
# Stored breakpoints keep 6 decimals: scores are float32 (~7 significant digits).
_DECIMALS = 6


class CalibrationUnreadable(ValueError):
    """Stored calibration JSON of another format version, or malformed."""


# ----------------------------------------------------------------------------- isotonic
def pool_adjacent_violators(
    y: npt.ArrayLike, w: npt.ArrayLike | None = None
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
    """Weighted least-squares non-decreasing fit of ``y`` in its given order.

    Args:
        y (float[N]): values in the order of the variable they should increase with.
        w (float[N]): positive weights (default all 1).

    Returns:
        ``(means (float64[B]), weights (float64[B]), starts (int64[B]))``: the fit's blocks,
        strictly increasing means (equal neighbours are pooled too), their summed weights,
        and the index in ``y`` where each block starts. The fit of ``y[i]`` is the mean of
        the block containing ``i``.
    """
    values = np.asarray(y, np.float64).reshape(-1)
    weights = np.ones_like(values) if w is None else np.asarray(w, np.float64).reshape(-1)
    means: list[float] = []
    sums: list[float] = []
    starts: list[int] = []
    for i, (v, wt) in enumerate(zip(values.tolist(), weights.tolist(), strict=True)):
        mean, total, start = v, wt, i
        while means and means[-1] >= mean:  # a violation (or a tie): pool with the last block
            prev_mean, prev_total = means.pop(), sums.pop()
            start = starts.pop()
            mean = (prev_mean * prev_total + mean * total) / (prev_total + total)
            total += prev_total
        means.append(mean)
        sums.append(total)
        starts.append(start)
    return np.array(means), np.array(sums), np.array(starts, np.int64)


@dataclass(frozen=True)
class IsotonicCurve:
    """A monotone map from raw score to probability, as breakpoints.

    Attributes:
        x (float64[K]): strictly increasing raw scores (each block's mean score).
        y (float64[K]): strictly increasing probabilities in ``[0, 1]`` (each block's rate).
        n: detections it was fitted on; ``positives``: how many were true positives.
    """

    x: FloatArray
    y: FloatArray
    n: int
    positives: int

    def __call__(self, scores: npt.ArrayLike) -> FloatArray:
        """Calibrated probabilities ``float64 (N,)`` of raw ``scores (N,)``."""
        return np.interp(np.asarray(scores, np.float64).reshape(-1), self.x, self.y)

    def raw_for(self, probability: float) -> float:
        """The lowest raw score mapped to ``probability`` or more (by the interpolation).

        ``-inf`` when every score reaches it, ``inf`` when none does. Float rounding can put
        the exact boundary a hair either side: callers filter the calibrated values again.
        """
        if probability <= self.y[0]:
            return -np.inf
        if probability > self.y[-1]:
            return np.inf
        i = int(np.searchsorted(self.y, probability, side="left"))  # y[i-1] < p <= y[i]
        x0, x1, y0, y1 = self.x[i - 1], self.x[i], self.y[i - 1], self.y[i]
        return float(x0 + (probability - y0) / (y1 - y0) * (x1 - x0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready breakpoints, rounded (a breakpoint whose score rounds onto the
        previous one's is dropped, so the stored scores stay strictly increasing)."""
        x, y = np.round(self.x, _DECIMALS), np.round(self.y, _DECIMALS)
        keep = np.append(True, np.diff(x) > 0)
        return {
            "x": x[keep].tolist(),
            "y": y[keep].tolist(),
            "n": self.n,
            "positives": self.positives,
        }

    @classmethod
    def from_dict(cls, raw: Any) -> IsotonicCurve:
        """Inverse of :meth:`to_dict`; :class:`CalibrationUnreadable` when malformed."""
        try:
            x = np.asarray(raw["x"], np.float64).reshape(-1)
            y = np.asarray(raw["y"], np.float64).reshape(-1)
            n, positives = int(raw["n"]), int(raw["positives"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationUnreadable(f"a calibration curve is malformed: {exc}") from None
        finite = len(x) == len(y) >= 1 and bool(np.isfinite(x).all() and np.isfinite(y).all())
        monotone = finite and bool((np.diff(x) > 0).all() and (np.diff(y) >= 0).all())
        if not monotone or y[0] < 0 or y[-1] > 1:
            raise CalibrationUnreadable("a calibration curve is not monotone in [0, 1]")
        return cls(x, y, n, positives)


def fit_isotonic(scores: npt.ArrayLike, outcomes: npt.ArrayLike) -> IsotonicCurve:
    """Centred isotonic regression of binary ``outcomes (N,)`` on ``scores (N,)``.

    Equal scores are pooled first (their order is arbitrary), then PAV runs on the groups'
    rates weighted by their sizes; each block becomes one breakpoint at its mean score.

    Raises:
        ValueError: no scores.
    """
    s = np.asarray(scores, np.float64).reshape(-1)
    o = np.asarray(outcomes, np.float64).reshape(-1)
    if len(s) == 0 or len(s) != len(o):
        raise ValueError("fit_isotonic needs as many outcomes as scores, at least one")
    order = np.argsort(s, kind="mergesort")
    s, o = s[order], o[order]
    unique, first, counts = np.unique(s, return_index=True, return_counts=True)
    hits = np.add.reduceat(o, first)
    means, sizes, starts = pool_adjacent_violators(hits / counts, counts)
    x = np.add.reduceat(unique * counts, starts) / sizes  # each block's mean score
    return IsotonicCurve(x, np.clip(means, 0.0, 1.0), n=len(s), positives=int(o.sum()))


# ----------------------------------------------------------------------------- per class
@dataclass(frozen=True)
class ScoreCalibration:
    """Raw detector scores -> probability of a true positive, per class where fitted.

    Attributes:
        overall: the curve of all classes' detections (for classes without their own).
        per_class: class index -> its own curve.
        score_floor: the lowest raw score in the fit: below it nothing was seen, so serving
            never returns boxes under it.
        min_outcomes: true and false positives a class needed for its own curve.
    """

    overall: IsotonicCurve
    per_class: Mapping[int, IsotonicCurve] = field(default_factory=dict)
    score_floor: float = 0.0
    min_outcomes: int = MIN_CLASS_OUTCOMES

    def curve(self, label: int) -> IsotonicCurve:
        """The curve class ``label`` uses."""
        return self.per_class.get(int(label), self.overall)

    def calibrate(self, scores: npt.ArrayLike, labels: npt.ArrayLike) -> FloatArray:
        """Calibrated confidences ``float64 (N,)`` of raw ``scores (N,)`` of ``labels (N,)``."""
        s = np.asarray(scores, np.float64).reshape(-1)
        lab = np.asarray(labels, np.int64).reshape(-1)
        out = self.overall(s)
        for c, curve in self.per_class.items():
            mine = lab == c
            out[mine] = curve(s[mine])
        return out

    def raw_threshold(self, confidence: float) -> float:
        """The raw score to decode at so that every box any class maps to ``confidence``
        or more survives (:data:`RAW_MARGIN` below the inverse, never below
        :attr:`score_floor`, at most 1): the calibrated filter then decides exactly."""
        curves = [self.overall, *self.per_class.values()]
        lowest = min(c.raw_for(confidence) for c in curves) - RAW_MARGIN
        return float(min(1.0, max(self.score_floor, lowest)))

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON (breakpoints), with :data:`FORMAT_VERSION`."""
        return {
            "format": FORMAT_VERSION,
            "method": "centred isotonic regression (PAV), P(true positive at IoU 0.5)",
            "score_floor": self.score_floor,
            "min_outcomes": self.min_outcomes,
            "overall": self.overall.to_dict(),
            "per_class": {str(c): v.to_dict() for c, v in sorted(self.per_class.items())},
        }

    @classmethod
    def from_dict(cls, raw: Any) -> ScoreCalibration:
        """Inverse of :meth:`to_dict`.

        Raises:
            CalibrationUnreadable: another format version, or malformed.
        """
        if not isinstance(raw, Mapping) or raw.get("format") != FORMAT_VERSION:
            found = raw.get("format") if isinstance(raw, Mapping) else type(raw).__name__
            raise CalibrationUnreadable(
                f"score calibration format {found!r}; this code reads format {FORMAT_VERSION}"
            )
        try:
            per_class = {int(k): IsotonicCurve.from_dict(v) for k, v in raw["per_class"].items()}
            floor, min_outcomes = float(raw["score_floor"]), int(raw["min_outcomes"])
            overall = IsotonicCurve.from_dict(raw["overall"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, CalibrationUnreadable):
                raise
            raise CalibrationUnreadable(f"score calibration is malformed: {exc!r}") from None
        return cls(overall, per_class, floor, min_outcomes)


# ----------------------------------------------------------------------------- thresholds
@dataclass(frozen=True)
class OperatingPoint:
    """Precision, recall and F1 of the detections scoring at least ``threshold``.

    Attributes:
        threshold: the score cut (kept: ``score >= threshold``).
        true_positives, false_positives: among the kept detections; ``n_gt``: ground truth.
    """

    threshold: float
    precision: float
    recall: float
    f1: float
    true_positives: int
    false_positives: int
    n_gt: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "threshold": self.threshold,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "n_gt": self.n_gt,
        }


def _point(threshold: float, tp: int, fp: int, n_gt: int) -> OperatingPoint:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / n_gt if n_gt else 0.0
    f1 = 2 * tp / (tp + fp + n_gt) if tp + fp + n_gt else 0.0  # = 2PR / (P + R)
    return OperatingPoint(float(threshold), precision, recall, f1, tp, fp, n_gt)


def operating_point(
    scores: npt.ArrayLike, true_positive: npt.ArrayLike, n_gt: int, threshold: float
) -> OperatingPoint:
    """The operating point of detections ``scores (D,)`` with outcomes ``(D,)`` at a cut."""
    s = np.asarray(scores, np.float64).reshape(-1)
    hit = np.asarray(true_positive, bool).reshape(-1)
    keep = s >= threshold
    tp = int(hit[keep].sum())
    return _point(threshold, tp, int(keep.sum()) - tp, n_gt)


def best_f1(scores: npt.ArrayLike, true_positive: npt.ArrayLike, n_gt: int) -> OperatingPoint:
    """The cut that maximises F1; among equal F1s the highest cut (fewest boxes).

    Every distinct score is a candidate cut, so the result is exact on these detections.
    Without any true positive, F1 is 0 at every cut and the highest score is returned.

    Args:
        scores (float[D]), true_positive (bool[D]): detections and their outcomes.
        n_gt: ground-truth boxes the detections could have found.
    """
    s = np.asarray(scores, np.float64).reshape(-1)
    hit = np.asarray(true_positive, bool).reshape(-1)
    if len(s) == 0:
        return _point(1.0, 0, 0, n_gt)
    order = np.argsort(-s, kind="mergesort")
    s, hit = s[order], hit[order]
    tp = np.cumsum(hit)
    fp = np.arange(1, len(s) + 1) - tp
    # A cut keeps every detection with an equal score: only the last of each tie is a cut.
    last = np.flatnonzero(np.append(s[1:] != s[:-1], True))
    f1 = 2 * tp[last] / (tp[last] + fp[last] + n_gt)
    i = int(last[int(np.argmax(f1))])
    return _point(s[i], int(tp[i]), int(fp[i]), n_gt)


# ----------------------------------------------------------------------------- together
@dataclass(frozen=True)
class WorkingScores:
    """What a detector version stores so that its scores can be thresholded.

    Attributes:
        calibration: raw -> calibrated confidence.
        threshold: the working threshold on the CALIBRATED scale (max F1, all classes).
        per_class: class index -> its own max-F1 cut on the calibrated scale.
        raw_threshold: the max-F1 cut on RAW scores, for readers without the calibration.
        split: the split they were fitted on.
    """

    calibration: ScoreCalibration
    threshold: OperatingPoint
    per_class: dict[int, OperatingPoint]
    raw_threshold: OperatingPoint
    split: str = "val"

    def serving(self) -> ServingScores:
        """How a version storing these serves its scores."""
        return ServingScores(self.calibration, self.threshold.threshold, "calibrated", "max_f1")

    def to_metrics(self) -> dict[str, Any]:
        """The keys a detector version's ``metrics`` carries (see the README)."""
        return {
            "threshold": self.threshold.threshold,
            "threshold_rule": "max_f1",
            "threshold_scale": "calibrated",
            "threshold_split": self.split,
            "threshold_point": self.threshold.to_dict(),
            "threshold_raw": self.raw_threshold.threshold,
            "per_class_threshold": {str(c): p.to_dict() for c, p in sorted(self.per_class.items())},
            "score_calibration": self.calibration.to_dict(),
        }


def fit_working_scores(
    matched: MatchedDetections,
    *,
    split: str = "val",
    min_outcomes: int = MIN_CLASS_OUTCOMES,
    score_floor: float | None = None,
) -> WorkingScores | None:
    """Calibration and working thresholds from one split's matched detections.

    Args:
        matched: detections of the split at a low score floor (e.g. 0.001) with outcomes.
        min_outcomes: true and false positives a class needs for its own curve.
        score_floor: the decoder's threshold the detections were made with (default their
            lowest score).

    Returns:
        ``None`` when no detection is a true positive: there is nothing to calibrate on.
    """
    hit = matched.true_positive
    if not hit.any():
        return None
    per_class_curves = {}
    for c in sorted(set(matched.labels.tolist())):
        mine = matched.of_class(c)
        positives = int(mine.true_positive.sum())
        if min(positives, len(mine) - positives) >= min_outcomes:
            per_class_curves[c] = fit_isotonic(mine.scores, mine.true_positive)
    floor = float(matched.scores.min()) if score_floor is None else float(score_floor)
    calibration = ScoreCalibration(
        fit_isotonic(matched.scores, hit), per_class_curves, floor, min_outcomes
    )
    confidence = calibration.calibrate(matched.scores, matched.labels)
    per_class = {}
    for c, n_gt in sorted(matched.n_gt.items()):
        if n_gt == 0:  # no F1 to maximise: the class only ever appears as false positives
            continue
        mine = matched.labels == c
        per_class[c] = best_f1(confidence[mine], hit[mine], n_gt)
    return WorkingScores(
        calibration,
        best_f1(confidence, hit, matched.total_gt),
        per_class,
        best_f1(matched.scores, hit, matched.total_gt),
        split,
    )


# ----------------------------------------------------------------------------- serving
@dataclass(frozen=True)
class ServingScores:
    """How a stored detector version's scores are served.

    Attributes:
        calibration: ``None``: the version has none (or an unreadable one) and serves raw
            scores.
        threshold: the working threshold, on :attr:`scale`.
        scale: "calibrated" or "raw": what ``confidence`` and every ``min_confidence`` mean.
        rule: where the threshold comes from: "max_f1" (on the calibrated scale),
            "max_f1_raw" (the raw max-F1 cut of a version whose calibration cannot be read)
            or "model_default" (the checkpoint config's ``score_threshold``).
    """

    calibration: ScoreCalibration | None
    threshold: float
    scale: str
    rule: str

    def confidences(self, scores: npt.ArrayLike, labels: npt.ArrayLike) -> FloatArray:
        """Confidences ``float64 (N,)`` on :attr:`scale` of raw ``scores (N,)``."""
        if self.calibration is None:
            return np.asarray(scores, np.float64).reshape(-1)
        return self.calibration.calibrate(scores, labels)

    def raw_threshold(self, min_confidence: float) -> float:
        """The raw score to decode at for ``min_confidence`` on :attr:`scale`."""
        if self.calibration is None:
            return float(min_confidence)
        return self.calibration.raw_threshold(min_confidence)


def _probability(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok and 0.0 <= value <= 1.0 else None


def serving_scores(metrics: Any, config: Any = None) -> ServingScores:
    """Read a version's ``metrics`` (and checkpoint ``config``) into :class:`ServingScores`.

    The calibrated scale needs both ``score_calibration`` (readable) and ``threshold``;
    otherwise raw scores are served with ``threshold_raw``, else the config's
    ``score_threshold``, else :data:`DEFAULT_MIN_CONFIDENCE`.
    """
    metrics = metrics if isinstance(metrics, Mapping) else {}
    threshold = _probability(metrics.get("threshold"))
    try:
        calibration = ScoreCalibration.from_dict(metrics["score_calibration"])
    except (KeyError, CalibrationUnreadable):
        calibration = None
    if calibration is not None and threshold is not None:
        return ServingScores(calibration, threshold, "calibrated", "max_f1")
    raw = _probability(metrics.get("threshold_raw"))
    if raw is not None:
        return ServingScores(None, raw, "raw", "max_f1_raw")
    config = config if isinstance(config, Mapping) else {}
    default = _probability(config.get("score_threshold"))
    return ServingScores(
        None, DEFAULT_MIN_CONFIDENCE if default is None else default, "raw", "model_default"
    )


def raw_working_threshold(metrics: Any, config: Any = None) -> float:
    """The raw score at a version's working threshold (see :func:`serving_scores`): the bar
    for callers that read raw scores, such as the face search."""
    scores = serving_scores(metrics, config)
    return scores.raw_threshold(scores.threshold)
