"""Detection metrics that reproduce pycocotools' COCOeval (bbox, area "all").

Matching follows COCOeval exactly: per image and class, detections sorted by score
(stable), at most ``max_dets`` of them; each detection, best score first, takes the
still-unmatched ground truth with the highest IoU >= threshold (ties go to the later
ground truth, as in COCOeval). Per class, all images' detections are then sorted by score,
cumulative precision/recall computed, precision made monotone, and sampled at the 101
recall points ``0, 0.01, ..., 1`` (COCO's interpolated AP). A class without ground truth
has no AP and is left out of the means, like COCOeval's ``-1`` entries.

Precision, recall and F1 at a score threshold use the same matching at IoU 0.5, micro
averaged over classes. :attr:`DetectionMetrics.matched` keeps every evaluated detection's
score, class and whether that matching made it a true positive, for choosing a threshold
and fitting a calibration (:mod:`inference.calibration`) on the same matches.

Inputs are per image lists of xyxy pixel boxes, scores and integer labels, as numpy
arrays or torch tensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "DetectionMetrics",
    "MatchedDetections",
    "PRCurve",
    "downsample_curve",
    "evaluate_detections",
    "iou_matrix",
]

FloatArray = npt.NDArray[np.float64]
# Same arrays as pycocotools.cocoeval.Params, so sampling is bit-identical.
IOU_THRESHOLDS: FloatArray = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1)
RECALL_POINTS: FloatArray = np.linspace(0.0, 1.0, int(np.round(1.0 / 0.01)) + 1)


@dataclass
class PRCurve:
    """Raw precision/recall points of one class at IoU 0.5, one per detection by score.

    Attributes:
        recall (float64[D]): cumulative recall after each detection.
        precision (float64[D]): cumulative precision after each detection (not interpolated).
        scores (float64[D]): score of each detection, decreasing.
    """

    recall: FloatArray
    precision: FloatArray
    scores: FloatArray


def downsample_curve(curve: PRCurve, max_points: int = 200) -> PRCurve:
    """About ``max_points`` points of ``curve`` for a chart, evenly by detection rank.

    The first and last points are always kept (the curve's start and the recall it
    reaches), so the chart neither starts late nor stops short.

    Args:
        curve: a :class:`PRCurve` with D points.
        max_points: at least 2.

    Returns:
        A :class:`PRCurve` of min(D, ~max_points) points, in the original order.
    """
    n = len(curve.recall)
    if n <= max_points:
        return curve
    keep = np.unique(np.rint(np.linspace(0, n - 1, max(2, max_points))).astype(np.int64))
    return PRCurve(curve.recall[keep], curve.precision[keep], curve.scores[keep])


@dataclass(frozen=True)
class MatchedDetections:
    """Every evaluated detection and its outcome at IoU 0.5, in no particular order.

    Greedy matching by score means a detection's outcome does not depend on lower-scored
    detections, so the subset at any score threshold has the same outcomes (that is what
    makes thresholds and calibrations fitted on these arrays valid for the kept boxes).

    Attributes:
        scores (float64[D]): the detector's scores.
        labels (int64[D]): class indices.
        true_positive (bool[D]): matched an unmatched ground truth of its class, IoU >= 0.5.
        n_gt: class index -> ground-truth boxes of that class (every class seen, maybe 0).
    """

    scores: FloatArray
    labels: npt.NDArray[np.int64]
    true_positive: npt.NDArray[np.bool_]
    n_gt: dict[int, int]

    @classmethod
    def empty(cls) -> MatchedDetections:
        """No detections and no ground truth."""
        return cls(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, bool), {})

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def total_gt(self) -> int:
        """Ground-truth boxes of every class."""
        return sum(self.n_gt.values())

    def of_class(self, label: int) -> MatchedDetections:
        """The detections of class ``label`` and that class's ground-truth count."""
        keep = self.labels == label
        return MatchedDetections(
            self.scores[keep],
            self.labels[keep],
            self.true_positive[keep],
            {label: self.n_gt.get(label, 0)},
        )


