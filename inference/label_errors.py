"""Possible label errors: how likely it is that the *label*, not the model, is wrong.

In the manner of FiftyOne's mistakenness (a confident prediction with no label: possibly
missing; a label no prediction matches: possibly spurious) and Cleanlab's ObjectLab
(per-box "overlooked", "swap" and "badloc" scores from the model's confident boxes and
their overlap with the labels). Two differences make the scores of different kinds
comparable, so one ranking can mix them: every score is built from *calibrated* confidence
(the probability that a box is right, ``inference.calibration``), and each is the
posterior probability of a label error given two explanations of the same evidence, a
wrong label or a wrong model:

    score = rho * e / (rho * e + q)

``e`` is how likely the evidence is if the label is wrong (the model is right), ``q`` how
likely if the label is right (the model is wrong), and ``rho`` = r / (1 - r) the prior odds
of a label error of that kind: r = :data:`PRIOR_ERROR_RATE` (5%) for a missing label, a
swapped class or a badly drawn box, :data:`SPURIOUS_PRIOR_RATE` (2%) for a spurious box
(a box drawn on nothing is the rarest slip). Within a kind the ranking follows ``e / q``.

Per kind, for one image (``conf`` a prediction's calibrated confidence, ``IoU`` its
overlap with the label in question, ``m_c`` the model's own miss rate on class c in this
evaluation, (misses + 1) / (labels + 2), from :func:`miss_rates`; misses suspected to be
swapped or badly drawn labels count only for their chance of being the model's, so
:func:`rank_label_errors` alternates scoring and re-estimating ``m_c`` a few times):

* ``missing_label``, on an unmatched prediction (background, poor localisation,
  duplicate, wrong class on a box another prediction matched): ``e = conf * f`` with
  ``f = max(0, 1 - IoU_any / 0.5)``, ``IoU_any`` its highest IoU with a label of any class
  (half-way onto a label, half as likely), and ``q = 1 - e``: a box the model is sure of
  is rarely a hallucination, and by the calibration one at ``conf`` is wrong 1 - conf of
  the time.
* For a ``missed`` label of class c, with ``same`` the highest confidence of a prediction
  of class c at IoU > 0.5 with it (at any score, also below the threshold: the model's
  belief that the label is right as drawn):

  * ``swapped_class``: ``e = other * (1 - same)``, ``other`` the highest confidence of a
    prediction of another class at IoU > 0.5, and ``q = (1 - other) * m_c``: were the
    label right, the model would have to be wrong about the class *and* miss the object;
  * ``bad_box``: ``e = near * (1 - same)``, ``near`` the highest confidence of a class-c
    prediction overlapping the label at 0.3 <= IoU <= 0.7 that no other class-c label
    explains better (IoU > 0.5 with it), and ``q = (1 - near) * m_c``;
  * ``spurious_label``: ``e = 1 - seen``, ``seen`` the highest ``conf * min(1, IoU / 0.5)``
    of any prediction of any class near the label, and ``q = m_c``: a label nothing comes
    near is spurious, unless the model misses such objects often (a class it never misses
    makes an unseen label very suspicious).

  The case's score is the largest of the three, its kind that one's.
* A wrong-class prediction on a label another prediction matched: ``swapped_class`` with
  ``e = conf * (1 - same)``, ``q = (1 - conf) * m_c``, if that beats ``missing_label``.
* **One case per suspected label error:** a wrong-class or poorly localised prediction on a
  label that is itself missed gets no score of its own: its evidence is on the label's
  ``missed`` case (the label is what a person would fix), so a ranking of cases lists each
  suspect once.

Sub-threshold predictions count for ``same`` (a faint box of the label's own class on it
lowers the swap and bad-box suspicions), for ``seen`` (faint boxes near a label mean the
model is unsure, not blind) and for ``near``. ``missing_label`` is only scored on cases,
i.e. above the threshold (a box below it is no mistake of the model, so it has no case).

An image's score is ``1 - prod(1 - s)`` over its cases' scores: the chance that at least
one of its suspicions is a real label error, were they independent.

Pure NumPy: no Django.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from inference.error_cases import (
    CORRECT_IOU,
    DUPLICATE,
    FALSE_POSITIVE,
    FALSE_REJECT,
    MISSED,
    POOR_LOCALIZATION,
    WRONG_CLASS,
    DetectionCase,
    ImageErrors,
    PairCase,
)
from inference.metrics import iou_matrix

__all__ = [
    "BAD_BOX",
    "BAD_BOX_IOU",
    "MISSING_LABEL",
    "NONE",
    "PRIOR_ERROR_RATE",
    "SPURIOUS_LABEL",
    "SPURIOUS_PRIOR_RATE",
    "SWAPPED_CLASS",
    "ImagePredictions",
    "LabelSuspicion",
    "image_score",
    "miss_rates",
    "pair_suspicions",
    "rank_label_errors",
    "score_cases",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

NONE, MISSING_LABEL, SPURIOUS_LABEL = "", "missing_label", "spurious_label"
SWAPPED_CLASS, BAD_BOX = "swapped_class", "bad_box"
BAD_BOX_IOU = (0.3, 0.7)
PRIOR_ERROR_RATE = 0.05
# Re-estimations of the miss rates without the suspected label errors (the scores settle
# within a few: the second changes them by under 1% on BCCD).
EM_ROUNDS = 3
# A box drawn on nothing is a rarer slip than a box left out, a class mixed up or a box
# drawn off: on BCCD's (clean) val split the few labels no prediction came near were real
# white cells the model missed, not spurious boxes.
SPURIOUS_PRIOR_RATE = 0.02
_RHO = PRIOR_ERROR_RATE / (1 - PRIOR_ERROR_RATE)
_RHO_SPURIOUS = SPURIOUS_PRIOR_RATE / (1 - SPURIOUS_PRIOR_RATE)
# Calibrated confidence reaches 1.0 at the top of its curve: keep "the model is wrong" from
# becoming impossible (a zero q would tie every such case at 1).
_MIN_Q = 1e-3


@dataclass(frozen=True)
class LabelSuspicion:
    """How likely a case points at a label error (0..1) and which kind (``""``: none)."""

    score: float = 0.0
    kind: str = NONE


def _posterior(e: float, q: float, kind: str, rho: float = _RHO) -> tuple[float, str]:
    """``rho * e / (rho * e + q)`` for evidence ``e`` (label wrong) vs ``q`` (model wrong)."""
    if e <= 0:
        return 0.0, kind
    return rho * e / (rho * e + max(q, _MIN_Q)), kind


def miss_rates(
    images: Sequence[ImageErrors],
    num_classes: int,
    suspicions: Sequence[Sequence[LabelSuspicion]] | None = None,
) -> dict[int, float]:
    """Per class, the share of its labels the *model* missed at the threshold, smoothed.

    ``(misses + 1) / (labels + 2)`` (a class with no label gets 0.5: nothing is known of
    it). Without ``suspicions`` every ``missed`` case is a miss of the model; with them
    (one list per image, one per case, from :func:`score_cases`) a missed case suspected
    to be a swapped class or a bad box counts ``1 - score``: a label that is itself wrong
    is no miss of the model, and counting it would make label errors explain each other
    away (swapped-in labels inflate the miss rate of the class they land in).
    :func:`rank_label_errors` alternates the two.
    """
    labels = np.zeros(num_classes, np.float64)
    misses = np.zeros(num_classes, np.float64)
    for i, image in enumerate(images):
        labels += image.confusion[:num_classes].sum(axis=1)
        for j, case in enumerate(image.cases):
            if case.kind == MISSED and case.label_class is not None:
                misses[case.label_class] += 1.0 - _explained(suspicions, i, j)
    return {c: float((misses[c] + 1) / (labels[c] + 2)) for c in range(num_classes)}


def _explained(suspicions: Sequence[Sequence[LabelSuspicion]] | None, i: int, j: int) -> float:
    """How much of a missed case another prediction explains as a label error."""
    if suspicions is None:
        return 0.0
    suspicion = suspicions[i][j]
    # A spurious-label suspicion rests on the miss rate itself: letting it lower the rate
    # would feed back into itself. Swaps and bad boxes have a prediction as evidence.
    return suspicion.score if suspicion.kind in (SWAPPED_CLASS, BAD_BOX) else 0.0


@dataclass
class _Evidence:
    """One image's labels and every prediction (any score), with their overlaps."""

    gt_boxes: FloatArray
    gt_labels: IntArray
    boxes: FloatArray
    labels: IntArray
    confidences: FloatArray
    miss_rate: Mapping[int, float]
    ious: FloatArray = field(init=False)  # (P, G)

    def __post_init__(self) -> None:
        self.ious = iou_matrix(self.boxes, self.gt_boxes)

    def miss(self, g: int) -> float:
        return float(self.miss_rate.get(int(self.gt_labels[g]), 0.5))

    def same_class(self, g: int) -> float:
        """Highest confidence of a prediction of g's class at IoU > 0.5 with g (0 if none)."""
        mask = (self.labels == self.gt_labels[g]) & (self.ious[:, g] > CORRECT_IOU)
        return float(self.confidences[mask].max()) if mask.any() else 0.0

    def other_class(self, g: int) -> float:
        mask = (self.labels != self.gt_labels[g]) & (self.ious[:, g] > CORRECT_IOU)
        return float(self.confidences[mask].max()) if mask.any() else 0.0

    def near_same_class(self, g: int) -> float:
        """Highest confidence of a class-c box at 0.3..0.7 IoU that no other label explains."""
        low, high = BAD_BOX_IOU
        iou = self.ious[:, g]
        mask = (self.labels == self.gt_labels[g]) & (iou >= low) & (iou <= high)
        if not mask.any():
            return 0.0
        others = self.ious.copy()
        others[:, g] = -1.0
        others[self.labels[:, None] != self.gt_labels[None, :]] = -1.0
        explained = (others > CORRECT_IOU) & (others > iou[:, None])
        mask &= ~explained.any(axis=1)
        return float(self.confidences[mask].max()) if mask.any() else 0.0

    def seen(self, g: int) -> float:
        """Highest ``conf * min(1, IoU / 0.5)`` of any prediction near g."""
        if not len(self.confidences):
            return 0.0
        closeness = np.minimum(1.0, self.ious[:, g] / CORRECT_IOU)
        return float((self.confidences * closeness).max())


