"""Search indexes over one collection's embeddings: a cache rebuilt from (and kept in step with) the store.

Every index answers :meth:`SearchIndex.search` with (face id, distance) pairs, nearest first, in the collection's
metric ("cosine": 1 - cos of L2-normalised vectors; "euclidean"), so that the calibrated Similarity of a match is
``Calibration.similarity(distance)`` whatever the index. The exact index is the reference; an approximate index
(:mod:`.ann`) is measured against it (recall@1).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np


class SearchIndex(Protocol):
    metric: str
    dimension: int

    def add(self, face_ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add rows (float32, shape (n, dimension)); an id already present is replaced."""

    def remove(self, face_ids: Iterable[str]) -> None:
        """Forget those ids (unknown ids are ignored)."""

    def search(self, query: np.ndarray, k: int, max_distance: float = float("inf"),
               exclude: str | None = None) -> list[tuple[str, float]]:
        """Up to ``k`` (face id, distance) pairs with distance <= ``max_distance``, nearest first; ``exclude`` is
        a face id left out of the answer (SearchFaces does not return the searched face itself)."""

    def __len__(self) -> int: ...

    def memory_bytes(self) -> int:
        """Bytes the index holds (vectors, ids, graph)."""


class ExactIndex:
    """The reference index: every row compared with numpy. One contiguous float32 matrix grown by doubling
    (removal moves the last row into the gap), the ids beside it (a list by row, a dict id -> row).

    "cosine" rows are stored L2-normalised and the distance is ``1 - dot``; "euclidean" rows as given, with their
    squared norms kept, and the distance is ``sqrt(|x|^2 + |q|^2 - 2 x.q)``. Top-k by ``argpartition``. Not
    thread-safe on its own: the service serialises changes and searches of one index."""

    def __init__(self, metric: str, dimension: int, capacity: int = 1024) -> None:
        if metric not in ("cosine", "euclidean"):
            raise ValueError(f"unknown metric {metric!r}")
        self.metric = metric
        self.dimension = int(dimension)
        self._matrix = np.empty((max(1, capacity), self.dimension), dtype=np.float32)
        self._norms = np.empty(max(1, capacity), dtype=np.float32)  # squared norms (euclidean)
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, face_id: str) -> bool:
        return face_id in self._rows

    def memory_bytes(self) -> int:
        # the matrix and norms as allocated, plus about 100 bytes per id (the str, its list slot and dict entry)
        return self._matrix.nbytes + self._norms.nbytes + 100 * len(self._ids)

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        v = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dimension)
        if self.metric == "cosine":
            v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        return v

    def add(self, face_ids: Sequence[str], vectors: np.ndarray) -> None:
        if not self._ids and len(face_ids) > 1 and len(set(face_ids)) == len(face_ids):
            self._load(face_ids, vectors)
            return
        rows = self._prepare(vectors)
        if len(rows) != len(face_ids):
            raise ValueError(f"{len(face_ids)} ids for {len(rows)} vectors")
        for face_id, row in zip(face_ids, rows):
            at = self._rows.get(face_id)
            if at is None:
                at = len(self._ids)
                if at == len(self._matrix):
                    self._grow()
                self._ids.append(face_id)
                self._rows[face_id] = at
            self._matrix[at] = row
            self._norms[at] = float(row @ row)

    def _load(self, face_ids: Sequence[str], vectors: np.ndarray, chunk: int = 65536) -> None:
        """An empty index filled at once (a rebuild from the store): rows copied and normalised in place, a chunk
        at a time, so that the only other copy of the vectors is the caller's (at 1M faces 512 MB, not 1 GB)."""
        vectors = np.asarray(vectors).reshape(-1, self.dimension)
        n = len(vectors)
        if n != len(face_ids):
            raise ValueError(f"{len(face_ids)} ids for {n} vectors")
        if len(self._matrix) < n:
            self._matrix = np.empty((n, self.dimension), dtype=np.float32)
            self._norms = np.empty(n, dtype=np.float32)
        for start in range(0, n, chunk):
            block = self._matrix[start:min(start + chunk, n)]
            block[:] = vectors[start:start + chunk]
            squared = np.einsum("ij,ij->i", block, block)
            if self.metric == "cosine":
                block /= np.maximum(np.sqrt(squared), 1e-12)[:, None]
                squared = np.einsum("ij,ij->i", block, block)
            self._norms[start:start + len(block)] = squared
        self._ids = list(face_ids)
        self._rows = {face_id: row for row, face_id in enumerate(self._ids)}

    def _grow(self) -> None:
        size = 2 * len(self._matrix)
        matrix = np.empty((size, self.dimension), dtype=np.float32)
        matrix[: len(self._matrix)] = self._matrix
        norms = np.empty(size, dtype=np.float32)
        norms[: len(self._norms)] = self._norms
        self._matrix, self._norms = matrix, norms

    def remove(self, face_ids: Iterable[str]) -> None:
        for face_id in face_ids:
            at = self._rows.pop(face_id, None)
            if at is None:
                continue
            last = len(self._ids) - 1
            if at != last:  # the last row fills the gap
                moved = self._ids[last]
                self._matrix[at] = self._matrix[last]
                self._norms[at] = self._norms[last]
                self._ids[at] = moved
                self._rows[moved] = at
            self._matrix[last] = 0.0  # no copy of a removed face's vector stays behind in the spare rows
            self._norms[last] = 0.0
            self._ids.pop()

    def distances(self, query: np.ndarray) -> np.ndarray:
        """The distance from ``query`` to every row, in row order."""
        q = self._prepare(query)[0]
        n = len(self._ids)
        dots = self._matrix[:n] @ q
        if self.metric == "cosine":
            return np.clip(1.0 - dots, 0.0, 2.0)
        return np.sqrt(np.maximum(self._norms[:n] + float(q @ q) - 2.0 * dots, 0.0))

    def search(self, query: np.ndarray, k: int, max_distance: float = float("inf"),
               exclude: str | None = None) -> list[tuple[str, float]]:
        if k <= 0 or not self._ids:
            return []
        d = self.distances(query)
        keep = d <= max_distance
        if exclude is not None and exclude in self._rows:
            keep[self._rows[exclude]] = False
        candidates = np.flatnonzero(keep)
        if len(candidates) > k:
            candidates = candidates[np.argpartition(d[candidates], k - 1)[:k]]
        order = candidates[np.argsort(d[candidates], kind="stable")]
        return [(self._ids[i], float(d[i])) for i in order]
