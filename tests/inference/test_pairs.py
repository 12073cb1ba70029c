"""Pair sampling and people-disjoint folds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from inference.pairs import all_eval_pairs, people_disjoint_folds, sample_pairs

# 6 people with 1..6 items each, shuffled so groups are not contiguous.
LABELS = np.random.default_rng(0).permutation(np.repeat(np.arange(6), np.arange(1, 7)))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_pairs", [1, 2, 101, 1000])
def test_sample_pairs_balanced_and_well_formed(seed: int, n_pairs: int) -> None:
    idx1, idx2, y = sample_pairs(LABELS, n_pairs, np.random.default_rng(seed))
    assert len(idx1) == len(idx2) == len(y) == n_pairs
    assert (y == 0).sum() == n_pairs // 2
    assert (y == 1).sum() == n_pairs - n_pairs // 2
    assert np.all(idx1 != idx2)
    assert np.array_equal(LABELS[idx1] == LABELS[idx2], y == 0)
    # The person with a single item can never be in a positive pair.
    singleton = np.flatnonzero(LABELS == 0)[0]
    assert not np.any((y == 0) & ((idx1 == singleton) | (idx2 == singleton)))


def test_sample_pairs_reaches_every_possible_partner() -> None:
    idx1, idx2, _ = sample_pairs(LABELS, 20_000, np.random.default_rng(3))
    seen = {(int(a), int(b)) for a, b in zip(idx1, idx2, strict=True)}
    # Every ordered pair of distinct items is possible: same-person ones as positives (the
    # singleton has none), the rest as negatives; uniform sampling must reach all of them.
    assert seen == set(itertools.permutations(range(len(LABELS)), 2))


def test_sample_pairs_is_deterministic_per_seed() -> None:
    a = sample_pairs(LABELS, 50, np.random.default_rng(7))
    b = sample_pairs(LABELS, 50, np.random.default_rng(7))
    c = sample_pairs(LABELS, 50, np.random.default_rng(8))
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c, strict=True))


def test_hard_negatives_are_the_nearest_other_person() -> None:
    rng = np.random.default_rng(4)
    embeddings = rng.normal(size=(len(LABELS), 8)).astype(np.float32)
    idx1, idx2, y = sample_pairs(
        LABELS, 40, rng, hard_negatives=True, embeddings=embeddings, hard_fraction=1.0
    )
    for a, b in zip(idx1[y == 1], idx2[y == 1], strict=True):
        others = [j for j in range(len(LABELS)) if LABELS[j] != LABELS[a]]
        nearest = min(others, key=lambda j: float(np.sum((embeddings[a] - embeddings[j]) ** 2)))
        assert b == nearest
    assert (y == 0).sum() == 20


def test_hard_negatives_share() -> None:
    rng = np.random.default_rng(5)
    embeddings = rng.normal(size=(len(LABELS), 8)).astype(np.float32)
    idx1, idx2, y = sample_pairs(LABELS, 400, rng, hard_negatives=True, embeddings=embeddings)
    d2 = ((embeddings[:, None, :] - embeddings[None, :, :]) ** 2).sum(-1)
    d2[LABELS[:, None] == LABELS[None, :]] = np.inf
    is_nearest = idx2[y == 1] == d2[idx1[y == 1]].argmin(axis=1)
    # Half of the 200 negatives are mined; the random half hits the nearest only by chance.
    assert 100 <= is_nearest.sum() < 150
    with pytest.raises(ValueError):
        sample_pairs(LABELS, 10, rng, hard_negatives=True)


def test_sample_pairs_rejects_impossible_requests() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        sample_pairs([0, 1, 2], 2, rng)  # nobody has two items: no positive
    with pytest.raises(ValueError):
        sample_pairs([3, 3, 3], 2, rng)  # one person: no negative


def _brute_force_positives(labels: np.ndarray) -> set[tuple[int, int]]:
    return {
        (a, b) for a, b in itertools.combinations(range(len(labels)), 2) if labels[a] == labels[b]
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_all_eval_pairs_enumerates_every_positive(seed: int) -> None:
    labels = np.random.default_rng(seed).integers(0, 8, size=40)
    idx1, idx2, y = all_eval_pairs(labels, np.random.default_rng(seed))
    positives = {(int(a), int(b)) for a, b in zip(idx1[y == 0], idx2[y == 0], strict=True)}
    negatives = [(int(a), int(b)) for a, b in zip(idx1[y == 1], idx2[y == 1], strict=True)]
    assert positives == _brute_force_positives(labels)
    assert (y == 0).sum() == len(positives)  # no duplicates
    assert len(negatives) == len(positives) == len(set(negatives))
    assert all(a < b and labels[a] != labels[b] for a, b in negatives)


def test_all_eval_pairs_takes_every_negative_when_they_are_scarce() -> None:
    labels = np.array([0, 0, 0, 0, 1])  # 6 positives, only 4 negatives
    idx1, idx2, y = all_eval_pairs(labels, np.random.default_rng(0))
    negatives = {(int(a), int(b)) for a, b in zip(idx1[y == 1], idx2[y == 1], strict=True)}
    assert negatives == {(0, 4), (1, 4), (2, 4), (3, 4)}
    assert (y == 0).sum() == 6


def test_all_eval_pairs_scales_to_ten_thousand_items() -> None:
    labels = np.repeat(np.arange(1000), 10)  # 45,000 positives among ~50 M pairs
    idx1, idx2, y = all_eval_pairs(labels, np.random.default_rng(0))
    assert (y == 0).sum() == (y == 1).sum() == 45_000
    negative_keys = idx1[y == 1] * len(labels) + idx2[y == 1]
    assert len(np.unique(negative_keys)) == 45_000
    assert np.all(labels[idx1[y == 1]] != labels[idx2[y == 1]])


@pytest.mark.parametrize("k", [2, 3, 5])
def test_folds_are_people_disjoint_and_cover_everyone_once(k: int) -> None:
    people = [f"s{n}" for n in range(1, 41)]
    items = [p for p in people for _ in range(10)]  # one id per image, as callers pass them
    folds = people_disjoint_folds(items, k, seed=1)
    assert len(folds) == k
    tested = [p for _, test in folds for p in test]
    assert sorted(tested) == sorted(people)  # each person tested exactly once
    for train, test in folds:
        assert not set(train) & set(test)
        assert set(train) | set(test) == set(people)
    sizes = [len(test) for _, test in folds]
    assert max(sizes) - min(sizes) <= 1


def test_folds_are_deterministic_per_seed_and_order_free() -> None:
    people = list(range(23))
    first = people_disjoint_folds(people, 4, seed=9)
    assert people_disjoint_folds(list(reversed(people)), 4, seed=9) == first
    assert people_disjoint_folds(people, 4, seed=10) != first
    with pytest.raises(ValueError):
        people_disjoint_folds([1, 2], 3, seed=0)
    with pytest.raises(ValueError):
        people_disjoint_folds(people, 1, seed=0)