def _best(options: Sequence[tuple[float, str]]) -> LabelSuspicion:
    score, kind = max(options, key=lambda o: o[0])
    return LabelSuspicion(float(score), kind) if score > 0 else LabelSuspicion()


def _missed(ev: _Evidence, g: int) -> LabelSuspicion:
    same, m = ev.same_class(g), ev.miss(g)
    other, near = ev.other_class(g), ev.near_same_class(g)
    return _best(
        [
            _posterior(other * (1 - same), (1 - other) * m, SWAPPED_CLASS),
            _posterior(near * (1 - same), (1 - near) * m, BAD_BOX),
            _posterior(1 - ev.seen(g), m, SPURIOUS_LABEL, _RHO_SPURIOUS),
        ]
    )


def _unmatched_prediction(ev: _Evidence, case: DetectionCase) -> LabelSuspicion:
    conf = float(case.score or 0.0)
    assert case.predicted_box is not None
    box = np.asarray(case.predicted_box, np.float64).reshape(1, 4)
    overlap = iou_matrix(box, ev.gt_boxes)
    iou_any = float(overlap.max()) if overlap.size else 0.0
    e = conf * max(0.0, 1 - iou_any / CORRECT_IOU)
    options = [_posterior(e, 1 - e, MISSING_LABEL)]
    if case.kind == WRONG_CLASS and case.truth is not None:
        same = ev.same_class(case.truth)
        options.append(
            _posterior(conf * (1 - same), (1 - conf) * ev.miss(case.truth), SWAPPED_CLASS)
        )
    return _best(options)