@dataclass
class DetectionMetrics:
    """Summary of a detection evaluation.

    Attributes:
        map50: mean over classes (with ground truth) of AP at IoU 0.5.
        map50_95: mean AP over IoU thresholds 0.50:0.05:0.95 and classes.
        per_class_ap50: class index -> AP at IoU 0.5 (classes with ground truth only).
        per_class_ap50_95: class index -> AP averaged over the 10 IoU thresholds.
        precision, recall, f1: at ``score_threshold`` and IoU 0.5, micro-averaged.
        score_threshold: the threshold used for precision/recall/F1.
        pr_curves: class index -> :class:`PRCurve` at IoU 0.5, for charts.
        matched: every evaluated detection with its outcome at IoU 0.5 (not in
            :meth:`to_dict`: it has one entry per detection).
    """

    map50: float
    map50_95: float
    per_class_ap50: dict[int, float]
    per_class_ap50_95: dict[int, float]
    precision: float
    recall: float
    f1: float
    score_threshold: float
    pr_curves: dict[int, PRCurve] = field(default_factory=dict)
    matched: MatchedDetections = field(default_factory=MatchedDetections.empty)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (curves as plain lists)."""
        return {
            "map50": self.map50,
            "map50_95": self.map50_95,
            "per_class_ap50": {str(k): v for k, v in self.per_class_ap50.items()},
            "per_class_ap50_95": {str(k): v for k, v in self.per_class_ap50_95.items()},
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "score_threshold": self.score_threshold,
            "pr_curves": {
                str(k): {"recall": c.recall.tolist(), "precision": c.precision.tolist()}
                for k, c in self.pr_curves.items()
            },
        }


def _np(x: Any, dtype: type, shape_tail: tuple[int, ...] = ()) -> npt.NDArray[Any]:
    """Tensor / array / list -> numpy array of ``dtype`` (CPU, detached)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr: npt.NDArray[Any] = np.asarray(x, dtype=dtype)
    return arr.reshape((-1, *shape_tail)) if shape_tail else arr.reshape(-1)


def iou_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """Pairwise IoU of xyxy boxes, the way pycocotools computes it (no +1 on sizes).

    Args:
        a (float64[N, 4]), b (float64[M, 4]): xyxy in pixels.

    Returns:
        float64[N, M] IoU; 0 where boxes do not overlap.
    """
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inter > 0, inter / np.where(union > 0, union, 1), 0.0)


def _match(ious: FloatArray, thresholds: FloatArray) -> npt.NDArray[np.bool_]:
    """COCO greedy matching of score-sorted detections: (D, G) IoU -> matched (T, D)."""
    n_t, (n_d, n_g) = len(thresholds), ious.shape
    matched = np.zeros((n_t, n_d), dtype=bool)
    gt_taken = np.zeros((n_t, n_g), dtype=bool)
    if n_g == 0:
        return matched
    thr = np.minimum(thresholds, 1 - 1e-10)[:, None]  # (T, 1), as COCOeval
    for d in range(n_d):
        cand = np.where(~gt_taken & (ious[d][None, :] >= thr), ious[d][None, :], -1.0)  # (T, G)
        # COCOeval replaces the current best on ">=", so the LAST of equal IoUs wins.
        best = n_g - 1 - np.argmax(cand[:, ::-1], axis=1)  # (T,)
        ok = cand[np.arange(n_t), best] >= 0
        matched[ok, d] = True
        gt_taken[np.flatnonzero(ok), best[ok]] = True
    return matched


@dataclass
class _ClassStats:
    scores: list[FloatArray] = field(default_factory=list)
    matched: list[npt.NDArray[np.bool_]] = field(default_factory=list)  # (T, D) per image
    n_gt: int = 0


def _ap(
    scores: FloatArray, matched: npt.NDArray[np.bool_], n_gt: int
) -> tuple[FloatArray, PRCurve]:
    """101-point interpolated AP per IoU threshold: -> (T,) APs and the IoU=0.5 curve."""
    order = np.argsort(-scores, kind="mergesort")
    tp = np.cumsum(matched[:, order], axis=1, dtype=np.float64)  # (T, D)
    fp = np.cumsum(~matched[:, order], axis=1, dtype=np.float64)
    recall = tp / n_gt
    precision = tp / (tp + fp + np.spacing(1))
    aps = np.zeros(len(matched))
    for t in range(len(matched)):
        # Monotone envelope from the right, then sample at the recall points.
        env = np.maximum.accumulate(precision[t][::-1])[::-1]
        idx = np.searchsorted(recall[t], RECALL_POINTS, side="left")
        sampled = np.zeros(len(RECALL_POINTS))
        valid = idx < len(env)
        sampled[valid] = env[idx[valid]]
        aps[t] = sampled.mean()
    return aps, PRCurve(recall[0], precision[0], scores[order])


