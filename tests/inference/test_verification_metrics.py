"""ROC, AUC, EER and TAR@FAR against slow loop implementations of their definitions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inference.verification_metrics import (
    Calibration,
    auc,
    calibrate,
    distance_to_similarity,
    eer,
    roc_curve,
    tar_at_far,
    threshold_for_far,
)

SEEDS = [0, 1, 2, 3, 4]


def _pairs(seed: int, n: int = 300, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping distance distributions: same ~ N(0.6, 0.2), different ~ N(1.0, 0.2)."""
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.4
    distances = np.abs(rng.normal(np.where(same, 0.6, 1.0), 0.2))
    if ties:
        distances = np.round(distances, 1)  # many exact ties across both kinds
    return distances, same


def _rates(distances: np.ndarray, same: np.ndarray, threshold: float) -> tuple[float, float]:
    """(FAR, TAR) of the rule "accept distance < threshold", one pair at a time."""
    accepted_diff = sum(1 for d, s in zip(distances, same, strict=True) if not s and d < threshold)
    accepted_same = sum(1 for d, s in zip(distances, same, strict=True) if s and d < threshold)
    return accepted_diff / int((~same).sum()), accepted_same / int(same.sum())


def _slow_thresholds(distances: np.ndarray) -> list[float]:
    values = sorted(set(distances.tolist()))
    return [*values, float(np.nextafter(values[-1], np.inf))]


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_roc_matches_slow_reference(seed: int, ties: bool) -> None:
    distances, same = _pairs(seed, ties=ties)
    far, tar, thresholds = roc_curve(distances, same)
    assert thresholds.tolist() == _slow_thresholds(distances)
    for f, t, threshold in zip(far, tar, thresholds, strict=True):
        assert (f, t) == pytest.approx(_rates(distances, same, threshold))
    assert far[0] == tar[0] == 0.0 and far[-1] == tar[-1] == 1.0


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_auc_is_the_pairwise_win_rate(seed: int, ties: bool) -> None:
    distances, same = _pairs(seed, n=200, ties=ties)
    wins = 0.0
    for d_same in distances[same]:
        for d_diff in distances[~same]:
            wins += 1.0 if d_same < d_diff else 0.5 if d_same == d_diff else 0.0
    expected = wins / (same.sum() * (~same).sum())
    assert auc(distances, same) == pytest.approx(expected, abs=1e-12)


