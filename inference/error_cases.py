"""Every mistake of a detector (or verifier), named the way the notes' error analysis names it.

Detection, one image at a time, predictions already cut at the working threshold:

1. **Matching** (the notes: "overlap if IoU > 0.5"; greedy by score): predictions, best score
   first, each take the still-unmatched ground-truth box *of their class* with the highest
   IoU, provided that IoU is strictly above :data:`CORRECT_IOU` (0.5). A matched prediction
   is correct. (COCO, and so :func:`inference.metrics.evaluate_detections`, accepts IoU
   >= 0.5; the two differ only for an IoU of exactly 0.5.)
2. **Every unmatched prediction is one case**, the first of these that fits:

   * ``duplicate``: IoU > 0.5 with a box of its class that another prediction matched;
   * ``wrong_class``: IoU > 0.5 (strictly, as for a correct box) with a box of another class;
   * ``poor_localization``: 0.1 <= IoU <= 0.5 with a box of its class (the issue's
     0.1 <= IoU < 0.5, plus the single value 0.5 that "> 0.5" leaves unmatched);
   * ``false_positive``: on background (nothing of its class within IoU 0.1, nothing of
     another class above 0.5).

3. **Every unmatched ground-truth box is one ``missed`` case**, also when a wrong-class or
   poorly localised prediction covers it: that object then has two cases, the prediction's
   and the miss. So the cases are exactly the false positives plus the false negatives of
   precision and recall at the working threshold, and each case's share of all cases is its
   share of what 1 - F1 counts. The missed case records the prediction nearest to it (the
   highest IoU of any class, if at least 0.1) so the two can be read together.

Every case carries the boxes (xyxy pixels), class indices, score and IoU involved.

The **confusion matrix** counts each ground-truth box once in its row and each prediction
once in its column: rows are the true classes then background, columns the predicted
classes then background. A matched pair counts at (c, c); an unmatched box that a
wrong-class prediction covers (IoU > 0.5, that prediction not used for another box; greedy
by score) at (c, k); any other unmatched box at (c, background); every prediction not
counted yet (duplicates, poor localisation, background, wrong class on an already matched
box) at (background, k). Row sums are the ground-truth counts, column sums the prediction
counts, and (background, background) is always 0.

Verification: a pair is accepted when its distance is strictly below the threshold; a
different-person pair accepted is a ``false_accept``, a same-person pair refused a
``false_reject``. :func:`face_pair_distances` embeds faces exactly as
``training.verification.evaluate_verifier`` does, so the pairs and distances here are the
ones behind a verifier's calibration.

Pure NumPy / PyTorch: no Django.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from inference.metrics import iou_matrix
from inference.pairs import PairArrays, all_eval_pairs
from inference.preprocess import load_rgb
from inference.siamese import AnyVerifier, embed_face_crops, euclidean_distance, make_face_crop

__all__ = [
    "CORRECT_IOU",
    "DETECTION_KINDS",
    "POOR_LOCALIZATION_MIN_IOU",
    "VERIFICATION_KINDS",
    "DetectionCase",
    "ImageErrors",
    "PairCase",
    "VerificationErrors",
    "confusion_totals",
    "face_pair_distances",
    "match_image",
    "verification_errors",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Box = tuple[float, float, float, float]

CORRECT_IOU = 0.5
POOR_LOCALIZATION_MIN_IOU = 0.1
DUPLICATE, WRONG_CLASS, POOR_LOCALIZATION = "duplicate", "wrong_class", "poor_localization"
FALSE_POSITIVE, MISSED = "false_positive", "missed"
DETECTION_KINDS = (FALSE_POSITIVE, MISSED, WRONG_CLASS, POOR_LOCALIZATION, DUPLICATE)
FALSE_ACCEPT, FALSE_REJECT = "false_accept", "false_reject"
VERIFICATION_KINDS = (FALSE_ACCEPT, FALSE_REJECT)


@dataclass(frozen=True)
class DetectionCase:
    """One mistake on one image.

    Attributes:
        kind: one of :data:`DETECTION_KINDS`.
        prediction: index of the prediction involved in the image's (thresholded)
            predictions, or ``None`` (a miss with no prediction near it).
        truth: index of the ground-truth box involved, or ``None`` (background).
        predicted_class, label_class: class indices of the prediction and of the true box.
        score: the prediction's score (on the scale it was given: calibrated confidence).
        iou: IoU between ``predicted_box`` and ``true_box`` when both are set.
        predicted_box, true_box: xyxy pixels.
    """

    kind: str
    prediction: int | None = None
    truth: int | None = None
    predicted_class: int | None = None
    label_class: int | None = None
    score: float | None = None
    iou: float | None = None
    predicted_box: Box | None = None
    true_box: Box | None = None


@dataclass(frozen=True)
class ImageErrors:
    """What :func:`match_image` found on one image.

    Attributes:
        cases: one per mistake, predictions' cases by decreasing score, then misses by
            ground-truth index.
        matched_truth: ``int64 (P,)``: the ground-truth index each prediction matched, -1
            when it matched none.
        confusion: ``int64 (C + 1, C + 1)``: rows true class + background, columns
            predicted class + background (see the module docstring).
    """

    cases: list[DetectionCase]
    matched_truth: IntArray
    confusion: IntArray

    @property
    def true_positives(self) -> int:
        return int((self.matched_truth >= 0).sum())

    def missed_truths(self) -> set[int]:
        """Ground-truth indices with a ``missed`` case."""
        return {c.truth for c in self.cases if c.kind == MISSED and c.truth is not None}


def _box(row: FloatArray) -> Box:
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))


def _as_arrays(
    boxes: npt.ArrayLike, labels: npt.ArrayLike, scores: npt.ArrayLike | None = None
) -> tuple[FloatArray, IntArray, FloatArray]:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    lab = np.asarray(labels, np.int64).reshape(-1)
    s = np.zeros(len(b)) if scores is None else np.asarray(scores, np.float64).reshape(-1)
    if len(lab) != len(b) or len(s) != len(b):
        raise ValueError(f"{len(b)} boxes but {len(lab)} labels and {len(s)} scores")
    return b, lab, s


def _greedy_match(ious: FloatArray, order: IntArray, same_class: npt.NDArray[np.bool_]) -> IntArray:
    """``(P,)`` matched ground-truth index per prediction (-1 none), best score first."""
    matched = np.full(ious.shape[0], -1, np.int64)
    taken = np.zeros(ious.shape[1], bool)
    for p in order.tolist():
        cand = np.where(same_class[p] & ~taken & (ious[p] > CORRECT_IOU), ious[p], -1.0)
        if cand.size and cand.max() > 0:
            g = int(np.argmax(cand))
            matched[p], taken[g] = g, True
    return matched


@dataclass
class _Image:
    """One image's arrays and the IoU of every prediction with every ground-truth box."""

    gt_boxes: FloatArray
    gt_labels: IntArray
    boxes: FloatArray
    labels: IntArray
    scores: FloatArray
    ious: FloatArray = field(init=False)  # (P, G)
    same: npt.NDArray[np.bool_] = field(init=False)  # (P, G): same class

    def __post_init__(self) -> None:
        self.ious = iou_matrix(self.boxes, self.gt_boxes)
        self.same = self.labels[:, None] == self.gt_labels[None, :]

    def best(self, p: int, mask: npt.NDArray[np.bool_]) -> tuple[int, float]:
        """The ground truth with the highest IoU with ``p`` among ``mask``, and that IoU."""
        if not mask.any():
            return -1, 0.0
        cand = np.where(mask, self.ious[p], -1.0)
        g = int(np.argmax(cand))
        return g, float(cand[g])

    def case(self, kind: str, p: int | None, g: int | None) -> DetectionCase:
        iou = None if p is None or g is None else float(self.ious[p, g])
        return DetectionCase(
            kind=kind,
            prediction=p,
            truth=g,
            predicted_class=None if p is None else int(self.labels[p]),
            label_class=None if g is None else int(self.gt_labels[g]),
            score=None if p is None else float(self.scores[p]),
            iou=iou,
            predicted_box=None if p is None else _box(self.boxes[p]),
            true_box=None if g is None else _box(self.gt_boxes[g]),
        )