def _collect(
    predictions: Sequence[Mapping[str, Any]],
    ground_truths: Sequence[Mapping[str, Any]],
    max_dets: int,
) -> dict[int, _ClassStats]:
    """Match every image and class; returns per class scores, matches, gt count."""
    stats: dict[int, _ClassStats] = {}
    for pred, gt in zip(predictions, ground_truths, strict=True):
        p_boxes, p_scores = _np(pred["boxes"], np.float64, (4,)), _np(pred["scores"], np.float64)
        p_labels = _np(pred["labels"], np.int64)
        g_boxes, g_labels = _np(gt["boxes"], np.float64, (4,)), _np(gt["labels"], np.int64)
        for c in np.union1d(p_labels, g_labels).tolist():
            st = stats.setdefault(int(c), _ClassStats())
            g = g_boxes[g_labels == c]
            sel = np.flatnonzero(p_labels == c)
            sel = sel[np.argsort(-p_scores[sel], kind="mergesort")][:max_dets]
            st.n_gt += len(g)
            st.scores.append(p_scores[sel])
            st.matched.append(_match(iou_matrix(p_boxes[sel], g), IOU_THRESHOLDS))
    return stats


def _prf(stats: dict[int, _ClassStats], score_threshold: float) -> tuple[float, float, float]:
    """Micro precision, recall and F1 at IoU 0.5 for detections >= score_threshold."""
    # Matching at a threshold only sees the kept detections, but since detections are
    # matched best score first, dropping the low scores does not change earlier matches.
    tp = fp = n_gt = 0
    for st in stats.values():
        n_gt += st.n_gt
        for s, m in zip(st.scores, st.matched, strict=True):
            keep = s >= score_threshold
            tp += int(m[0][keep].sum())
            fp += int((~m[0][keep]).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / n_gt if n_gt else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _matched(stats: dict[int, _ClassStats]) -> MatchedDetections:
    """Flatten the per image and class matches at IoU 0.5 into one set of arrays."""
    scores, labels, hits = [np.zeros(0)], [np.zeros(0, np.int64)], [np.zeros(0, bool)]
    for c, st in sorted(stats.items()):
        for s, m in zip(st.scores, st.matched, strict=True):
            scores.append(s)
            labels.append(np.full(len(s), c, np.int64))
            hits.append(m[0])
    return MatchedDetections(
        np.concatenate(scores),
        np.concatenate(labels),
        np.concatenate(hits),
        {c: st.n_gt for c, st in sorted(stats.items())},
    )


def evaluate_detections(
    predictions: Sequence[Mapping[str, Any]],
    ground_truths: Sequence[Mapping[str, Any]],
    *,
    max_dets: int = 100,
    score_threshold: float = 0.25,
) -> DetectionMetrics:
    """COCO-style mAP plus precision/recall/F1 of a set of images.

    Args:
        predictions: per image ``{"boxes": [D, 4] xyxy px, "scores": [D], "labels": [D]}``.
        ground_truths: per image ``{"boxes": [G, 4] xyxy px, "labels": [G]}`` (same order).
        max_dets: detections kept per image *and class*, highest scores first, like
            COCOeval's ``maxDets`` (raise it for crowded images, e.g. 300).
        score_threshold: for precision / recall / F1 only; mAP uses every score.

    Returns:
        :class:`DetectionMetrics`. With no ground truth at all, the means are 0.0. Its
        ``matched`` holds the detections kept by ``max_dets``, whatever their score.
    """
    if len(predictions) != len(ground_truths):
        raise ValueError("predictions and ground_truths must have one entry per image")
    stats = _collect(predictions, ground_truths, max_dets)
    ap50: dict[int, float] = {}
    ap50_95: dict[int, float] = {}
    curves: dict[int, PRCurve] = {}
    all_aps: list[FloatArray] = []
    for c in sorted(stats):
        st = stats[c]
        if st.n_gt == 0:  # COCOeval marks these -1 and leaves them out of every mean
            continue
        aps, curves[c] = _ap(np.concatenate(st.scores), np.concatenate(st.matched, axis=1), st.n_gt)
        ap50[c], ap50_95[c] = float(aps[0]), float(aps.mean())
        all_aps.append(aps)
    precision, recall, f1 = _prf(stats, score_threshold)
    return DetectionMetrics(
        map50=float(np.mean(list(ap50.values()))) if ap50 else 0.0,
        map50_95=float(np.mean(all_aps)) if all_aps else 0.0,
        per_class_ap50=ap50,
        per_class_ap50_95=ap50_95,
        precision=precision,
        recall=recall,
        f1=f1,
        score_threshold=score_threshold,
        pr_curves=curves,
        matched=_matched(stats),
    )
