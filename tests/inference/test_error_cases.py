"""Error cases on hand-made images: every kind, the boxes and IoU each carries, the
confusion matrix with background, and verification mistakes at a threshold."""

from __future__ import annotations

import numpy as np
import pytest

from inference.error_cases import (
    ImageErrors,
    confusion_totals,
    match_image,
    verification_errors,
)
from inference.metrics import evaluate_detections, iou_matrix

CAT, DOG = 0, 1
BG = 2  # background's row / column when there are two classes


def _box(x: float, y: float, w: float = 10.0, h: float = 10.0) -> list[float]:
    return [x, y, x + w, y + h]


def _match(gt, gt_labels, boxes, labels, scores, num_classes=2) -> ImageErrors:
    return match_image(
        np.array(gt, float).reshape(-1, 4),
        np.array(gt_labels, int),
        np.array(boxes, float).reshape(-1, 4),
        np.array(labels, int),
        np.array(scores, float),
        num_classes,
    )


def _kinds(found: ImageErrors) -> list[str]:
    return [c.kind for c in found.cases]


# One image with one mistake of every kind, built so each IoU is known by hand:
# shifting a 10x10 box by d pixels along x gives IoU (10 - d) / (10 + d).
GT = [_box(0, 0), _box(100, 0), _box(200, 0), _box(300, 0), _box(400, 0)]
GT_LABELS = [CAT, CAT, CAT, DOG, CAT]
PREDS = [
    _box(1, 0),  # 0.95: matches GT 0 (IoU 9/11)
    _box(2, 0),  # 0.90: duplicate of GT 0 (IoU 8/12), already matched
    _box(101, 0),  # 0.85, dog on GT 1 (a cat): wrong class (IoU 9/11)
    _box(206, 0),  # 0.80: cat, poor localisation on GT 2 (IoU 4/16 = 0.25)
    _box(600, 0),  # 0.75: cat on background
    _box(300, 0),  # 0.70: dog, matches GT 3 exactly
]
PRED_LABELS = [CAT, CAT, DOG, CAT, CAT, DOG]
SCORES = [0.95, 0.9, 0.85, 0.8, 0.75, 0.7]


def test_every_kind_of_mistake_on_one_image():
    found = _match(GT, GT_LABELS, PREDS, PRED_LABELS, SCORES)

    assert found.matched_truth.tolist() == [0, -1, -1, -1, -1, 3]
    assert _kinds(found) == [
        "duplicate",
        "wrong_class",
        "poor_localization",
        "false_positive",
        "missed",  # GT 1: the wrong-class dog covers it, it is still a miss (two cases)
        "missed",  # GT 2: the poorly placed cat covers it
        "missed",  # GT 4: nothing near it
    ]
    dup, wrong, poor, fp, miss1, miss2, miss4 = found.cases
    assert (dup.prediction, dup.truth, dup.label_class) == (1, 0, CAT)
    assert dup.iou == pytest.approx(8 / 12) and dup.score == 0.9
    assert (wrong.predicted_class, wrong.label_class, wrong.truth) == (DOG, CAT, 1)
    assert wrong.iou == pytest.approx(9 / 11)
    assert wrong.predicted_box == (101.0, 0.0, 111.0, 10.0)
    assert wrong.true_box == (100.0, 0.0, 110.0, 10.0)
    assert (poor.predicted_class, poor.label_class) == (CAT, CAT)
    assert poor.iou == pytest.approx(4 / 16)
    assert (fp.truth, fp.true_box, fp.label_class, fp.iou) == (None, None, None, None)
    assert fp.predicted_box == (600.0, 0.0, 610.0, 10.0) and fp.score == 0.75
    # A miss records the prediction nearest to it, so the sheet can show both boxes.
    assert (miss1.truth, miss1.prediction, miss1.predicted_class) == (1, 2, DOG)
    assert miss1.iou == pytest.approx(9 / 11) and miss1.score == 0.85
    assert (miss2.truth, miss2.prediction) == (2, 3)
    assert (miss4.truth, miss4.prediction, miss4.predicted_box, miss4.score) == (
        4,
        None,
        None,
        None,
    )
    assert miss4.true_box == (400.0, 0.0, 410.0, 10.0) and miss4.label_class == CAT


def test_cases_are_the_false_positives_and_negatives_of_the_metric():
    found = _match(GT, GT_LABELS, PREDS, PRED_LABELS, SCORES)
    metrics = evaluate_detections(
        [{"boxes": np.array(PREDS), "scores": np.array(SCORES), "labels": np.array(PRED_LABELS)}],
        [{"boxes": np.array(GT), "labels": np.array(GT_LABELS)}],
        score_threshold=0.0,
    )
    tp = found.true_positives
    false_positives, false_negatives = len(PREDS) - tp, len(GT) - tp
    assert len(found.cases) == false_positives + false_negatives == 4 + 3
    assert metrics.precision == pytest.approx(tp / len(PREDS))
    assert metrics.recall == pytest.approx(tp / len(GT))