def score_cases(
    cases: Sequence[DetectionCase],
    gt_boxes: npt.ArrayLike,
    gt_labels: npt.ArrayLike,
    all_boxes: npt.ArrayLike,
    all_labels: npt.ArrayLike,
    all_confidences: npt.ArrayLike,
    miss_rate: Mapping[int, float],
) -> list[LabelSuspicion]:
    """One :class:`LabelSuspicion` per case of one image (see the module docstring).

    Args:
        cases: the image's cases (``inference.error_cases.match_image``), whose scores are
            calibrated confidences.
        gt_boxes (float[G, 4]), gt_labels (int[G]): the labels, xyxy pixels.
        all_boxes (float[D, 4]), all_labels (int[D]), all_confidences (float[D]): every
            prediction of the image down to the evaluation floor, calibrated confidence.
        miss_rate: class index -> the model's miss rate over the whole evaluation
            (:func:`miss_rates`).
    """
    ev = _Evidence(
        np.asarray(gt_boxes, np.float64).reshape(-1, 4),
        np.asarray(gt_labels, np.int64).reshape(-1),
        np.asarray(all_boxes, np.float64).reshape(-1, 4),
        np.asarray(all_labels, np.int64).reshape(-1),
        np.asarray(all_confidences, np.float64).reshape(-1),
        miss_rate,
    )
    missed = {c.truth for c in cases if c.kind == MISSED}
    out: list[LabelSuspicion] = []
    for case in cases:
        if case.kind == MISSED and case.truth is not None:
            out.append(_missed(ev, case.truth))
        elif case.kind in (WRONG_CLASS, POOR_LOCALIZATION) and case.truth in missed:
            out.append(LabelSuspicion())  # the missed label's case carries this evidence
        elif case.kind in (FALSE_POSITIVE, POOR_LOCALIZATION, DUPLICATE, WRONG_CLASS):
            out.append(_unmatched_prediction(ev, case))
        else:
            out.append(LabelSuspicion())
    return out