def _prediction_case(im: _Image, p: int, matched: IntArray) -> DetectionCase:
    """The kind of one unmatched prediction (duplicate, wrong class, poor loc, background)."""
    taken = np.zeros(len(im.gt_labels), bool)
    taken[matched[matched >= 0]] = True
    g, iou = im.best(p, im.same[p] & taken)
    if iou > CORRECT_IOU:
        return im.case(DUPLICATE, p, g)
    g, iou = im.best(p, ~im.same[p])
    if iou > CORRECT_IOU:
        return im.case(WRONG_CLASS, p, g)
    g, iou = im.best(p, im.same[p])
    if iou >= POOR_LOCALIZATION_MIN_IOU:
        return im.case(POOR_LOCALIZATION, p, g)
    return im.case(FALSE_POSITIVE, p, None)


def _missed_case(im: _Image, g: int) -> DetectionCase:
    """A missed box, with the prediction nearest to it (any class, IoU >= 0.1) if any."""
    column = im.ious[:, g]
    if column.size and column.max() >= POOR_LOCALIZATION_MIN_IOU:
        return im.case(MISSED, int(np.argmax(column)), g)
    return im.case(MISSED, None, g)


def _confusion(im: _Image, order: IntArray, matched: IntArray, num_classes: int) -> IntArray:
    bg = num_classes
    out = np.zeros((num_classes + 1, num_classes + 1), np.int64)
    counted = matched >= 0
    covered = np.zeros(len(im.gt_labels), bool)
    covered[matched[counted]] = True
    for p in order.tolist():  # wrong-class predictions take uncovered boxes, best score first
        if counted[p]:
            continue
        g, iou = im.best(p, ~im.same[p] & ~covered)
        if iou > CORRECT_IOU:
            out[im.gt_labels[g], im.labels[p]] += 1
            counted[p], covered[g] = True, True
    for p in np.flatnonzero(matched >= 0).tolist():
        out[im.labels[p], im.labels[p]] += 1
    for g in np.flatnonzero(~covered).tolist():
        out[im.gt_labels[g], bg] += 1
    for p in np.flatnonzero(~counted).tolist():
        out[bg, im.labels[p]] += 1
    return out