def test_confusion_matrix_with_background_by_hand():
    found = _match(GT, GT_LABELS, PREDS, PRED_LABELS, SCORES)
    # rows: true cat, true dog, background; columns: predicted cat, dog, background
    assert found.confusion.tolist() == [
        [1, 1, 2],  # GT 0 matched; GT 1 taken by the dog; GT 2 and GT 4 missed
        [0, 1, 0],  # GT 3 matched
        [3, 0, 0],  # the duplicate, the poorly placed cat and the background cat
    ]
    assert found.confusion[:2].sum(axis=1).tolist() == [4, 1]  # every label once
    assert found.confusion[:, :2].sum(axis=0).tolist() == [4, 2]  # every prediction once
    twice = confusion_totals([found, found], 2)
    assert twice.tolist() == (2 * found.confusion).tolist()


def test_matching_is_greedy_by_score_and_strictly_above_half():
    # Two predictions want the same box: the higher score takes it, whatever the order.
    gt = [_box(0, 0)]
    found = _match(gt, [CAT], [_box(2, 0), _box(1, 0)], [CAT, CAT], [0.5, 0.9])
    assert found.matched_truth.tolist() == [-1, 0]
    assert _kinds(found) == ["duplicate"]
    # IoU exactly 0.5 is not a match (the notes: IoU > 0.5): poor localisation and a miss.
    wide, half = [_box(0, 0, w=12)], _box(4, 0, w=12)  # overlap 8 x 10 of a union of 160
    assert iou_matrix(np.array([half]), np.array(wide))[0, 0] == 0.5
    found = _match(wide, [CAT], [half], [CAT], [0.9])
    assert _kinds(found) == ["poor_localization", "missed"]


def test_low_overlap_is_background_and_other_class_half_overlap_is_not_wrong_class():
    gt = [_box(0, 0)]
    # IoU 1/19 < 0.1 with the right class: background.
    assert _kinds(_match(gt, [CAT], [_box(9, 0)], [CAT], [0.9])) == ["false_positive", "missed"]
    # A dog at IoU 0.25 on a cat: not wrong class (needs > 0.5), nothing of its class near.
    assert _kinds(_match(gt, [CAT], [_box(6, 0)], [DOG], [0.9])) == ["false_positive", "missed"]


def test_empty_images():
    nothing = _match([], [], [], [], [])
    assert nothing.cases == [] and nothing.confusion.sum() == 0
    only_labels = _match([_box(0, 0)], [DOG], [], [], [])
    assert _kinds(only_labels) == ["missed"]
    assert only_labels.confusion.tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 0]]
    only_predictions = _match([], [], [_box(0, 0)], [CAT], [0.4])
    assert _kinds(only_predictions) == ["false_positive"]
    assert only_predictions.confusion[BG].tolist() == [1, 0, 0]


def test_a_class_index_outside_the_matrix_is_refused():
    with pytest.raises(ValueError, match="num_classes"):
        _match([_box(0, 0)], [2], [], [], [])


def test_verification_mistakes_at_a_threshold():
    idx1, idx2 = [0, 0, 1, 2, 3], [1, 2, 3, 4, 4]
    same = [True, True, False, False, True]
    distances = [0.2, 0.6, 0.3, 0.9, 0.5]
    found = verification_errors(idx1, idx2, same, distances, threshold=0.5)

    assert [(c.kind, c.first, c.second, c.distance) for c in found.cases] == [
        ("false_reject", 0, 2, 0.6),
        ("false_accept", 1, 3, 0.3),
        ("false_reject", 3, 4, 0.5),  # accepted only strictly below the threshold
    ]
    assert (found.false_accepts, found.false_rejects) == (1, 2)
    assert (found.n_same, found.n_different) == (3, 2)
    assert found.error_rate == pytest.approx(3 / 5)
    assert found.false_accept_rate == pytest.approx(1 / 2)
    assert found.false_reject_rate == pytest.approx(2 / 3)


def test_pr_curves_are_thinned_for_charts_keeping_both_ends():
    from inference.metrics import PRCurve, downsample_curve

    n = 1001
    curve = PRCurve(np.linspace(0, 0.9, n), np.linspace(1, 0.5, n), np.linspace(1, 0, n))
    small = downsample_curve(curve, 200)
    assert 190 <= len(small.recall) <= 200
    assert (small.recall[0], small.recall[-1]) == (0.0, 0.9)
    assert (small.precision[0], small.precision[-1]) == (1.0, 0.5)
    assert np.all(np.diff(small.recall) > 0)
    assert downsample_curve(small, 500) is small
