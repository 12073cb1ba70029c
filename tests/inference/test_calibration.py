"""inference.calibration: isotonic fit, per-class calibration, the max-F1 working threshold."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inference.calibration import (
    FORMAT_VERSION,
    CalibrationUnreadable,
    IsotonicCurve,
    ScoreCalibration,
    best_f1,
    fit_isotonic,
    fit_working_scores,
    operating_point,
    pool_adjacent_violators,
    serving_scores,
)
from inference.metrics import MatchedDetections, evaluate_detections
from tests.inference.test_detection_metrics import make_data

SEEDS = range(6)
# Breakpoints are stored with 6 decimals (half of 1e-6 of rounding each way).
HALF_DECIMAL = 5e-7


def stored_atol(calibration: ScoreCalibration) -> float:
    """How far rounding the breakpoints can move a calibrated value: the rounding of y,
    plus that of x times the steepest segment."""
    curves = [calibration.overall, *calibration.per_class.values()]
    slope = max(float(np.max(np.diff(c.y) / np.diff(c.x), initial=0.0)) for c in curves)
    return HALF_DECIMAL * (1 + 2 * slope) + 1e-12


def slow_isotonic(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Reference: fit_i = max over j <= i of min over k >= i of mean(y[j..k]) (weighted)."""
    n = len(y)
    out = np.empty(n)
    for i in range(n):
        out[i] = max(
            min(np.average(y[j : k + 1], weights=w[j : k + 1]) for k in range(i, n))
            for j in range(i + 1)
        )
    return out


