"""The perceptual hash: against a slow reference, on real photos and their altered copies,
and the fast near-duplicate search against brute force."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from inference.phash import (
    NEAR_DUPLICATE_DISTANCE,
    connected_components,
    hamming,
    near_duplicate_groups,
    near_duplicate_pairs,
    phash,
    phash_bytes,
    popcount,
)
from tests.shared_data import shared_path


def reference_phash(grey: np.ndarray) -> int:
    """The same hash written out: an explicit orthonormal DCT-II matrix, bit by bit."""
    small = cv2.resize(grey.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    n = np.arange(32)
    basis = np.cos(np.pi * (2 * n[None, :] + 1) * n[:, None] / 64) * np.sqrt(2 / 32)
    basis[0] /= np.sqrt(2)
    coefficients = (basis @ small.astype(np.float64) @ basis.T)[:8, :8].reshape(-1)
    median = np.median(coefficients[1:])
    value = 0
    for c in coefficients:
        value = (value << 1) | int(c > median)
    return value


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_phash_matches_the_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Smooth random images (an upsampled 6x6 pattern), so no coefficient sits on the median.
    grey = cv2.resize(rng.integers(0, 256, (6, 6)).astype(np.uint8), (97, 71))
    assert phash(grey) == reference_phash(grey)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    assert phash(rgb) == phash(grey)


def test_phash_rejects_what_is_not_an_image() -> None:
    with pytest.raises(ValueError, match="pixels"):
        phash(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="decodable"):
        phash_bytes(b"not an image")
    with pytest.raises(ValueError, match="decodable"):
        phash_bytes(b"")


def test_popcount_and_hamming() -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(0, 2**63, 1000, dtype=np.int64).astype(np.uint64) * np.uint64(2) + 1
    assert popcount(values).tolist() == [bin(int(v)).count("1") for v in values]
    assert hamming(0b1011, 0b0001) == 2
    assert hamming(2**64 - 1, 0) == 64


def _planted(seed: int, n: int) -> np.ndarray:
    """``n`` random hashes, the last fifth copies of earlier ones with 0..10 bits flipped."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    hashes |= rng.integers(0, 2, n).astype(np.uint64)
    for i in range(n - n // 5, n):
        value = int(hashes[rng.integers(0, n - n // 5)])
        for bit in rng.choice(64, rng.integers(0, 11), replace=False):
            value ^= 1 << int(bit)
        hashes[i] = value
    return hashes


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("distance", [0, 3, 8])
def test_near_duplicate_pairs_match_brute_force(seed: int, distance: int) -> None:
    hashes = _planted(seed, 3000)  # above the brute-force size: the pigeonhole search runs
    found = near_duplicate_pairs(hashes, distance)
    if seed == 0:  # plain Python over every pair
        ints = [int(h) for h in hashes]
        slow = [
            (i, j)
            for i in range(len(ints))
            for j in range(i + 1, len(ints))
            if (ints[i] ^ ints[j]).bit_count() <= distance
        ]
    else:  # the other seeds against a vectorised all-pairs matrix (faster)
        diff = popcount(hashes[:, None] ^ hashes[None, :])
        i, j = np.nonzero(np.triu(diff <= distance, k=1))
        slow = list(zip(i.tolist(), j.tolist(), strict=True))
    assert [tuple(p) for p in found.tolist()] == slow
    assert len(slow) >= 30  # the planted copies (about 1 in 11 of 600 per flipped bit count)


def test_near_duplicate_pairs_small_and_empty() -> None:
    assert near_duplicate_pairs([]).shape == (0, 2)
    assert near_duplicate_pairs([5]).shape == (0, 2)
    assert near_duplicate_pairs([0, 0b111, 2**63]).tolist() == [[0, 1], [0, 2], [1, 2]]
    assert near_duplicate_pairs([0, 0b111, 2**63], 2).tolist() == [[0, 2]]
    with pytest.raises(ValueError, match="max_distance"):
        near_duplicate_pairs([1, 2], 65)


def _reference_components(n: int, pairs: list[tuple[int, int]]) -> list[int]:
    parent = list(range(n))

    def root(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = root(a), root(b)
        parent[max(ra, rb)] = min(ra, rb)
    return [root(i) for i in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_connected_components_match_union_find(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 500
    pairs = rng.integers(0, n, (300, 2))
    chain = np.stack([np.arange(400, 499), np.arange(401, 500)], axis=1)[::-1]  # a long path
    pairs = np.concatenate([pairs, chain]).astype(np.int64)
    labels = connected_components(n, pairs)
    assert labels.tolist() == _reference_components(n, [tuple(p) for p in pairs.tolist()])
    assert connected_components(3, np.empty((0, 2), np.int64)).tolist() == [0, 1, 2]


# ------------------------------------------------------------------ real photos


def _encode(pixels: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return bytes(data.tobytes())


def altered_copies(path: Path) -> dict[str, bytes]:
    """A photo as a public set or a user re-uploads it: re-encoded, resized, brightened."""
    bgr = cv2.imread(str(path))
    half = cv2.resize(bgr, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    brighter = cv2.convertScaleAbs(bgr, alpha=1.0, beta=40)
    combined = cv2.convertScaleAbs(
        cv2.resize(bgr, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA), alpha=1.1, beta=25
    )
    return {
        "jpeg q30": _encode(bgr, 30),
        "png": bytes(cv2.imencode(".png", bgr)[1].tobytes()),
        "half size": _encode(half, 90),
        "brighter": _encode(brighter, 90),
        "smaller, brighter, q60": _encode(combined, 60),
    }


@pytest.mark.parametrize(
    ("folder", "pattern"), [("bccd", "JPEGImages/*.jpg"), ("coco128", "images/*.jpg")]
)
def test_altered_copies_of_real_photos_stay_near(folder: str, pattern: str) -> None:
    photos = sorted(shared_path(folder).glob(pattern))[:40]
    worst = 0
    for photo in photos:
        original = phash_bytes(photo.read_bytes())
        for name, data in altered_copies(photo).items():
            distance = hamming(original, phash_bytes(data))
            assert distance <= NEAR_DUPLICATE_DISTANCE, (photo.name, name, distance)
            worst = max(worst, distance)
    assert worst <= 6  # measured: the threshold keeps a margin of 2 bits


@pytest.mark.parametrize(
    ("folder", "pattern"), [("bccd", "JPEGImages/*.jpg"), ("coco128", "images/*.jpg")]
)
def test_different_real_photos_are_not_grouped(folder: str, pattern: str) -> None:
    photos = sorted(shared_path(folder).glob(pattern))
    groups = near_duplicate_groups([phash_bytes(p.read_bytes()) for p in photos])
    names = [[photos[i].name for i in group] for group in groups]
    if folder == "bccd":
        # The one exception is real: the same microscope field shifted by a few cells.
        assert names == [["BloodImage_00037.jpg", "BloodImage_00038.jpg"]]
    else:
        assert names == []


def test_face_mask_duplicates_are_found() -> None:
    """face_mask ships the same photo under two names, and near-identical frames."""
    photos = sorted(shared_path("face_mask", "images").glob("*.jpg"))
    data = [p.read_bytes() for p in photos]
    groups = near_duplicate_groups([phash_bytes(d) for d in data])
    names = {tuple(photos[i].name for i in g) for g in groups}
    assert len(groups) == 24 and all(len(g) == 2 for g in groups)
    for same in [
        ("maksssksksss13.jpg", "maksssksksss737.jpg"),
        ("maksssksksss146.jpg", "maksssksksss219.jpg"),
    ]:
        assert same in names
        a, b = (data[photos.index(next(p for p in photos if p.name == n))] for n in same)
        assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest()  # identical bytes
    # near-identical frames of one scene (checked by eye), not the same bytes
    assert ("maksssksksss455.jpg", "maksssksksss818.jpg") in names
    assert ("maksssksksss656.jpg", "maksssksksss690.jpg") in names
