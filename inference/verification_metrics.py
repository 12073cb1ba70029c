"""Verification metrics from pair distances: ROC, AUC, EER, TAR at a FAR, calibration.

Conventions used throughout:

- ``distances (N,)``: one per pair, smaller = more alike.
- ``same (N,)``: True when the pair is one person. (Pair sampling uses the notes' ``y``
  with 0 = same, so ``same = (y == 0)``.)
- A pair is **accepted** as the same person when ``distance < threshold`` (strictly), the
  rule ``inference.recognize`` applies: "unknown" when the best distance is ``>= threshold``.
- FAR (false accept rate) = accepted different-person pairs / all different-person pairs;
  TAR (true accept rate) = accepted same-person pairs / all same-person pairs; FRR = 1 - TAR.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, overload

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
RocArrays = tuple[FloatArray, FloatArray, FloatArray]


def _validate(
    distances: npt.ArrayLike, same: npt.ArrayLike
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    d = np.asarray(distances, dtype=np.float64)
    s = np.asarray(same).astype(bool)
    if d.ndim != 1 or d.shape != s.shape:
        raise ValueError(f"expected distances (N,) and same (N,), got {d.shape} and {s.shape}")
    if not np.all(np.isfinite(d)):
        raise ValueError("distances must be finite")
    if not s.any() or s.all():
        raise ValueError("need at least one same-person and one different-person pair")
    return d, s


def roc_curve(distances: npt.ArrayLike, same: npt.ArrayLike) -> RocArrays:
    """ROC over every distinct threshold.

    Args:
        distances: ``(N,)`` pair distances.
        same: ``(N,)`` bool, True for same-person pairs (both kinds must be present).

    Returns:
        ``far (K+1,)``, ``tar (K+1,)``, ``thresholds (K+1,)`` for ``K`` distinct distances,
        by increasing threshold: point ``i`` is "accept ``distance < thresholds[i]``". The
        first point accepts nothing (0, 0); the last accepts everything (1, 1) with a
        threshold just above the largest distance. ``far`` and ``tar`` never decrease.
    """
    d, s = _validate(distances, same)
    order = np.argsort(d, kind="stable")
    d_sorted, s_sorted = d[order], s[order]
    true_accepts = np.cumsum(s_sorted)  # (N,) same pairs with distance <= d_sorted[i]
    false_accepts = np.cumsum(~s_sorted)
    # Ties must be accepted together, so keep only the last index of each run of equal values.
    run_ends = np.flatnonzero(np.diff(d_sorted) > 0)
    last = np.append(run_ends, len(d_sorted) - 1)
    tar = np.concatenate([[0.0], true_accepts[last] / s.sum()])
    far = np.concatenate([[0.0], false_accepts[last] / (~s).sum()])
    # "distance <= d_sorted[end]" is "distance < next distinct value" under a strict rule.
    thresholds = np.concatenate(
        [[d_sorted[0]], d_sorted[run_ends + 1], [np.nextafter(d_sorted[-1], np.inf)]]
    )
    return far, tar, thresholds


def auc(distances: npt.ArrayLike, same: npt.ArrayLike) -> float:
    """Area under the ROC (TAR against FAR), by the trapezoid rule.

    Equals the probability that a random same-person pair is closer than a random
    different-person pair, ties counting one half. 1 is perfect, 0.5 is chance.

    Args:
        distances: ``(N,)`` pair distances.
        same: ``(N,)`` bool.

    Returns:
        AUC in [0, 1].
    """
    far, tar, _ = roc_curve(distances, same)
    return float(np.trapezoid(tar, far))


def _eer_from_roc(far: FloatArray, tar: FloatArray, thresholds: FloatArray) -> tuple[float, float]:
    frr = 1.0 - tar
    gap = far - frr  # -1 at the first point, +1 at the last, never decreasing
    i = int(np.argmax(gap >= 0))  # first point where FAR has caught up with FRR
    if i == 0 or gap[i] == 0:
        return float(far[i]), float(thresholds[i])
    # FAR and FRR cross between points i-1 and i: interpolate both linearly to the crossing.
    alpha = -gap[i - 1] / (gap[i] - gap[i - 1])
    rate = far[i - 1] + alpha * (far[i] - far[i - 1])
    threshold = thresholds[i - 1] + alpha * (thresholds[i] - thresholds[i - 1])
    return float(rate), float(threshold)


def eer(distances: npt.ArrayLike, same: npt.ArrayLike) -> tuple[float, float]:
    """Equal error rate: where FAR equals FRR, linearly interpolated between ROC points.

    Args:
        distances: ``(N,)`` pair distances.
        same: ``(N,)`` bool.

    Returns:
        ``(eer, threshold)``: the rate in [0, 1] and the distance threshold (accept
        ``distance < threshold``) interpolated the same way. With perfectly separated
        distances the EER is 0 and the threshold is the middle of the gap between the
        largest same-person and the smallest different-person distance (see
        :func:`_gap_middle`).
    """
    d, s = _validate(distances, same)
    rate, threshold = _eer_from_roc(*roc_curve(d, s))
    return rate, _gap_middle(d, s, rate, threshold)


def _gap_middle(d: FloatArray, s: npt.NDArray[np.bool_], rate: float, threshold: float) -> float:
    """The EER threshold, moved to the middle of the gap when the pairs are separated.

    Every threshold in the gap gives EER 0 on these pairs; the interpolation lands on its
    upper edge (the closest different-person pair), the loosest of them, which accepts the
    first stranger who comes a little closer. A pretrained backbone separates a few
    validation people perfectly, so this is the common case there: the middle leaves the same
    room on both sides for people not seen yet.
    """
    if rate > 0 or not s.any() or s.all():
        return threshold
    largest_same, smallest_different = float(d[s].max()), float(d[~s].min())
    if largest_same >= smallest_different:
        return threshold
    return (largest_same + smallest_different) / 2.0


def _operating_point(far: FloatArray, far_target: float) -> int:
    """Index of the most accepting ROC point whose FAR is still <= ``far_target``."""
    if not 0.0 <= far_target <= 1.0:
        raise ValueError(f"far_target must be in [0, 1], got {far_target}")
    return int(np.searchsorted(far, far_target, side="right")) - 1


def tar_at_far(distances: npt.ArrayLike, same: npt.ArrayLike, far_target: float) -> float:
    """Best TAR among thresholds whose FAR is at most ``far_target`` (no interpolation).

    Conservative on purpose: a threshold chosen from it really achieves this FAR or less on
    the evaluated pairs. With ``n`` different-person pairs, FAR steps are ``1 / n``, so
    FAR 0.1% needs thousands of them to mean much.

    Args:
        distances: ``(N,)`` pair distances.
        same: ``(N,)`` bool.
        far_target: e.g. 0.01 or 0.001.

    Returns:
        TAR in [0, 1].
    """
    far, tar, _ = roc_curve(distances, same)
    return float(tar[_operating_point(far, far_target)])


def threshold_for_far(distances: npt.ArrayLike, same: npt.ArrayLike, far_target: float) -> float:
    """The most accepting threshold whose FAR is at most ``far_target``.

    Args:
        distances: ``(N,)`` pair distances.
        same: ``(N,)`` bool.
        far_target: e.g. 0.01.

    Returns:
        Distance threshold (accept ``distance < threshold``); its TAR is :func:`tar_at_far`.
    """
    far, _, thresholds = roc_curve(distances, same)
    return float(thresholds[_operating_point(far, far_target)])


# The similarity every answer reports at the verifier's calibrated threshold. CompreFace
# clients treat 0.8-0.9 as "the same person"; anchoring our threshold in the middle of that
# range keeps their cut-offs meaningful: 0.9 asks for a little more than our threshold
# (distance 0.89 t), 0.8 for a little less (1.09 t).
SIMILARITY_AT_THRESHOLD = 0.85
SIMILARITY_SHARPNESS = 4.0


@overload
def distance_to_similarity(
    distance: float, threshold: float, *, sharpness: float = ...
) -> float: ...


@overload
def distance_to_similarity(
    distance: npt.NDArray[np.floating], threshold: float, *, sharpness: float = ...
) -> FloatArray: ...


def distance_to_similarity(
    distance: float | npt.NDArray[np.floating],
    threshold: float,
    *,
    sharpness: float = SIMILARITY_SHARPNESS,
) -> float | FloatArray:
    """Map a distance to the similarity in [0, 1] that every face answer reports.

    ``s(d) = 1 / (1 + c * (d / t) ** k)`` with ``c = (1 - 0.85) / 0.85``, so ``s(0) = 1``,
    ``s(t) = SIMILARITY_AT_THRESHOLD = 0.85`` exactly at the verifier's calibrated threshold
    ``t``, strictly decreasing, towards 0 far away. It depends only on ``d / t`` and so means
    the same for every model and backbone. With ``k = 4``: ``d = t/2`` -> 0.989, ``0.89 t`` ->
    0.90, ``1.09 t`` -> 0.80, ``1.5 t`` -> 0.53, ``2 t`` -> 0.26. ``t`` is always the
    verification threshold, also in 1:K answers, whose stricter cut-off is reported as a
    similarity on this same scale. A score for people and CompreFace clients to read, not a
    calibrated probability.

    Args:
        distance: a distance or an array of them (>= 0).
        threshold: the verifier's calibrated (verification) threshold, > 0.
        sharpness: exponent ``k``; larger makes the drop around the threshold steeper.

    Returns:
        Similarity of the same shape (a float for a float).
    """
    if threshold <= 0 or sharpness <= 0:
        raise ValueError(f"threshold and sharpness must be > 0, got {threshold}, {sharpness}")
    c = (1.0 - SIMILARITY_AT_THRESHOLD) / SIMILARITY_AT_THRESHOLD
    ratio = np.maximum(np.asarray(distance, dtype=np.float64), 0.0) / threshold
    with np.errstate(over="ignore"):  # ratio ** k overflowing to inf gives similarity 0
        similarity = 1.0 / (1.0 + c * ratio**sharpness)
    if np.ndim(distance) == 0 and not isinstance(distance, np.ndarray):
        return float(similarity)
    return np.asarray(similarity, dtype=np.float64)


@dataclass(frozen=True)
class Calibration:
    """Everything a verifier's report page shows, as JSON-friendly numbers and lists.

    Thresholds are distances with the rule "accept ``distance < threshold``".
    """

    eer: float
    eer_threshold: float
    auc: float
    tar_at_far_1pct: float
    threshold_far_1pct: float
    tar_at_far_01pct: float
    threshold_far_01pct: float
    n_same: int
    n_different: int
    roc_far: list[float]  # ~200 points by increasing threshold, for charts
    roc_tar: list[float]
    roc_thresholds: list[float]
    hist_edges: list[float]  # (bins + 1,) shared by both histograms
    hist_same: list[int]  # (bins,) same-person pair counts
    hist_different: list[int]  # (bins,) different-person pair counts

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


def _downsample(n_points: int, n_wanted: int, keep: list[int]) -> npt.NDArray[np.int64]:
    """About ``n_wanted`` indices spread evenly over ``n_points``, always with ``keep``."""
    even = np.rint(np.linspace(0, n_points - 1, max(2, n_wanted))).astype(np.int64)
    return np.unique(np.concatenate([even, np.asarray(keep, dtype=np.int64)]))


def calibrate(
    distances: npt.ArrayLike, same: npt.ArrayLike, *, roc_points: int = 200, bins: int = 40
) -> Calibration:
    """Measure a verifier on evaluation pairs and bundle the numbers and chart data.

    Args:
        distances: ``(N,)`` pair distances from held-out people.
        same: ``(N,)`` bool, True for same-person pairs.
        roc_points: about how many ROC points to keep for charts (the operating points for
            FAR 1% and 0.1% are always kept).
        bins: number of histogram bins over the range of all distances.

    Returns:
        A :class:`Calibration`.
    """
    d, s = _validate(distances, same)
    far, tar, thresholds = roc_curve(d, s)
    eer_rate, eer_threshold = _eer_from_roc(far, tar, thresholds)
    eer_threshold = _gap_middle(d, s, eer_rate, eer_threshold)
    at_1pct, at_01pct = _operating_point(far, 0.01), _operating_point(far, 0.001)
    keep = _downsample(len(far), roc_points, [at_1pct, at_01pct])
    edges = np.histogram_bin_edges(d, bins=bins)
    return Calibration(
        eer=eer_rate,
        eer_threshold=eer_threshold,
        auc=float(np.trapezoid(tar, far)),
        tar_at_far_1pct=float(tar[at_1pct]),
        threshold_far_1pct=float(thresholds[at_1pct]),
        tar_at_far_01pct=float(tar[at_01pct]),
        threshold_far_01pct=float(thresholds[at_01pct]),
        n_same=int(s.sum()),
        n_different=int((~s).sum()),
        roc_far=far[keep].tolist(),
        roc_tar=tar[keep].tolist(),
        roc_thresholds=thresholds[keep].tolist(),
        hist_edges=edges.tolist(),
        hist_same=np.histogram(d[s], bins=edges)[0].tolist(),
        hist_different=np.histogram(d[~s], bins=edges)[0].tolist(),
    )