def _slow_eer(distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    points = [(t, *_rates(distances, same, t)) for t in _slow_thresholds(distances)]
    previous = (distances.min(), 0.0, 1.0)  # threshold, FAR, FRR before accepting anything
    for threshold, far, tar in points:
        frr = 1.0 - tar
        if far >= frr:
            t0, far0, frr0 = previous
            if far == frr:
                return far, threshold
            alpha = (frr0 - far0) / ((frr0 - far0) - (frr - far))
            return far0 + alpha * (far - far0), t0 + alpha * (threshold - t0)
        previous = (threshold, far, frr)
    raise AssertionError("FAR never reached FRR")


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_eer_matches_slow_reference_and_brackets(seed: int, ties: bool) -> None:
    distances, same = _pairs(seed, ties=ties)
    rate, threshold = eer(distances, same)
    expected_rate, expected_threshold = _slow_eer(distances, same)
    assert rate == pytest.approx(expected_rate, abs=1e-12)
    assert threshold == pytest.approx(expected_threshold, abs=1e-12)
    # The crossing lies between the best "worse of the two" and worst "better of the two".
    rates = [_rates(distances, same, t) for t in _slow_thresholds(distances)]
    upper = min(max(far, 1 - tar) for far, tar in rates)
    lower = max(min(far, 1 - tar) for far, tar in rates)
    assert lower - 1e-12 <= rate <= upper + 1e-12


@pytest.mark.parametrize("far_target", [0.01, 0.001, 0.05, 0.0, 1.0])
@pytest.mark.parametrize("seed", SEEDS)
def test_tar_at_far_matches_slow_reference(seed: int, far_target: float) -> None:
    distances, same = _pairs(seed, n=400)
    candidates = [
        (tar, t)
        for t in _slow_thresholds(distances)
        for far, tar in [_rates(distances, same, t)]
        if far <= far_target
    ]
    best_tar, best_threshold = max(candidates)
    assert tar_at_far(distances, same, far_target) == pytest.approx(best_tar)
    threshold = threshold_for_far(distances, same, far_target)
    assert threshold == best_threshold
    far, tar = _rates(distances, same, threshold)
    assert far <= far_target and tar == pytest.approx(best_tar)


def test_perfect_separation() -> None:
    same = np.array([True] * 5 + [False] * 5)
    distances = np.array([0.1, 0.2, 0.25, 0.3, 0.35, 0.8, 0.9, 1.0, 1.1, 1.2])
    # Every threshold in the gap (0.35, 0.8] has EER 0: the middle leaves equal room on both
    # sides for people not seen yet, where the gap's upper edge would accept any stranger
    # a little closer than the closest different-person pair here.
    rate, threshold = eer(distances, same)
    assert rate == 0.0 and threshold == pytest.approx(0.575)
    assert calibrate(distances, same).eer_threshold == pytest.approx(0.575)
    assert auc(distances, same) == 1.0
    assert tar_at_far(distances, same, 0.001) == 1.0
    assert threshold_for_far(distances, same, 0.0) == 0.8


def test_inverted_scores_give_auc_zero_and_eer_one() -> None:
    same = np.array([True, True, False, False])
    distances = np.array([0.9, 1.0, 0.1, 0.2])
    assert auc(distances, same) == 0.0
    assert eer(distances, same)[0] == 1.0


def test_rejects_one_sided_or_bad_input() -> None:
    with pytest.raises(ValueError):
        roc_curve([0.1, 0.2], [True, True])
    with pytest.raises(ValueError):
        roc_curve([0.1, np.nan], [True, False])
    with pytest.raises(ValueError):
        roc_curve([0.1, 0.2, 0.3], [True, False])
    with pytest.raises(ValueError):
        tar_at_far([0.1, 0.2], [True, False], 1.5)


def test_similarity_is_085_at_threshold_and_monotone() -> None:
    for threshold in [0.3, 1.0, 7.5]:
        # CompreFace clients' usual cut-offs 0.8-0.9 straddle our calibrated threshold.
        assert distance_to_similarity(threshold, threshold) == pytest.approx(0.85, abs=1e-12)
        assert distance_to_similarity(0.89 * threshold, threshold) == pytest.approx(0.90, abs=2e-3)
        assert distance_to_similarity(1.09 * threshold, threshold) == pytest.approx(0.80, abs=2e-3)
        assert distance_to_similarity(0.0, threshold) == 1.0
        grid = np.linspace(0.0, 10 * threshold, 1001)
        similarity = distance_to_similarity(grid, threshold)
        assert similarity.shape == grid.shape
        assert np.all(np.diff(similarity) < 0)
        assert np.all((similarity >= 0) & (similarity <= 1))
    assert isinstance(distance_to_similarity(0.5, 1.0), float)
    assert distance_to_similarity(1e300, 1.0) == 0.0
    with pytest.raises(ValueError):
        distance_to_similarity(0.5, 0.0)


def test_calibration_bundle() -> None:
    rng = np.random.default_rng(0)
    same = rng.random(5000) < 0.5
    distances = np.abs(rng.normal(np.where(same, 0.5, 1.1), 0.2))
    result = calibrate(distances, same)
    assert (result.eer, result.eer_threshold) == eer(distances, same)
    assert result.auc == pytest.approx(auc(distances, same))
    assert result.tar_at_far_1pct == tar_at_far(distances, same, 0.01)
    assert result.tar_at_far_01pct == tar_at_far(distances, same, 0.001)
    assert result.threshold_far_1pct == threshold_for_far(distances, same, 0.01)
    assert 150 <= len(result.roc_far) <= 202
    assert len(result.roc_far) == len(result.roc_tar) == len(result.roc_thresholds)
    assert result.roc_far[0] == 0.0 and result.roc_tar[-1] == 1.0
    assert np.all(np.diff(result.roc_thresholds) > 0)
    assert len(result.hist_edges) == len(result.hist_same) + 1 == 41
    assert sum(result.hist_same) == result.n_same == same.sum()
    assert sum(result.hist_different) == result.n_different == (~same).sum()
    restored = Calibration.from_dict(json.loads(json.dumps(result.to_dict())))
    assert restored == result