def match_image(
    gt_boxes: npt.ArrayLike,
    gt_labels: npt.ArrayLike,
    boxes: npt.ArrayLike,
    labels: npt.ArrayLike,
    scores: npt.ArrayLike,
    num_classes: int,
) -> ImageErrors:
    """Match one image's predictions with its ground truth and name every mistake.

    Args:
        gt_boxes (float[G, 4]): ground-truth xyxy pixels; gt_labels (int[G]): classes.
        boxes (float[P, 4]): predicted xyxy pixels, already cut at the working threshold;
            labels (int[P]): classes; scores (float[P]): their scores.
        num_classes: C, the size of the confusion matrix's class part (every label < C).

    Returns:
        :class:`ImageErrors`: ``len(cases) == (P - TP) + (G - TP)``.
    """
    g_boxes, g_labels, _ = _as_arrays(gt_boxes, gt_labels)
    p_boxes, p_labels, p_scores = _as_arrays(boxes, labels, scores)
    if (g_labels >= num_classes).any() or (p_labels >= num_classes).any():
        raise ValueError(f"a class index is not below num_classes={num_classes}")
    im = _Image(g_boxes, g_labels, p_boxes, p_labels, p_scores)
    order = np.argsort(-p_scores, kind="mergesort").astype(np.int64)
    matched = _greedy_match(im.ious, order, im.same)
    cases = [_prediction_case(im, p, matched) for p in order.tolist() if matched[p] < 0]
    hit = set(matched[matched >= 0].tolist())
    cases += [_missed_case(im, g) for g in range(len(g_labels)) if g not in hit]
    return ImageErrors(cases, matched, _confusion(im, order, matched, num_classes))


def confusion_totals(images: Sequence[ImageErrors], num_classes: int) -> IntArray:
    """The confusion matrices of many images summed: ``int64 (C + 1, C + 1)``."""
    total = np.zeros((num_classes + 1, num_classes + 1), np.int64)
    for image in images:
        total += image.confusion
    return total