def expand(means: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """Per-element fit from PAV's blocks."""
    sizes = np.diff(np.append(starts, n))
    return np.repeat(means, sizes)


@pytest.mark.parametrize("seed", SEEDS)
def test_pav_matches_the_min_max_formula(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    y = rng.random(n) + np.linspace(0, 0.5, n)
    w = rng.uniform(0.5, 3.0, n)
    means, sizes, starts = pool_adjacent_violators(y, w)
    np.testing.assert_allclose(expand(means, starts, n), slow_isotonic(y, w), atol=1e-12)
    assert np.all(np.diff(means) > 0), "blocks are strictly increasing (ties pooled)"
    np.testing.assert_allclose(sizes.sum(), w.sum())


def test_pav_of_binary_outcomes_and_of_an_increasing_input() -> None:
    means, _, starts = pool_adjacent_violators([0, 1, 0, 1, 1])
    np.testing.assert_allclose(expand(means, starts, 5), [0, 0.5, 0.5, 1, 1])
    means, _, starts = pool_adjacent_violators([0.1, 0.2, 0.3])
    np.testing.assert_allclose(means, [0.1, 0.2, 0.3])
    assert starts.tolist() == [0, 1, 2]


@pytest.mark.parametrize("seed", SEEDS)
def test_isotonic_curve_recovers_a_known_true_positive_rate(seed: int) -> None:
    # Outcomes drawn with P(true positive | s) = s**2: the fitted curve must follow it.
    rng = np.random.default_rng(seed)
    s = rng.random(40_000)
    hit = rng.random(len(s)) < s**2
    curve = fit_isotonic(s, hit)
    grid = np.linspace(0.1, 0.9, 81)
    # PAV blocks here hold hundreds of outcomes: 0.05 is several standard errors.
    np.testing.assert_allclose(curve(grid), grid**2, atol=0.05)
    assert np.all(np.diff(curve(np.linspace(0, 1, 1001))) >= 0)
    assert np.all(np.diff(curve.x) > 0) and np.all(np.diff(curve.y) > 0)
    assert (curve.n, curve.positives) == (len(s), int(hit.sum()))


def test_isotonic_pools_equal_scores_and_clamps_beyond_the_ends() -> None:
    curve = fit_isotonic([0.2, 0.2, 0.2, 0.2, 0.8, 0.8], [1, 0, 0, 0, 1, 1])
    np.testing.assert_allclose(curve.x, [0.2, 0.8])
    np.testing.assert_allclose(curve.y, [0.25, 1.0])
    np.testing.assert_allclose(curve([0.0, 0.2, 0.5, 0.8, 1.0]), [0.25, 0.25, 0.625, 1.0, 1.0])
    with pytest.raises(ValueError, match="at least one"):
        fit_isotonic([], [])


def test_raw_for_inverts_the_curve() -> None:
    curve = IsotonicCurve(np.array([0.1, 0.3, 0.6]), np.array([0.05, 0.4, 0.9]), 10, 5)
    assert curve.raw_for(0.01) == -np.inf and curve.raw_for(0.95) == np.inf
    for p in np.linspace(0.06, 0.9, 50):
        raw = curve.raw_for(float(p))
        assert curve(raw)[0] == pytest.approx(p, abs=1e-12)
        assert curve(raw - 1e-6)[0] < p


def two_class_matches(seed: int, n: int = 20_000, rare: int = 40) -> MatchedDetections:
    """Class 0: P(tp | s) = s; class 1: s / 2; class 2: only ``rare`` detections."""
    rng = np.random.default_rng(seed)
    s = rng.random(2 * n + rare)
    labels = np.repeat([0, 1, 2], [n, n, rare])
    rate = np.where(labels == 1, s / 2, s)
    hit = rng.random(len(s)) < rate
    n_gt = {c: int(hit[labels == c].sum()) + 100 for c in range(3)}
    return MatchedDetections(s, labels.astype(np.int64), hit, n_gt)


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_per_class_curves_and_the_fallback_for_a_rare_class(seed: int) -> None:
    matched = two_class_matches(seed)
    working = fit_working_scores(matched)
    assert working is not None
    calibration = working.calibration
    assert set(calibration.per_class) == {0, 1}, "class 2 has too few outcomes for its own"
    assert calibration.curve(2) is calibration.overall
    grid = np.linspace(0.1, 0.9, 9)
    np.testing.assert_allclose(calibration.calibrate(grid, np.zeros(9)), grid, atol=0.05)
    np.testing.assert_allclose(calibration.calibrate(grid, np.ones(9)), grid / 2, atol=0.05)
    np.testing.assert_allclose(
        calibration.calibrate(grid, np.full(9, 2)), calibration.overall(grid), atol=0
    )


def test_raw_threshold_keeps_every_box_that_reaches_the_confidence() -> None:
    matched = two_class_matches(0)
    working = fit_working_scores(matched, score_floor=0.001)
    assert working is not None
    calibration = working.calibration
    raw = np.linspace(0, 1, 20_001)
    for p in (0.05, 0.2, 0.4, 0.45, 0.7):
        cut = calibration.raw_threshold(p)
        for c in (0, 1, 2):
            reaches = raw[calibration.calibrate(raw, np.full(len(raw), c)) >= p]
            assert len(reaches) == 0 or reaches.min() >= cut
        assert calibration.raw_threshold(p) >= 0.001
    assert calibration.raw_threshold(0.0) == 0.001, "never below the fitted floor"
    assert calibration.raw_threshold(1.5) == 1.0


def slow_best_f1(preds: list[dict], gts: list[dict]) -> float:
    """Reference: evaluate_detections' own F1 at every distinct score."""
    scores = np.unique(np.concatenate([np.asarray(p["scores"]) for p in preds]))
    return max(evaluate_detections(preds, gts, score_threshold=float(t)).f1 for t in scores)


@pytest.mark.parametrize("seed", SEEDS)
def test_best_f1_matches_a_sweep_of_evaluate_detections(seed: int) -> None:
    preds, gts = make_data(seed, n_images=12)
    matched = evaluate_detections(preds, gts).matched
    point = best_f1(matched.scores, matched.true_positive, matched.total_gt)
    assert point.f1 == pytest.approx(slow_best_f1(preds, gts), abs=1e-12)
    again = evaluate_detections(preds, gts, score_threshold=point.threshold)
    assert (again.precision, again.recall) == pytest.approx((point.precision, point.recall))


def test_best_f1_by_hand_with_ties() -> None:
    # Two true positives at 0.9 and 0.7, false positives at 0.7 and 0.2; 3 ground truths.
    scores = [0.9, 0.7, 0.7, 0.2]
    hit = [True, True, False, False]
    point = best_f1(scores, hit, 3)
    # cut 0.9: F1 = 2/(1+0+3) = 0.5; cut 0.7 (keeps both 0.7s): 4/(2+1+3) = 2/3.
    assert point.threshold == 0.7 and point.f1 == pytest.approx(2 / 3)
    assert (point.true_positives, point.false_positives) == (2, 1)
    assert operating_point(scores, hit, 3, 0.75).f1 == pytest.approx(0.5)
    assert best_f1([], [], 5).f1 == 0.0
    none_right = best_f1([0.3, 0.6], [False, False], 2)
    assert (none_right.f1, none_right.threshold) == (0.0, 0.6)


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_working_threshold_of_calibrated_scores_is_half_the_best_f1(seed: int) -> None:
    # Known answer: when scores ARE the probability of a true positive, the F1-optimal cut
    # is F*/2 (Lipton et al. 2014, "Thresholding classifiers to maximize F1").
    rng = np.random.default_rng(seed)
    p = rng.beta(0.7, 0.7, 50_000)
    hit = rng.random(len(p)) < p
    n_gt = int(hit.sum()) + 2_000  # some objects no box found
    point = best_f1(p, hit, n_gt)
    # The empirical F1 is flat near its best, so its argmax wanders a few hundredths, but
    # the cut at F*/2 loses almost nothing.
    assert point.threshold == pytest.approx(point.f1 / 2, abs=0.04)
    assert operating_point(p, hit, n_gt, point.f1 / 2).f1 == pytest.approx(point.f1, abs=2e-3)


def test_fit_working_scores_reports_on_the_calibrated_scale() -> None:
    matched = two_class_matches(1)
    working = fit_working_scores(matched, split="val")
    assert working is not None
    confidence = working.calibration.calibrate(matched.scores, matched.labels)
    best = best_f1(confidence, matched.true_positive, matched.total_gt)
    assert working.threshold == best
    assert working.raw_threshold == best_f1(matched.scores, matched.true_positive, matched.total_gt)
    assert set(working.per_class) == {0, 1, 2}
    metrics = working.to_metrics()
    assert metrics["threshold"] == best.threshold and metrics["threshold_rule"] == "max_f1"
    assert metrics["threshold_scale"] == "calibrated" and metrics["threshold_split"] == "val"
    empty = MatchedDetections(np.array([0.5]), np.array([0]), np.array([False]), {0: 3})
    assert fit_working_scores(empty) is None


def test_calibration_json_round_trip_and_format_version() -> None:
    working = fit_working_scores(two_class_matches(2), score_floor=0.001)
    assert working is not None
    stored = json.loads(json.dumps(working.calibration.to_dict()))
    assert stored["format"] == FORMAT_VERSION and set(stored["per_class"]) == {"0", "1"}
    back = ScoreCalibration.from_dict(stored)
    raw, labels = np.linspace(0, 1, 501), np.tile([0, 1, 2], 167)[:501]
    np.testing.assert_allclose(
        back.calibrate(raw, labels),
        working.calibration.calibrate(raw, labels),
        atol=stored_atol(working.calibration),
    )
    assert back.score_floor == 0.001
    with pytest.raises(CalibrationUnreadable, match="format 2"):
        ScoreCalibration.from_dict({**stored, "format": 2})
    with pytest.raises(CalibrationUnreadable, match="not monotone"):
        ScoreCalibration.from_dict(
            {**stored, "overall": {"x": [0.1, 0.2], "y": [0.9, 0.1], "n": 2, "positives": 1}}
        )
    with pytest.raises(CalibrationUnreadable):
        ScoreCalibration.from_dict({**stored, "per_class": {"0": {"x": "no"}}})


def test_serving_scores_fall_back_step_by_step() -> None:
    working = fit_working_scores(two_class_matches(3))
    assert working is not None
    metrics = working.to_metrics()
    full = serving_scores(metrics, {"score_threshold": 0.25})
    assert (full.scale, full.rule, full.threshold) == ("calibrated", "max_f1", metrics["threshold"])
    assert full.calibration is not None
    unreadable = serving_scores({**metrics, "score_calibration": {"format": 99}})
    assert (unreadable.scale, unreadable.rule) == ("raw", "max_f1_raw")
    assert unreadable.threshold == metrics["threshold_raw"]
    np.testing.assert_array_equal(unreadable.confidences([0.3, 0.7], [0, 1]), [0.3, 0.7])
    assert unreadable.raw_threshold(0.4) == 0.4
    old = serving_scores({"val": {}}, {"score_threshold": 0.3})
    assert (old.scale, old.rule, old.threshold, old.calibration) == (
        "raw",
        "model_default",
        0.3,
        None,
    )
    assert serving_scores(None, None).threshold == 0.25
