"""Perceptual hashes: the same photo re-encoded, resized or brightened gets (almost) the same
64 bits, so near-identical images can be kept in one split (a copy in train and one in test
is a leak that makes test error look better than it is).

The hash is the classic DCT pHash: grey, area-resized to 32×32, 2-D DCT, the 8×8 lowest
frequencies, one bit per coefficient above their median (the DC term excluded from the
median). Two images are near-duplicates when their hashes differ in at most
:data:`NEAR_DUPLICATE_DISTANCE` bits.

Why 8 bits (measured on the shared sets, see ``tests/inference/test_phash.py``): JPEG at
quality 30, half size, the 320 px thumbnail, +40 brightness, gamma 0.7 and a resize +
brighten + re-encode combination move a photo by at most 6 bits (BCCD, COCO128,
face_mask; mostly 0-2). Different photos sit around 32 bits apart; the closest distinct pairs
are 10-12 bits in face_mask (two different crowd scenes), 16 in COCO128, and in BCCD
one pair at 4 bits that is the same microscope field shifted by a few cells, which is a leak
worth catching. In ORL's 92×112 grey faces on plain backgrounds, two photos of different
people can come within 6-8 bits: a split that groups by person then ties those people
together (harmless: they share a split, no one is in two).

Pure NumPy/OpenCV, no Django.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

HASH_BITS = 64
NEAR_DUPLICATE_DISTANCE = 8
# A stored hash names the algorithm it was made with, so a change here never mixes hashes.
PHASH_VERSION = "dct32x8-v1"

_SIDE = 32  # the DCT input
_LOW = 8  # 8×8 lowest frequencies -> 64 bits
# Pigeonhole blocks narrower than this make buckets too big to beat brute force.
_MIN_BLOCK_BITS = 4
# Up to this many hashes, all pairs are compared directly (one vectorised pass).
_BRUTE_FORCE_MAX = 2048
_CHUNK_ELEMENTS = 1 << 22  # elements per brute-force block: 32 MiB of uint64


def phash(pixels: npt.NDArray[np.uint8]) -> int:
    """The 64-bit DCT perceptual hash of an image.

    Args:
        pixels: ``(H, W)`` grey or ``(H, W, 3)`` RGB, uint8, any size of at least 1×1.

    Returns:
        An int in ``[0, 2**64)``; bit 63 is the DC coefficient, then row-major order.

    Raises:
        ValueError: not a 2-D grey or 3-channel image.
    """
    grey: npt.NDArray[np.uint8] = pixels
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        grey = np.asarray(cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY))
    if grey.ndim != 2 or grey.size == 0:
        raise ValueError(f"expected (H, W) or (H, W, 3) pixels, got shape {pixels.shape}")
    small = cv2.resize(grey.astype(np.float32), (_SIDE, _SIDE), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:_LOW, :_LOW].reshape(-1)  # (64,)
    bits = low > np.median(low[1:])  # the DC term is the mean brightness: keep it out
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def phash_bytes(data: bytes) -> int:
    """:func:`phash` of an encoded image (JPEG, PNG, ...), decoded as grey by OpenCV.

    Raises:
        ValueError: the bytes are not an image OpenCV can decode.
    """
    buffer = np.frombuffer(data, dtype=np.uint8)
    grey = cv2.imdecode(buffer, cv2.IMREAD_GRAYSCALE) if buffer.size else None
    if grey is None:
        raise ValueError("not a decodable image")
    return phash(np.asarray(grey, dtype=np.uint8))


def hamming(a: int, b: int) -> int:
    """Bits in which two hashes differ."""
    return (a ^ b).bit_count()


def as_hash_array(hashes: Sequence[int] | npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """Hashes as a ``(N,)`` uint64 array (Python ints must lie in ``[0, 2**64)``)."""
    if isinstance(hashes, np.ndarray):
        return hashes.astype(np.uint64, copy=False)
    return np.fromiter((int(h) for h in hashes), dtype=np.uint64, count=len(hashes))


def popcount(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint8]:
    """Set bits of each element, same shape (NumPy 2's ``bitwise_count``, or a table)."""
    if hasattr(np, "bitwise_count"):
        counted: npt.NDArray[np.uint8] = np.bitwise_count(values).astype(np.uint8, copy=False)
        return counted
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
    as_bytes = np.ascontiguousarray(values).view(np.uint8).reshape(*values.shape, 8)
    summed: npt.NDArray[np.uint8] = table[as_bytes].sum(axis=-1, dtype=np.uint8)
    return summed


def near_duplicate_pairs(
    hashes: Sequence[int] | npt.NDArray[np.uint64], max_distance: int = NEAR_DUPLICATE_DISTANCE
) -> npt.NDArray[np.int64]:
    """Every pair of hashes at most ``max_distance`` bits apart.

    Pigeonhole search (multi-index hashing): cut the 64 bits into ``max_distance + 1``
    blocks; two hashes within ``max_distance`` agree exactly on at least one block, so only
    hashes sharing a block value are compared. Cost is the sum of squared bucket sizes:
    about ``N**2 / 2**(64 / (max_distance + 1))`` comparisons per block instead of
    ``N**2 / 2``, e.g. 100,000 hashes at distance 8 in about 2 s on one core.

    Args:
        hashes: ``(N,)`` 64-bit hashes.
        max_distance: 0..64.

    Returns:
        ``(P, 2)`` int64 index pairs ``i < j``, sorted, each pair once.
    """
    h = as_hash_array(hashes)
    if not 0 <= max_distance <= HASH_BITS:
        raise ValueError(f"max_distance must be in 0..{HASH_BITS}, got {max_distance}")
    if len(h) < 2:
        return np.empty((0, 2), dtype=np.int64)
    blocks = max_distance + 1
    if len(h) <= _BRUTE_FORCE_MAX or HASH_BITS // blocks < _MIN_BLOCK_BITS:
        pairs = _brute_force_pairs(h, max_distance)
    else:
        bounds = np.linspace(0, HASH_BITS, blocks + 1).astype(int)
        found = [
            _block_pairs(h, int(lo), int(hi), max_distance)
            for lo, hi in itertools.pairwise(bounds.tolist())
        ]
        pairs = np.concatenate(found)
    if len(pairs) == 0:
        return np.empty((0, 2), dtype=np.int64)
    return np.unique(np.sort(pairs, axis=1), axis=0)


def _brute_force_pairs(h: npt.NDArray[np.uint64], max_distance: int) -> npt.NDArray[np.int64]:
    """All pairs, compared in row blocks of the upper triangle: ``(P, 2)``."""
    n, found = len(h), []
    rows = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n, rows):
        block = popcount(h[start : start + rows, None] ^ h[None, start:])  # (rows, n - start)
        i, j = np.nonzero(block <= max_distance)
        keep = start + i < start + j  # the upper triangle, no self-pairs
        found.append(np.stack([start + i[keep], start + j[keep]], axis=1))
    return np.concatenate(found).astype(np.int64)