# ----------------------------------------------------------------------------- verification
@dataclass(frozen=True)
class PairCase:
    """One verification mistake: the pair's two face indices and their distance."""

    kind: str  # FALSE_ACCEPT or FALSE_REJECT
    first: int
    second: int
    distance: float


@dataclass(frozen=True)
class VerificationErrors:
    """Mistakes at a threshold on a set of pairs.

    Attributes:
        cases: every false accept and false reject, by pair order.
        false_accepts, false_rejects: their counts.
        n_same, n_different: same-person and different-person pairs.
        threshold: accept when ``distance < threshold``.
    """

    cases: list[PairCase]
    false_accepts: int
    false_rejects: int
    n_same: int
    n_different: int
    threshold: float

    @property
    def error_rate(self) -> float:
        """Wrong decisions over all pairs."""
        total = self.n_same + self.n_different
        return (self.false_accepts + self.false_rejects) / total if total else 0.0

    @property
    def false_accept_rate(self) -> float:
        return self.false_accepts / self.n_different if self.n_different else 0.0

    @property
    def false_reject_rate(self) -> float:
        return self.false_rejects / self.n_same if self.n_same else 0.0


def verification_errors(
    idx1: npt.ArrayLike,
    idx2: npt.ArrayLike,
    same: npt.ArrayLike,
    distances: npt.ArrayLike,
    threshold: float,
) -> VerificationErrors:
    """Every pair decided wrongly at ``threshold``.

    Args:
        idx1, idx2 (int[N]): the two faces of each pair; same (bool[N]): same person;
        distances (float[N]): embedding distances; threshold: accept below it (strictly).
    """
    a, b = np.asarray(idx1, np.int64), np.asarray(idx2, np.int64)
    s, d = np.asarray(same, bool), np.asarray(distances, np.float64)
    if not (len(a) == len(b) == len(s) == len(d)):
        raise ValueError("idx1, idx2, same and distances must have the same length")
    accepted = d < threshold
    wrong = np.flatnonzero(accepted != s)
    cases = [
        PairCase(FALSE_ACCEPT if accepted[i] else FALSE_REJECT, int(a[i]), int(b[i]), float(d[i]))
        for i in wrong.tolist()
    ]
    return VerificationErrors(
        cases,
        false_accepts=int((accepted & ~s).sum()),
        false_rejects=int((~accepted & s).sum()),
        n_same=int(s.sum()),
        n_different=int((~s).sum()),
        threshold=float(threshold),
    )


def face_pair_distances(
    net: AnyVerifier,
    faces: Sequence[tuple[Path, Box | None]],
    identities: Sequence[str],
    *,
    rng_seed: int = 0,
    batch_size: int = 256,
) -> tuple[PairArrays, FloatArray]:
    """The evaluation pairs of some faces and their distances, as ``evaluate_verifier`` makes them.

    Every same-person pair plus as many different-person pairs
    (``inference.pairs.all_eval_pairs`` seeded with ``rng_seed``, people numbered in sorted
    order of ``identities``), each face cropped as the verifier crops
    (``inference.siamese.make_face_crop``) and embedded once in eval mode.

    Args:
        net: the verifier (an ``EmbeddingNet``, an ensemble or a backbone verifier).
        faces: per face, the image file and the face box (xyxy pixels; ``None``: whole image).
        identities: per face, the person.

    Returns:
        ``(idx1, idx2, y)`` (int64 (P,), ``y == 0`` same person) and distances float64 (P,).
    """
    if len(faces) != len(identities):
        raise ValueError("one identity per face")
    people = {person: i for i, person in enumerate(sorted(set(identities)))}
    labels = np.array([people[p] for p in identities], np.int64)
    pairs = all_eval_pairs(labels, np.random.default_rng(rng_seed))
    crops = [make_face_crop(net, load_rgb(path), box) for path, box in faces]
    was_training = net.training
    net.eval()
    try:
        embeddings = torch.from_numpy(embed_face_crops(net, crops, batch_size))
    finally:
        net.train(was_training)
    first, second = torch.from_numpy(pairs[0]), torch.from_numpy(pairs[1])
    distances = euclidean_distance(embeddings[first], embeddings[second]).double().numpy()
    return pairs, distances
