"""Deterministic splits: which of train / train_val / val / test an image belongs to.

Pure code (no Django). A split is persisted per *scheme* (``SplitAssignment.scheme``); today
every importer and every training command uses the one :data:`SPLIT_SCHEME`.

Two functions make splits:

- :func:`deterministic_split` (the importers'): each id's split depends only on the id and a
  seed, so adding images later never moves an old one (a reshuffle would leak test images
  into training); it also splits people for the faces datasets.
- :func:`assign_splits` (the data-mismatch split the API builds): validation and test only
  from the *target* source, train from every source, a train-val set held out of the
  training distribution, sizes by the notes' rule (:func:`rule_sizes`), and people,
  identical bytes and near-identical photos (:mod:`inference.phash`) never in two splits.
  Stored splits are passed in and kept, so new images fill the sizes without moving old
  ones; what breaks the rules is reported, and moved only when the caller asks.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.phash import (
    NEAR_DUPLICATE_DISTANCE,
    as_hash_array,
    connected_components,
    near_duplicate_pairs,
    popcount,
)

# The name under which importers persist their splits and training reads them back.
SPLIT_SCHEME = "default"
SPLIT_NAMES = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)  # the notes' rule of thumb for under 10,000 images


def deterministic_split(
    stems: Iterable[str], seed: int = 0, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
) -> dict[str, list[str]]:
    """Split ids into train/val/test by a stable hash of ``seed`` and each id.

    Each id's split depends only on itself and the seed, so adding ids later never moves an
    old one between splits. The hash (SHA-256 of ``f"{seed}\\x00{stem}"``, first 8 bytes as a
    uniform number in ``[0, 1)``) must never change: stored splits were made with it.

    Args:
        stems: image ids (e.g. ``[r.stem for r in dataset.records]``) or person names.
        seed: a different seed gives a different, equally stable split.
        fractions: expected shares of ``(train, val, test)``; non-negative, summing to 1.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}`` with ids in input order.

    Raises:
        ValueError: ``fractions`` are not three non-negative numbers summing to 1.
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be 3 non-negative numbers summing to 1: {fractions}")
    bounds = (fractions[0], fractions[0] + fractions[1])
    out: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    for stem in stems:
        digest = hashlib.sha256(f"{seed}\x00{stem}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2.0**64  # uniform in [0, 1)
        split = "train" if u < bounds[0] else "val" if u < bounds[1] else "test"
        out[split].append(stem)
    return out


# --------------------------------------------------------------------------------------
# Splits under data mismatch: validation and test from the target source only, train from
# every source, train-val held out of the training distribution; sizes by the notes' rule;
# people, identical bytes and near-identical images never straddle two splits.

ALL_SPLITS = ("train", "train_val", "val", "test")
TRAINING_SPLITS = ("train", "train_val")  # the training distribution: any source
TARGET_SPLITS = ("val", "test")  # the target distribution only
_INDEX = {name: i for i, name in enumerate(ALL_SPLITS)}
_TRAIN, _TRAIN_VAL, _VAL, _TEST = range(4)

# "Enough" examples in each of validation and test: at 10,000 the standard error of a 10%
# error rate is 0.3 points, so models 1 point apart are told apart.
ENOUGH_EXAMPLES = 10_000
LARGE_FRACTION = 0.01  # over 1,000,000 items the notes' 98/1/1: 1% each is above enough
# Validation and test each take this share of the target items when the target is all
# the data (the notes' 60/20/20) ...
TARGET_SHARE_ALONE = 0.2
# ... rising linearly to this one as other sources supply nearly all the training data
# (the notes: "use all/most data from the app for the validation and test set"), which
# still leaves 20% of the target for training ("maybe some data from the app").
TARGET_SHARE_MINORITY = 0.4
TRAIN_VAL_MAX_FRACTION = 0.1  # train-val: as many as val, at most 10% of the training pool


class SplitError(ValueError):
    """A request the split cannot honour; ``code`` and ``details`` for an API answer."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


@dataclass(frozen=True, slots=True)
class SplitItem:
    """One image as the split sees it.

    Attributes:
        key: the caller's id (e.g. the image id as text); unique.
        content_hash: SHA-256 (hex) of the image bytes: seeds its draw; equal hashes are the
            same image and always share a split.
        source: the distribution it came from (``web``, ``app``, ...).
        groups: keys that must not straddle splits, e.g. the people in a face photo; items
            sharing any key share a split (a photo of two people ties them together).
        phash: its 64-bit perceptual hash (:mod:`inference.phash`), or None: items within
            ``max_distance`` bits share a split.
        existing: the split it already has (stored earlier, or its folder's own), or None.
    """

    key: str
    content_hash: str
    source: str
    groups: tuple[str, ...] = ()
    phash: int | None = None
    existing: str | None = None


@dataclass(frozen=True)
class SizeRequest:
    """The caller's sizes; None keeps the rule's. A number below 1 is a fraction (of the
    target items for ``val`` and ``test``, of the training pool for ``train_val``), a whole
    number of 1 or more is a count of items."""

    val: float | None = None
    test: float | None = None
    train_val: float | None = None


@dataclass(frozen=True)
class SplitSizes:
    """How many items each held-out split should hold in all (assigned before or now)."""

    val: int
    test: int
    train_val: int
    target_items: int
    all_items: int
    rule: str


def _round(x: float) -> int:
    return math.floor(x + 0.5)


def rule_sizes(target_items: int, all_items: int) -> tuple[int, int]:
    """The notes' rule: ``(val, test)`` sizes, equal, for ``target_items`` of ``all_items``.

    Each is ``share * target_items`` (``share`` from 20% when the target is all the data
    to 40% when it is a vanishing minority), capped at ``max(10,000, 1% of all items)``:
    under 10,000 items this is 60/20/20, over 1,000,000 (one source) 98/1/1, and in
    between validation and test keep 10,000 items each where 20% would be more.
    """
    if all_items <= 0 or target_items <= 0:
        return 0, 0
    minority = 1.0 - target_items / all_items
    share = TARGET_SHARE_ALONE + (TARGET_SHARE_MINORITY - TARGET_SHARE_ALONE) * minority
    cap = max(ENOUGH_EXAMPLES, _round(LARGE_FRACTION * all_items))
    each = min(_round(share * target_items), cap)
    return each, each


def _requested(value: float | None, base: int, name: str) -> int | None:
    """A requested size as a count of items, or None for the rule's."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SplitError("invalid_sizes", f"sizes.{name} must be a number.")
    if value < 0:
        raise SplitError("invalid_sizes", f"sizes.{name} must not be negative.")
    if value < 1:
        return _round(value * base)
    if value != int(value):
        raise SplitError(
            "invalid_sizes",
            f"sizes.{name}: a number of 1 or more is a count and must be whole (got {value}).",
        )
    return int(value)


def split_sizes(
    target_items: int, all_items: int, request: SizeRequest | None = None
) -> SplitSizes:
    """The sizes of val, test and train_val, by the rule or the caller's request.

    Raises:
        SplitError: a request is malformed or asks for more items than there are.
    """
    request = request or SizeRequest()
    rule_val, rule_test = rule_sizes(target_items, all_items)
    val = _requested(request.val, target_items, "val")
    test = _requested(request.test, target_items, "test")
    val, test = (rule_val if val is None else val), (rule_test if test is None else test)
    if val + test > target_items:
        raise SplitError(
            "sizes_too_large",
            f"val and test ask for {val} + {test} items but the target source has {target_items}.",
            {"val": val, "test": test, "target_items": target_items},
        )
    pool = all_items - val - test
    train_val = _requested(request.train_val, pool, "train_val")
    if train_val is None:
        train_val = min(val, _round(TRAIN_VAL_MAX_FRACTION * pool))
    if train_val > pool:
        raise SplitError(
            "sizes_too_large",
            f"train_val asks for {train_val} items but the training pool has {pool}.",
            {"train_val": train_val, "training_pool": pool},
        )
    rule = (
        f"val {val} and test {test} of the {target_items} target items ("
        + ("requested" if request.val is not None or request.test is not None else "rule")
        + f"); train_val {train_val} of the {pool} left for training ("
        + ("requested" if request.train_val is not None else "rule")
        + ")"
    )
    return SplitSizes(val, test, train_val, target_items, all_items, rule)


@dataclass(frozen=True)
class Move:
    """An item whose stored split was changed (only when ``keep_existing`` is False)."""

    key: str
    from_split: str
    to_split: str


@dataclass(frozen=True)
class Problem:
    """Items that break a rule (kept as they are) or could not be placed (left out).

    ``code``: ``not_target`` (a non-target item in val or test), ``spread`` (one person or
    duplicate group in several splits), ``conflict`` (a new item whose group sits in val or
    test but which is not from the target source: left out, since either place leaks).
    """

    code: str
    message: str
    keys: tuple[str, ...]
    splits: tuple[str, ...]


@dataclass(frozen=True)
class DuplicateGroup:
    """Identical or near-identical images that were kept in one split."""

    keys: tuple[str, ...]
    kind: str  # "identical" (same bytes) or "near" (perceptual hashes within the threshold)
    max_distance: int  # the largest Hamming distance of a link in the group (0: identical)
    splits: tuple[str, ...]  # more than one only for stored splits kept as they were


@dataclass
class SplitResult:
    """What :func:`assign_splits` decided.

    ``splits`` has every placed item (kept, new or moved); ``counts`` the items per split
    after it; ``added`` the items newly assigned per split; items in neither ``splits``
    nor ``left_out`` do not exist.
    """

    splits: dict[str, str]
    sizes: SplitSizes
    counts: dict[str, int]
    added: dict[str, int]
    moved: list[Move] = field(default_factory=list)
    violations: list[Problem] = field(default_factory=list)
    left_out: list[Problem] = field(default_factory=list)
    duplicate_groups: list[DuplicateGroup] = field(default_factory=list)


@dataclass
class _Columns:
    """The items as arrays, one entry per item: what the vectorised steps work on."""

    keys: list[str]
    target: npt.NDArray[np.bool_]  # (N,)
    existing: npt.NDArray[np.int64]  # (N,) split index or -1
    code: npt.NDArray[np.int64]  # (N,) index of the content hash
    hashes: list[str]  # the distinct content hashes, by code
    hash_edges: npt.NDArray[np.int64]  # (E, 2) same bytes
    group_edges: npt.NDArray[np.int64]  # (E, 2) same person
    near_edges: npt.NDArray[np.int64]  # (E, 2) near-identical
    near_distance: npt.NDArray[np.int64]  # (E,)


def _edges(pairs: list[tuple[int, int]]) -> npt.NDArray[np.int64]:
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def _columns(items: Sequence[SplitItem], target_source: str, max_distance: int) -> _Columns:
    """Check the items and turn them into arrays (one Python pass, then NumPy)."""
    keys = [item.key for item in items]
    if len(set(keys)) != len(keys):
        raise SplitError("duplicate_keys", "Every item needs its own key.")
    first_of_hash: dict[str, int] = {}
    first_of_group: dict[str, int] = {}
    hash_pairs: list[tuple[int, int]] = []
    group_pairs: list[tuple[int, int]] = []
    codes = np.empty(len(items), dtype=np.int64)
    for i, item in enumerate(items):
        first = first_of_hash.setdefault(item.content_hash, i)
        codes[i] = codes[first] if first != i else len(first_of_hash) - 1
        if first != i:
            hash_pairs.append((i, first))
        for group in item.groups:
            first = first_of_group.setdefault(group, i)
            if first != i:
                group_pairs.append((i, first))
    unknown = {item.existing for item in items} - {None, *ALL_SPLITS}
    if unknown:
        raise SplitError(
            "unknown_split", f"Unknown existing split(s): {sorted(map(str, unknown))}."
        )
    existing = np.fromiter(
        (-1 if item.existing is None else _INDEX[item.existing] for item in items),
        dtype=np.int64,
        count=len(items),
    )
    target = np.fromiter((item.source == target_source for item in items), bool, len(items))
    with_phash = [i for i, item in enumerate(items) if item.phash is not None]
    phashes = as_hash_array([items[i].phash or 0 for i in with_phash])
    pairs = near_duplicate_pairs(phashes, max_distance)
    near = np.asarray(with_phash, dtype=np.int64)[pairs].reshape(-1, 2)
    distance = popcount(phashes[pairs[:, 0]] ^ phashes[pairs[:, 1]]).astype(np.int64)
    return _Columns(
        keys,
        target,
        existing,
        codes,
        list(first_of_hash),
        _edges(hash_pairs),
        _edges(group_pairs),
        near,
        distance,
    )


def _draws(hashes: list[str], seed: int) -> npt.NDArray[np.float64]:
    """Three independent uniforms in [0, 1) per content hash: ``(H, 3)``.

    Column 0 orders the target units into val and test, column 1 picks a unit's canonical
    member, column 2 orders the training pool into train_val (independent of column 0, so
    target items not taken for val/test are not under-drawn for train_val).
    """
    digests = b"".join(hashlib.sha256(f"{seed}\x00{h}".encode()).digest() for h in hashes)
    words = np.frombuffer(digests, dtype=">u8").reshape(-1, 4)[:, :3]
    return words.astype(np.float64) / 2.0**64


@dataclass
class _Units:
    """Items joined into units that must share a split (person, same or near bytes)."""

    of_item: npt.NDArray[np.int64]  # (N,) unit index
    size: npt.NDArray[np.int64]  # (U,)
    eligible: npt.NDArray[np.bool_]  # (U,) every member from the target: may go to val/test
    order_draw: npt.NDArray[np.float64]  # (U,) for val/test
    pool_draw: npt.NDArray[np.float64]  # (U,) for train_val
    existing: npt.NDArray[np.int64]  # (U, 4) members already in each split


def _units(cols: _Columns, seed: int) -> _Units:
    n = len(cols.keys)
    edges = np.concatenate([cols.hash_edges, cols.group_edges, cols.near_edges])
    _, of_item = np.unique(connected_components(n, edges), return_inverse=True)
    of_item = of_item.astype(np.int64)
    count = int(of_item.max()) + 1 if n else 0
    draws = _draws(cols.hashes, seed)[cols.code]  # (N, 3)
    # A unit draws with its canonical member: the one with the smallest second draw, a
    # uniformly random member, so big units are not biased towards either end.
    order = np.lexsort((draws[:, 1], of_item))
    first = order[np.r_[0, np.flatnonzero(np.diff(of_item[order])) + 1]] if n else order
    has = cols.existing >= 0
    existing = np.bincount(of_item[has] * 4 + cols.existing[has], minlength=4 * count)
    return _Units(
        of_item=of_item,
        size=np.bincount(of_item, minlength=count),
        eligible=np.bincount(of_item, weights=(~cols.target).astype(float), minlength=count) == 0,
        order_draw=draws[first, 0],
        pool_draw=draws[first, 2],
        existing=existing.reshape(count, 4),
    )


def _majority(units: _Units) -> npt.NDArray[np.int64]:
    """Each unit's most common stored split (ties drawn by the unit's hash), -1 if none."""
    counts = units.existing
    ties = (counts == counts.max(axis=1, keepdims=True)) & (counts > 0)
    tied = ties.sum(axis=1)
    rank = np.floor(units.order_draw * np.maximum(tied, 1)).astype(np.int64)
    choice = np.argmax(np.cumsum(ties, axis=1) > rank[:, None], axis=1)
    return np.where(tied > 0, choice, -1).astype(np.int64)


def _fill(
    units: npt.NDArray[np.int64],
    sizes: npt.NDArray[np.int64],
    draw: npt.NDArray[np.float64],
    wanted: list[int],
) -> npt.NDArray[np.int64]:
    """Deal ``units`` (ordered by ``draw``) to quotas of items: the index of the quota
    each unit falls in, ``len(wanted)`` past the last one.

    A unit belongs to the quota its middle item falls in, so a quota is met to within half
    a unit (exactly, for single items).
    """
    rank = np.argsort(draw[units], kind="stable")
    ordered_sizes = sizes[units[rank]]
    middle = np.cumsum(ordered_sizes) - ordered_sizes / 2.0
    out = np.empty(len(units), dtype=np.int64)
    out[rank] = np.searchsorted(np.cumsum(wanted), middle, side="right")
    return out


def _pin(
    cols: _Columns, units: _Units, keep_existing: bool
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], list[Problem]]:
    """Items whose split follows from stored ones: ``(split per item or -1, free units,
    left-out problems)``.

    Keeping: stored items stay; a new member follows its unit's majority split unless that
    is val/test and it is not from the target (then it is left out: in train it would be a
    leak, in val/test it breaks the source rule). Repairing: a unit moves whole to its
    majority split if that is allowed for all its members; otherwise it is placed anew.
    """
    majority = _majority(units)
    allowed_for_unit = (majority >= 0) & ((majority <= _TRAIN_VAL) | units.eligible)
    final = np.full(len(cols.keys), -1, dtype=np.int64)
    left_out: list[Problem] = []
    if keep_existing:
        free = majority < 0
        final = cols.existing.copy()
        follows = (final < 0) & ~free[units.of_item]
        split = majority[units.of_item]
        fits = follows & ((split <= _TRAIN_VAL) | cols.target)
        final[fits] = split[fits]
        for i in np.flatnonzero(follows & ~fits).tolist():
            name = ALL_SPLITS[int(split[i])]
            left_out.append(
                Problem(
                    "conflict",
                    f"{cols.keys[i]} is a duplicate or shares a person with images in {name} "
                    "but is not from the target source: left out of every split.",
                    (cols.keys[i],),
                    (name,),
                )
            )
    else:
        free = ~allowed_for_unit
        pinned = ~free[units.of_item]
        final[pinned] = majority[units.of_item][pinned]
    return final, free, left_out


def _place(
    final: npt.NDArray[np.int64],
    free: npt.NDArray[np.bool_],
    units: _Units,
    sizes: SplitSizes,
    movable: npt.NDArray[np.bool_],
) -> None:
    """Deal the free units to fill val, test and train_val up to their sizes; the rest
    train. Only units all from the target may go to val/test; when the free ones are not
    enough, ``movable`` units (repairing: target units stored in train) are taken after them.
    """
    have = np.bincount(final[final >= 0], minlength=4)
    need = [max(0, size - int(have[s])) for s, size in ((_VAL, sizes.val), (_TEST, sizes.test))]
    unit_split = np.full(len(units.size), -1, dtype=np.int64)
    candidates = np.flatnonzero((free & units.eligible) | movable)
    # Draws are in [0, 1): +1 puts every movable unit after every free one.
    order = units.order_draw + movable.astype(np.float64)
    which = _fill(candidates, units.size, order, need)
    unit_split[candidates[which == 0]] = _VAL
    unit_split[candidates[which == 1]] = _TEST
    pool = np.flatnonzero(free & (unit_split < 0))
    need_tv = max(0, sizes.train_val - int(have[_TRAIN_VAL]))
    which = _fill(pool, units.size, units.pool_draw, [need_tv])
    unit_split[pool] = np.where(which == 0, _TRAIN_VAL, _TRAIN)
    placed = unit_split[units.of_item] >= 0
    final[placed] = unit_split[units.of_item][placed]


def assign_splits(
    items: Sequence[SplitItem],
    target_source: str,
    *,
    sizes: SizeRequest | None = None,
    keep_existing: bool = True,
    seed: int = 0,
    max_distance: int = NEAR_DUPLICATE_DISTANCE,
) -> SplitResult:
    """Assign every item to train, train_val, val or test under data mismatch.

    - val and test only from ``target_source``; train and train_val from every source.
    - Units (items sharing a content hash, a group key, or perceptual hashes within
      ``max_distance`` bits, transitively) share one split; a unit with any non-target
      member goes to the training pool.
    - Sizes (items, counting those already assigned) from :func:`split_sizes`; new units are
      dealt in the order of a hash of ``seed`` and their content hash, so the same items
      always get the same answer.
    - ``keep_existing`` (default): stored splits never move, even those that now break
      the rules (a non-target item in val/test after the target changed, a group spread
      over splits); they are reported in ``violations``. False (repair): each such unit
      moves whole to its most common stored split if allowed, else is placed anew, and if
      new items cannot fill val and test to their sizes (after a target change, say),
      target images stored in train are moved there; train_val and valid val/test
      assignments stay. Every move is listed in ``moved``.

    Cost: one Python pass over the items, the rest vectorised; 1,000,000 items take about
    3 s (plus the perceptual-hash search, about 2 s per 100,000 hashes).

    Raises:
        SplitError: no item has ``target_source``, bad sizes, duplicate keys, an unknown
            stored split.
    """
    cols = _columns(items, target_source, max_distance)
    target_items = int(cols.target.sum())
    if target_items == 0:
        sources = sorted({item.source for item in items})
        raise SplitError(
            "unknown_source",
            f"No item has the source {target_source!r}.",
            {"sources": sources},
        )
    wanted = split_sizes(target_items, len(items), sizes)
    units = _units(cols, seed)
    violations = _violations(cols, units) if keep_existing else []
    final, free, left_out = _pin(cols, units, keep_existing)
    in_train = np.zeros(len(units.size), dtype=bool)
    if not keep_existing:  # repairing may refill val and test from target images in train
        in_train[units.of_item[final == _TRAIN]] = True
        in_train[units.of_item[(final >= 0) & (final != _TRAIN)]] = False
    _place(final, free, units, wanted, in_train & units.eligible & ~free)
    return _result(cols, final, wanted, violations, left_out)


def _members(
    labels: npt.NDArray[np.int64], nodes: npt.NDArray[np.int64]
) -> list[npt.NDArray[np.int64]]:
    """``nodes`` grouped by their label, groups in label order, members in index order."""
    if len(nodes) == 0:
        return []
    nodes = nodes[np.lexsort((nodes, labels[nodes]))]
    cuts = np.flatnonzero(np.diff(labels[nodes])) + 1
    return np.split(nodes, cuts)


def _violations(cols: _Columns, units: _Units) -> list[Problem]:
    """Stored splits that break the rules, kept as they are."""
    found = []
    for split in (_VAL, _TEST):
        bad = np.flatnonzero((cols.existing == split) & ~cols.target)
        if len(bad):
            name = ALL_SPLITS[split]
            found.append(
                Problem(
                    "not_target",
                    f"{len(bad)} item(s) in {name} are not from the target source; kept "
                    "(send keep_existing false to move them to the training pool).",
                    tuple(cols.keys[i] for i in bad.tolist()),
                    (name,),
                )
            )
    spread = (units.existing > 0).sum(axis=1) > 1
    for members in _members(units.of_item, np.flatnonzero(spread[units.of_item])):
        unit = int(units.of_item[members[0]])
        names = tuple(ALL_SPLITS[s] for s in np.flatnonzero(units.existing[unit]).tolist())
        found.append(
            Problem(
                "spread",
                f"{len(members)} items that must share a split (same person or duplicate "
                f"images) are in {', '.join(names)}; kept (send keep_existing false to join "
                "them).",
                tuple(cols.keys[i] for i in members.tolist()),
                names,
            )
        )
    return found


def _duplicate_groups(cols: _Columns, final: npt.NDArray[np.int64]) -> list[DuplicateGroup]:
    """Groups of identical or near-identical items (persons are not listed)."""
    edges = np.concatenate([cols.hash_edges, cols.near_edges])
    if len(edges) == 0:
        return []
    labels = connected_components(len(cols.keys), edges)
    farthest = np.zeros(len(cols.keys), dtype=np.int64)
    np.maximum.at(farthest, labels[cols.near_edges[:, 0]], cols.near_distance)
    groups = []
    for members in _members(labels, np.unique(edges)):
        label = int(labels[members[0]])
        splits = sorted({int(s) for s in final[members].tolist() if s >= 0})
        identical = len(set(cols.code[members].tolist())) == 1
        groups.append(
            DuplicateGroup(
                keys=tuple(cols.keys[i] for i in members.tolist()),
                kind="identical" if identical else "near",
                max_distance=int(farthest[label]),
                splits=tuple(ALL_SPLITS[s] for s in splits),
            )
        )
    return groups


def _result(
    cols: _Columns,
    final: npt.NDArray[np.int64],
    sizes: SplitSizes,
    violations: list[Problem],
    left_out: list[Problem],
) -> SplitResult:
    placed = np.flatnonzero(final >= 0)
    moved_mask = (cols.existing >= 0) & (final != cols.existing)
    new_mask = (cols.existing < 0) & (final >= 0)
    counts = np.bincount(final[placed], minlength=4)
    added = np.bincount(final[new_mask], minlength=4)
    keys = cols.keys
    return SplitResult(
        splits=dict(
            zip(
                [keys[i] for i in placed.tolist()],
                [ALL_SPLITS[s] for s in final[placed].tolist()],
                strict=True,
            )
        ),
        sizes=sizes,
        counts={name: int(counts[i]) for i, name in enumerate(ALL_SPLITS)},
        added={name: int(added[i]) for i, name in enumerate(ALL_SPLITS)},
        moved=[
            Move(keys[i], ALL_SPLITS[int(cols.existing[i])], ALL_SPLITS[int(final[i])])
            for i in np.flatnonzero(moved_mask).tolist()
        ],
        violations=violations,
        left_out=left_out,
        duplicate_groups=_duplicate_groups(cols, final),
    )


@dataclass(frozen=True)
class SplitAudit:
    """Stored splits checked against the rules: what :func:`assign_splits` would report."""

    violations: list[Problem]
    duplicate_groups: list[DuplicateGroup]


def audit_splits(
    items: Sequence[SplitItem],
    target_source: str,
    *,
    max_distance: int = NEAR_DUPLICATE_DISTANCE,
) -> SplitAudit:
    """The rule-breakers and the duplicate groups of the items' stored splits
    (``SplitItem.existing``), changing nothing. With no target source (``""``), only
    groups spread over splits count as violations."""
    cols = _columns(items, target_source, max_distance)
    if not target_source:
        cols.target[:] = True
    units = _units(cols, seed=0)
    return SplitAudit(_violations(cols, units), _duplicate_groups(cols, cols.existing))