def _block_pairs(
    h: npt.NDArray[np.uint64], lo: int, hi: int, max_distance: int
) -> npt.NDArray[np.int64]:
    """Pairs within ``max_distance`` among hashes whose bits ``lo..hi`` are equal."""
    key = (h >> np.uint64(lo)) & np.uint64((1 << (hi - lo)) - 1)
    order = np.argsort(key, kind="stable")
    sorted_key, sorted_h = key[order], h[order]
    found = []
    # Sorted, so position i shares its bucket with i + k only if it did with i + k - 1:
    # the live set only shrinks, and the total work is the number of same-bucket pairs.
    live = np.arange(len(h) - 1)
    for k in range(1, len(h)):
        live = live[live + k < len(h)]
        live = live[sorted_key[live] == sorted_key[live + k]]
        if len(live) == 0:
            break
        close = popcount(sorted_h[live] ^ sorted_h[live + k]) <= max_distance
        found.append(np.stack([order[live[close]], order[live[close] + k]], axis=1))
    return np.concatenate(found) if found else np.empty((0, 2), dtype=np.int64)


def connected_components(n: int, pairs: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Label the components of an undirected graph on nodes ``0..n-1``.

    Vectorised hook-and-compress: each round hooks every edge's larger root under its
    smaller one, then jumps pointers to the roots, until every edge joins equal labels.

    Args:
        n: number of nodes.
        pairs: ``(E, 2)`` edges.

    Returns:
        ``(n,)`` int64: each node's label, the smallest node index of its component.
    """
    labels = np.arange(n, dtype=np.int64)
    if len(pairs) == 0:
        return labels
    a, b = pairs[:, 0], pairs[:, 1]
    while True:
        la, lb = labels[a], labels[b]
        if np.array_equal(la, lb):
            return labels
        low = np.minimum(la, lb)
        np.minimum.at(labels, la, low)
        np.minimum.at(labels, lb, low)
        while True:  # pointer jumping: parents always have smaller indices, so this ends
            jumped = labels[labels]
            if np.array_equal(jumped, labels):
                break
            labels = jumped


def near_duplicate_groups(
    hashes: Sequence[int] | npt.NDArray[np.uint64], max_distance: int = NEAR_DUPLICATE_DISTANCE
) -> list[list[int]]:
    """Groups (of two or more) of hashes linked by chains of near-duplicate pairs.

    Returns:
        Lists of indices, each sorted, ordered by their first index.
    """
    h = as_hash_array(hashes)
    labels = connected_components(len(h), near_duplicate_pairs(h, max_distance))
    groups: dict[int, list[int]] = {}
    for index, label in enumerate(labels.tolist()):
        groups.setdefault(label, []).append(index)
    return [members for _, members in sorted(groups.items()) if len(members) > 1]
