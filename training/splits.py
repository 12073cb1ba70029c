"""Deterministic splits: which of train / val / test an image (or a person) belongs to.

Pure code (no Django). A split is persisted per *scheme* (``SplitAssignment.scheme``); today
every importer and every training command uses the one :data:`SPLIT_SCHEME`. The split itself
is :func:`deterministic_split`: each id's split depends only on the id and a seed, so adding
images later never moves an old one (a reshuffle would leak test images into training), and
the same function splits people for the faces datasets (a verifier is then validated and
tested on people it never trained on).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

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