@dataclass(frozen=True)
class ImagePredictions:
    """One image's labels and every prediction down to the floor (calibrated confidence)."""

    gt_boxes: npt.ArrayLike
    gt_labels: npt.ArrayLike
    boxes: npt.ArrayLike
    labels: npt.ArrayLike
    confidences: npt.ArrayLike


def rank_label_errors(
    images: Sequence[ImageErrors],
    evidence: Sequence[ImagePredictions],
    num_classes: int,
    *,
    rounds: int = EM_ROUNDS,
) -> tuple[list[list[LabelSuspicion]], dict[int, float]]:
    """Score every case of an evaluation: :func:`score_cases` per image, with the miss
    rates re-estimated from the suspicions (:func:`miss_rates`) ``rounds`` times.

    Returns:
        Per image, one :class:`LabelSuspicion` per case; the final miss rates.
    """
    rates = miss_rates(images, num_classes)
    scored: list[list[LabelSuspicion]] = []
    for round_ in range(rounds + 1):
        scored = [
            score_cases(
                found.cases, ev.gt_boxes, ev.gt_labels, ev.boxes, ev.labels, ev.confidences, rates
            )
            for found, ev in zip(images, evidence, strict=True)
        ]
        if round_ < rounds:
            rates = miss_rates(images, num_classes, scored)
    return scored, rates


def pair_suspicions(
    cases: Sequence[PairCase], distances: npt.ArrayLike, same: npt.ArrayLike
) -> list[LabelSuspicion]:
    """Verification mistakes that may be identity labels gone wrong (``swapped_class``).

    A false reject whose distance is larger than most different-person pairs' looks like
    two people filed under one name; a false accept closer than most same-person pairs'
    looks like one person filed under two. The score is that share: for a false reject the
    fraction of different-person distances below its own, for a false accept the fraction
    of same-person distances above its own.

    Args:
        cases: ``inference.error_cases.verification_errors(...).cases``.
        distances (float[N]), same (bool[N]): every evaluated pair.
    """
    d, s = np.asarray(distances, np.float64), np.asarray(same, bool)
    different, genuine = np.sort(d[~s]), np.sort(d[s])
    out = []
    for case in cases:
        if case.kind == FALSE_REJECT:
            below = np.searchsorted(different, case.distance, side="left")
            share = below / len(different) if len(different) else 0.0
        else:
            above = len(genuine) - np.searchsorted(genuine, case.distance, side="right")
            share = above / len(genuine) if len(genuine) else 0.0
        out.append(LabelSuspicion(float(share), SWAPPED_CLASS) if share > 0 else LabelSuspicion())
    return out


def image_score(scores: Sequence[float]) -> float:
    """``1 - prod(1 - s)``: the chance at least one suspicion of an image is right."""
    clipped = np.clip(np.asarray(scores, np.float64), 0.0, 1.0)
    return float(1.0 - np.prod(1.0 - clipped)) if clipped.size else 0.0
