"""Pairs of face images for training and evaluating the Siamese verifier, and folds.

Pairs are returned as three aligned int64 arrays ``(idx1, idx2, y)`` of indices into the
caller's item list, with the notes' convention ``y = 0`` same person, ``y = 1`` different.

Everything is vectorised over items sorted by label: an item's group (its person) is a
contiguous run ``order[start : start + size]``, so "another item of my person" and
"an item of another person" are both one random offset into that order.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
PairArrays = tuple[IntArray, IntArray, IntArray]
T = TypeVar("T", bound=Hashable)


@dataclass(frozen=True)
class _Groups:
    """Items sorted by label; per-item arrays are indexed by the original item index."""

    order: IntArray  # (N,) original indices, sorted by label
    rank: IntArray  # (N,) position of each item in `order`
    start: IntArray  # (N,) position in `order` where the item's group starts
    size: IntArray  # (N,) number of items in the item's group


def _group(labels: Sequence[int] | npt.NDArray[np.integer]) -> _Groups:
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {array.shape}")
    order = np.argsort(array, kind="stable").astype(np.int64)
    _, first, counts = np.unique(array[order], return_index=True, return_counts=True)
    group_of_sorted = np.repeat(np.arange(len(counts)), counts)  # (N,) group id by position
    rank = np.empty(len(array), dtype=np.int64)
    rank[order] = np.arange(len(array), dtype=np.int64)
    start = first[group_of_sorted][rank].astype(np.int64)
    size = counts[group_of_sorted][rank].astype(np.int64)
    return _Groups(order=order, rank=rank, start=start, size=size)


def _positive_partners(groups: _Groups, anchors: IntArray, rng: np.random.Generator) -> IntArray:
    """Another item of each anchor's person, uniformly; anchors' groups need >= 2 items."""
    k = rng.integers(0, groups.size[anchors] - 1)  # offset among the group's other items
    k += k >= groups.rank[anchors] - groups.start[anchors]  # skip the anchor itself
    return np.asarray(groups.order[groups.start[anchors] + k], dtype=np.int64)


def _negative_partners(groups: _Groups, anchors: IntArray, rng: np.random.Generator) -> IntArray:
    """An item of another person for each anchor, uniformly over all such items."""
    n_items = len(groups.order)
    r = rng.integers(0, n_items - groups.size[anchors])  # position outside the anchor's group
    r += np.where(r >= groups.start[anchors], groups.size[anchors], 0)
    return np.asarray(groups.order[r], dtype=np.int64)


def _hard_partners(
    labels: npt.NDArray[np.generic], embeddings: npt.NDArray[np.floating], anchors: IntArray
) -> IntArray:
    """For each anchor, the closest item of another person under ``embeddings``."""
    emb = np.asarray(embeddings, dtype=np.float32)
    a = emb[anchors]  # (A, d)
    # Squared distances via one product; only the argmin matters so no sqrt or clamp.
    d2 = (a * a).sum(1)[:, None] + (emb * emb).sum(1)[None, :] - 2.0 * (a @ emb.T)  # (A, N)
    d2[labels[anchors][:, None] == labels[None, :]] = np.inf
    return np.asarray(np.argmin(d2, axis=1), dtype=np.int64)


def _check_request(
    groups: _Groups,
    n_pos: int,
    n_neg: int,
    hard_negatives: bool,
    embeddings: npt.NDArray[np.floating] | None,
    hard_fraction: float,
) -> None:
    """Raise ValueError for a pair request the labels cannot satisfy."""
    n_items = len(groups.order)
    if n_pos > 0 and not np.any(groups.size >= 2):
        raise ValueError("positive pairs need at least one person with two or more items")
    if n_neg > 0 and (n_items == 0 or groups.size[0] == n_items):
        raise ValueError("negative pairs need at least two different people")
    if not 0.0 <= hard_fraction <= 1.0:
        raise ValueError(f"hard_fraction must be in [0, 1], got {hard_fraction}")
    if hard_negatives and embeddings is None:
        raise ValueError("hard_negatives needs the items' current embeddings")
    if hard_negatives and embeddings is not None and len(embeddings) != n_items:
        raise ValueError(f"embeddings has {len(embeddings)} rows for {n_items} labels")


def sample_pairs(
    labels: Sequence[int] | npt.NDArray[np.integer],
    n_pairs: int,
    rng: np.random.Generator,
    *,
    hard_negatives: bool = False,
    embeddings: npt.NDArray[np.floating] | None = None,
    hard_fraction: float = 0.5,
) -> PairArrays:
    """Random training pairs, half same-person and half different-person, shuffled.

    Positives: an anchor drawn uniformly among items whose person has >= 2 items, paired with
    another item of that person. Negatives: an anchor drawn uniformly among all items, paired
    with a uniform item of another person. With ``hard_negatives``, ``hard_fraction`` of the
    negatives instead pair a random anchor with its nearest other-person item under the
    current ``embeddings``: the pairs the net confuses most are the ones that still teach it
    something (the contrastive loss is zero for negatives already past the margin).

    Args:
        labels: ``(N,)`` person id of each item.
        n_pairs: number of pairs; ``n_pairs // 2`` positives, the rest negatives.
        rng: the random generator (callers seed it for reproducible epochs).
        hard_negatives: mine part of the negatives from ``embeddings``.
        embeddings: ``(N, d)`` current embeddings of the items; required for hard negatives.
        hard_fraction: share of negatives that are mined, in [0, 1].

    Returns:
        ``idx1 (P,)``, ``idx2 (P,)``, ``y (P,)`` int64 with ``idx1 != idx2`` everywhere.
    """
    label_array = np.asarray(labels)
    groups = _group(label_array)
    n_items = len(label_array)
    n_pos, n_neg = n_pairs // 2, n_pairs - n_pairs // 2
    eligible = np.flatnonzero(groups.size >= 2)
    _check_request(groups, n_pos, n_neg, hard_negatives, embeddings, hard_fraction)
    pos_a = rng.choice(eligible, size=n_pos).astype(np.int64)
    pos_b = _positive_partners(groups, pos_a, rng)
    neg_a = rng.integers(0, n_items, size=n_neg).astype(np.int64)
    neg_b = _negative_partners(groups, neg_a, rng)
    n_hard = round(hard_fraction * n_neg) if hard_negatives else 0
    if n_hard and embeddings is not None:
        neg_b[:n_hard] = _hard_partners(label_array, embeddings, neg_a[:n_hard])
    idx1 = np.concatenate([pos_a, neg_a])
    idx2 = np.concatenate([pos_b, neg_b])
    y = np.concatenate([np.zeros(n_pos, np.int64), np.ones(n_neg, np.int64)])
    perm = rng.permutation(n_pairs)
    return idx1[perm], idx2[perm], y[perm]


def _all_positive_pairs(groups: _Groups) -> tuple[IntArray, IntArray]:
    """Every unordered same-person pair, ``i < j``."""
    firsts, seconds = [], []
    for item in np.unique(groups.start, return_index=True)[1]:  # one item of each person
        start, size = groups.start[item], groups.size[item]
        members = np.sort(groups.order[start : start + size])
        i, j = np.triu_indices(len(members), k=1)
        firsts.append(members[i])
        seconds.append(members[j])
    if not firsts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(firsts).astype(np.int64), np.concatenate(seconds).astype(np.int64)


def _distinct_negative_pairs(
    groups: _Groups, n_wanted: int, rng: np.random.Generator
) -> tuple[IntArray, IntArray]:
    """``n_wanted`` distinct different-person pairs, uniformly, without listing them all.

    In label order, the item at position ``p`` forms negatives with every item after its
    group's end, so negative pair number ``r`` decodes to a ``(p, q)`` with one
    ``searchsorted``; sampling ranks without replacement makes the pairs distinct even when
    ``N`` is 10,000 and there are 50 M of them.
    """
    n_items = len(groups.order)
    sorted_end = (groups.start + groups.size)[groups.order]  # (N,) by position
    per_position = n_items - sorted_end  # negatives whose first item is at position p
    total = int(per_position.sum())
    n_take = min(n_wanted, total)
    ranks = np.sort(rng.choice(total, size=n_take, replace=False)).astype(np.int64)
    cumulative = np.cumsum(per_position)
    p = np.searchsorted(cumulative, ranks, side="right")
    q = sorted_end[p] + ranks - (cumulative[p] - per_position[p])
    a, b = groups.order[p], groups.order[q]
    return np.minimum(a, b), np.maximum(a, b)


def all_eval_pairs(
    labels: Sequence[int] | npt.NDArray[np.integer], rng: np.random.Generator
) -> PairArrays:
    """Evaluation pairs: every same-person pair plus as many distinct different-person pairs.

    Using every positive removes sampling noise from the genuine side (it is the small
    side); negatives are sampled without repetition, all of them when there are fewer
    negatives than positives.

    Args:
        labels: ``(N,)`` person id of each item.
        rng: the random generator for the negatives.

    Returns:
        ``idx1 (P,)``, ``idx2 (P,)``, ``y (P,)`` int64, positives first, ``idx1 < idx2``.
    """
    groups = _group(labels)
    pos_1, pos_2 = _all_positive_pairs(groups)
    neg_1, neg_2 = _distinct_negative_pairs(groups, len(pos_1), rng)
    y = np.concatenate([np.zeros(len(pos_1), np.int64), np.ones(len(neg_1), np.int64)])
    return np.concatenate([pos_1, neg_1]), np.concatenate([pos_2, neg_2]), y


def people_disjoint_folds(
    identities: Sequence[T], k: int = 5, *, seed: int = 0
) -> list[tuple[list[T], list[T]]]:
    """Split people into ``k`` folds for cross-validation on people never seen in training.

    Args:
        identities: person ids, one per item or one per person (duplicates are merged).
        k: number of folds, 2 <= k <= number of people.
        seed: the same seed and people always give the same folds, whatever their order.

    Returns:
        ``k`` pairs ``(train_ids, test_ids)``; each person is in exactly one ``test_ids``
        and never in the same fold's ``train_ids``. Fold sizes differ by at most one.
    """
    # Sort before shuffling so the input order does not change the folds; the key copes
    # with ids of mixed types, which do not compare to each other.
    people = sorted(set(identities), key=lambda v: (type(v).__name__, str(v)))
    if not 2 <= k <= len(people):
        raise ValueError(f"k must be between 2 and the number of people ({len(people)}), got {k}")
    permutation = np.random.default_rng(seed).permutation(len(people))
    shuffled = [people[i] for i in permutation]
    folds: list[tuple[list[T], list[T]]] = []
    for test_positions in np.array_split(np.arange(len(people)), k):
        test_set = {shuffled[i] for i in test_positions}
        train = [p for p in people if p not in test_set]
        test = [p for p in people if p in test_set]
        folds.append((train, test))
    return folds
