"""1:K search against a brute-force loop."""

from __future__ import annotations

import time

import numpy as np
import pytest

from inference.recognize import Gallery


def _brute_force(
    gallery: np.ndarray, subjects: np.ndarray, query: np.ndarray
) -> list[tuple[int, float, int]]:
    """(subject, distance, row) per subject, nearest first, one face at a time."""
    best: dict[int, tuple[float, int]] = {}
    for row, (embedding, subject) in enumerate(zip(gallery, subjects, strict=True)):
        distance = float(np.sqrt(np.sum((embedding.astype(np.float64) - query) ** 2)))
        if int(subject) not in best or distance < best[int(subject)][0]:
            best[int(subject)] = (distance, row)
    return sorted(((s, d, r) for s, (d, r) in best.items()), key=lambda item: item[1])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_search_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(60, 16)).astype(np.float32)
    subjects = rng.choice([3, 10, 11, 42, 99, 7], size=60)
    queries = rng.normal(size=(9, 16)).astype(np.float32)
    matches = Gallery(embeddings, subjects).search(queries, threshold=np.inf, top_k=3)
    for query, match in zip(queries, matches, strict=True):
        expected = _brute_force(embeddings, subjects, query.astype(np.float64))
        assert match is not None
        assert match.subject_id == expected[0][0]
        assert match.index == expected[0][2]
        assert match.distance == pytest.approx(expected[0][1], rel=1e-4)
        assert [s for s, _ in match.candidates] == [s for s, _, _ in expected[:3]]
        assert [d for _, d in match.candidates] == pytest.approx(
            [d for _, d, _ in expected[:3]], rel=1e-4
        )


def test_unknown_at_or_beyond_threshold() -> None:
    embeddings = np.array([[0.0, 0.0], [3.0, 4.0]], dtype=np.float32)
    gallery = Gallery(embeddings, [1, 2])
    queries = np.array([[0.0, 0.5], [0.0, 1.0], [3.0, 4.1], [10.0, 10.0]], dtype=np.float32)
    matches = gallery.search(queries, threshold=1.0)
    assert matches[0] is not None and matches[0].subject_id == 1
    assert matches[1] is None  # distance 1.0 is not < 1.0: unknown
    assert matches[2] is not None and matches[2].subject_id == 2
    assert matches[3] is None
    assert matches[0].distance == pytest.approx(0.5)


def test_top_k_larger_than_subject_count_and_empty_gallery() -> None:
    gallery = Gallery(np.eye(3, dtype=np.float32), [5, 5, 6])
    (match,) = gallery.search(np.array([[1.0, 0.0, 0.0]]), threshold=2.0, top_k=10)
    assert match is not None and [s for s, _ in match.candidates] == [5, 6]
    assert match.distance == 0.0
    empty = Gallery(np.zeros((0, 3), dtype=np.float32), [])
    assert empty.search(np.ones((2, 3)), threshold=1.0) == [None, None]
    with pytest.raises(ValueError):
        gallery.search(np.ones((1, 4)), threshold=1.0)


def test_ten_thousand_faces_searched_for_one_query() -> None:
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(10_000, 128)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    subjects = np.arange(10_000) // 4  # 2,500 subjects with 4 faces each
    gallery = Gallery(embeddings, subjects)
    query = embeddings[7777] + rng.normal(scale=0.01, size=128).astype(np.float32)
    start = time.perf_counter()
    (match,) = gallery.search(query[None, :], threshold=0.5, top_k=5)
    elapsed = time.perf_counter() - start
    assert match is not None
    assert match.subject_id == 7777 // 4 and match.index == 7777
    assert match.distance == pytest.approx(0.01 * np.sqrt(128), rel=0.2)
    assert elapsed < 1.0  # vectorised: a few ms; a Python loop over faces takes far longer
