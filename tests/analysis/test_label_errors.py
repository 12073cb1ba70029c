"""Possible label errors on hand-made images: each kind where it should be, the numbers of
the posterior by hand, sub-threshold boxes as evidence, one case per suspect."""

from __future__ import annotations

import numpy as np
import pytest

from inference.error_cases import PairCase, match_image
from inference.label_errors import (
    PRIOR_ERROR_RATE,
    SPURIOUS_PRIOR_RATE,
    ImagePredictions,
    image_score,
    miss_rates,
    pair_suspicions,
    rank_label_errors,
    score_cases,
)

RBC, WBC = 0, 1
RHO = PRIOR_ERROR_RATE / (1 - PRIOR_ERROR_RATE)
RHO_SPURIOUS = SPURIOUS_PRIOR_RATE / (1 - SPURIOUS_PRIOR_RATE)
THRESHOLD = 0.4


def _box(x: float, y: float = 0.0, size: float = 10.0) -> list[float]:
    return [x, y, x + size, y + size]


def _posterior(e: float, q: float, rho: float = RHO) -> float:
    return rho * e / (rho * e + q)


def _score(gt, gt_labels, boxes, labels, conf, rates=None):
    """Cases at THRESHOLD and their suspicions, every box used as evidence."""
    gt_a = np.array(gt, float).reshape(-1, 4)
    gl = np.array(gt_labels, int)
    b, lab, c = np.array(boxes, float).reshape(-1, 4), np.array(labels, int), np.array(conf, float)
    keep = c >= THRESHOLD
    found = match_image(gt_a, gl, b[keep], lab[keep], c[keep], 2)
    rates = rates or {RBC: 0.2, WBC: 0.1}
    return found.cases, score_cases(found.cases, gt_a, gl, b, lab, c, rates)


def test_a_confident_box_with_no_label_near_it_is_possibly_a_missing_label():
    cases, [s] = _score([], [], [_box(0)], [RBC], [0.9])
    assert cases[0].kind == "false_positive"
    assert s.kind == "missing_label"
    assert s.score == pytest.approx(_posterior(0.9, 0.1))
    # Half-way onto a label: half the evidence (IoU 0.25 with a WBC label -> f = 0.5).
    cases, scores = _score([_box(6)], [WBC], [_box(0)], [RBC], [0.9])
    assert [c.kind for c in cases] == ["false_positive", "missed"]
    assert scores[0].score == pytest.approx(_posterior(0.45, 0.55))


def test_a_confident_other_class_box_on_a_label_is_possibly_a_swapped_class():
    cases, scores = _score([_box(0)], [WBC], [_box(0)], [RBC], [0.8])
    assert [c.kind for c in cases] == ["wrong_class", "missed"]
    wrong, missed = scores
    assert (wrong.score, wrong.kind) == (0.0, "")  # one case per suspect: the label's
    assert missed.kind == "swapped_class"
    assert missed.score == pytest.approx(_posterior(0.8, 0.2 * 0.1))  # m(WBC) = 0.1


def test_a_faint_box_of_the_label_s_own_class_lowers_the_swap_suspicion():
    # The same, plus a WBC box at 0.3 (below the threshold) on the label.
    _, [_, missed] = _score([_box(0)], [WBC], [_box(0), _box(0.5)], [RBC, WBC], [0.8, 0.3])
    assert missed.kind == "swapped_class"
    assert missed.score == pytest.approx(_posterior(0.8 * 0.7, 0.2 * 0.1))


def test_a_confident_box_overlapping_a_label_by_a_third_is_possibly_a_badly_drawn_box():
    # The label is shifted by half its width off the object the model sees (IoU 1/3).
    cases, scores = _score([_box(5)], [RBC], [_box(0)], [RBC], [0.9])
    assert [c.kind for c in cases] == ["poor_localization", "missed"]
    assert cases[0].iou == pytest.approx(1 / 3)
    poor, missed = scores
    assert poor.score == 0.0
    assert missed.kind == "bad_box"
    assert missed.score == pytest.approx(_posterior(0.9, 0.1 * 0.2))


