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
