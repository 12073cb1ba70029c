"""1:K face recognition: find the enrolled subject closest to each query embedding.

A subject may have several enrolled faces; a subject's distance to a query is the distance
to its closest face. A query is "unknown" (None) when even the best subject is at
``distance >= threshold``, the same strict rule as ``inference.verification_metrics``
(accept ``distance < threshold``), so a threshold calibrated there means the same here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Match:
    """The best subject for one query.

    Attributes:
        subject_id: the enrolled subject.
        distance: Euclidean distance from the query to that subject's closest face.
        index: row of that face in the gallery's embedding matrix as given.
        candidates: up to ``top_k`` ``(subject_id, distance)`` by increasing distance, the
            best first, whether or not the others are under the threshold.
    """

    subject_id: int
    distance: float
    index: int
    candidates: list[tuple[int, float]] = field(default_factory=list)


class Gallery:
    """Enrolled face embeddings, grouped by subject for vectorised per-subject minima.

    Memory for a search is ``Q * M * 4`` bytes for the distance matrix (40 MB for 1,000
    queries against 10,000 faces); callers with more queries should pass them in chunks.
    """

    def __init__(
        self,
        embeddings: npt.NDArray[np.floating],
        subject_ids: Sequence[int] | npt.NDArray[np.integer],
    ) -> None:
        """Build the gallery.

        Args:
            embeddings: ``(M, d)`` enrolled face embeddings (stored as float32).
            subject_ids: ``(M,)`` subject of each row.
        """
        emb = np.asarray(embeddings, dtype=np.float32)
        ids = np.asarray(subject_ids, dtype=np.int64)
        if emb.ndim != 2 or ids.shape != (emb.shape[0],):
            raise ValueError(f"expected (M, d) and (M,), got {emb.shape} and {ids.shape}")
        # Rows sorted by subject make each subject a contiguous run, so the per-subject
        # minimum over all queries is one np.minimum.reduceat instead of a Python loop.
        self._order = np.argsort(ids, kind="stable")
        self._embeddings = np.ascontiguousarray(emb[self._order])  # (M, d)
        self._squared_norms = (self._embeddings**2).sum(axis=1)  # (M,)
        self._subjects, self._run_starts = np.unique(ids[self._order], return_index=True)
        self.dim = emb.shape[1]

    def __len__(self) -> int:
        """Number of enrolled faces ``M``."""
        return int(self._embeddings.shape[0])

    @property
    def subject_count(self) -> int:
        """Number of distinct subjects ``S``."""
        return len(self._subjects)

    def distances(self, queries: npt.NDArray[np.floating]) -> FloatArray:
        """Euclidean distance from every query to every enrolled face, in gallery row order.

        ``||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b`` makes all ``Q * M`` distances one matrix
        product. The expansion can come out slightly negative from rounding for near-equal
        vectors, hence the clamp at 0 before the square root (float32: errors ~1e-3 at 0).

        Args:
            queries: ``(Q, d)`` query embeddings.

        Returns:
            ``(Q, M)`` float32, column ``j`` for the sorted row ``j`` (internal order).
        """
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"expected queries (Q, {self.dim}), got {q.shape}")
        squared = (q**2).sum(axis=1)[:, None] + self._squared_norms[None, :]  # (Q, M)
        squared -= 2.0 * (q @ self._embeddings.T)
        np.maximum(squared, 0.0, out=squared)
        return np.asarray(np.sqrt(squared, out=squared), dtype=np.float32)

    def search(
        self, queries: npt.NDArray[np.floating], threshold: float, *, top_k: int = 1
    ) -> list[Match | None]:
        """Best subject for each query, or None ("unknown") when it is not close enough.

        Args:
            queries: ``(Q, d)`` query embeddings, from the same model as the gallery.
            threshold: distance threshold; the best subject must be at ``distance < threshold``.
            top_k: number of subjects to list in ``Match.candidates`` (>= 1).

        Returns:
            ``Q`` entries, a :class:`Match` or None; all None for an empty gallery.
        """
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        n_queries = int(np.asarray(queries).shape[0])
        if len(self) == 0:
            return [None] * n_queries
        dist = self.distances(queries)  # (Q, M)
        per_subject = np.minimum.reduceat(dist, self._run_starts, axis=1)  # (Q, S)
        k = min(top_k, self.subject_count)
        # argpartition finds the k best in O(S); only those k are then sorted.
        top = np.argpartition(per_subject, k - 1, axis=1)[:, :k]  # (Q, k), unordered
        top_dist = np.take_along_axis(per_subject, top, axis=1)
        ranking = np.argsort(top_dist, axis=1, kind="stable")
        top = np.take_along_axis(top, ranking, axis=1)  # (Q, k), best first
        top_dist = np.take_along_axis(top_dist, ranking, axis=1)
        best_row = self._best_rows(dist, top[:, 0])
        return [
            self._match(top[i], top_dist[i], int(best_row[i]))
            if top_dist[i, 0] < threshold
            else None
            for i in range(n_queries)
        ]

    def _best_rows(self, dist: FloatArray, subjects: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
        """Original gallery row of each query's closest face of its best subject."""
        ends = np.append(self._run_starts[1:], len(self))
        rows = np.empty(len(subjects), dtype=np.intp)
        for i, s in enumerate(subjects):  # one short slice per query, not per gallery row
            start = self._run_starts[s]
            rows[i] = self._order[start + int(np.argmin(dist[i, start : ends[s]]))]
        return rows

    def _match(self, subjects: npt.NDArray[np.intp], distances: FloatArray, row: int) -> Match:
        candidates = [
            (int(self._subjects[s]), float(d)) for s, d in zip(subjects, distances, strict=True)
        ]
        return Match(
            subject_id=candidates[0][0], distance=candidates[0][1], index=row, candidates=candidates
        )