def test_a_neighbour_that_another_label_explains_is_no_evidence_of_a_bad_box():
    # Two labels side by side, each with its box; the right one is missed: the left box
    # overlaps it at 1/3 but is its own label's (IoU 1), so the miss is no bad box.
    cases, scores = _score(
        [_box(0), _box(5)], [RBC, RBC], [_box(0), _box(5.5)], [RBC, RBC], [0.9, 0.2]
    )
    assert [c.kind for c in cases] == ["missed"]
    assert scores[0].kind == "spurious_label"


def test_a_label_nothing_comes_near_is_possibly_spurious_more_so_for_a_class_rarely_missed():
    _, [rbc] = _score([_box(0)], [RBC], [], [], [])
    _, [wbc] = _score([_box(0)], [WBC], [], [], [])
    assert rbc.kind == wbc.kind == "spurious_label"
    assert rbc.score == pytest.approx(_posterior(1.0, 0.2, RHO_SPURIOUS))
    assert wbc.score == pytest.approx(_posterior(1.0, 0.1, RHO_SPURIOUS)) and wbc.score > rbc.score
    # A faint box near it: the model is unsure rather than blind (seen = 0.3).
    _, [faint] = _score([_box(0)], [RBC], [_box(0)], [RBC], [0.3])
    assert faint.score == pytest.approx(_posterior(0.7, 0.2, RHO_SPURIOUS))


def test_duplicates_are_no_missing_labels_and_image_scores_combine():
    cases, scores = _score([_box(0)], [RBC], [_box(0), _box(1)], [RBC, RBC], [0.9, 0.8])
    assert [c.kind for c in cases] == ["duplicate"] and scores[0].score == 0.0
    assert image_score([]) == 0.0
    assert image_score([0.5, 0.5]) == pytest.approx(0.75)


def test_miss_rates_leave_out_the_labels_suspected_to_be_wrong():
    # Image 1: a WBC labelled on an RBC (swapped); image 2: a WBC the model misses.
    gt = [[_box(0)], [_box(0)], [_box(0)]]
    gl = [[WBC], [WBC], [WBC]]
    boxes = [[_box(0)], [], [_box(0)]]
    labels = [[RBC], [], [WBC]]
    conf = [[0.95], [], [0.9]]
    found, evidence = [], []
    for g, gla, b, lab, c in zip(gt, gl, boxes, labels, conf, strict=True):
        ga, ba = np.array(g, float), np.array(b, float).reshape(-1, 4)
        la, ca = np.array(lab, int), np.array(c, float)
        found.append(match_image(ga, np.array(gla), ba, la, ca, 2))
        evidence.append(ImagePredictions(ga, np.array(gla), ba, la, ca))
    plain = miss_rates(found, 2)
    assert plain[WBC] == pytest.approx((2 + 1) / (3 + 2))
    assert plain[RBC] == pytest.approx(0.5)  # no RBC label: nothing known
    scored, rates = rank_label_errors(found, evidence, 2)
    swap = scored[0][1]  # image 1's missed WBC
    assert swap.kind == "swapped_class"
    # The swap no longer counts as a model miss; the unseen WBC (spurious) still does.
    assert miss_rates(found, 2, scored)[WBC] == pytest.approx((2 - swap.score + 1) / (3 + 2))
    assert rates[WBC] < plain[WBC]


def test_pairs_far_beyond_the_other_side_look_like_identity_mistakes():
    distances = np.array([0.1, 0.2, 0.9, 0.5, 0.6, 0.7])
    same = np.array([True, True, True, False, False, False])
    cases = [PairCase("false_reject", 0, 2, 0.9), PairCase("false_accept", 3, 4, 0.15)]
    reject, accept = pair_suspicions(cases, distances, same)
    assert (reject.kind, reject.score) == ("swapped_class", 1.0)  # farther than every stranger
    assert accept.score == pytest.approx(2 / 3)  # closer than 2 of the 3 genuine pairs
