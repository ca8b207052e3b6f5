"""Approximate nearest-neighbour search over one collection: an HNSW graph (usearch) behind the SearchIndex protocol.

Why usearch (benchmarks/bench_collections.py, results in benchmarks/results/collections-*.json): on real SFace
embeddings of LFW padded to 100,000 with faces drawn from a Gaussian fitted to them, usearch, hnswlib and faiss
(all HNSW) found the exact top-1 equally often for the same M and ef (the algorithm decides, not the library).
What decides: usearch ships manylinux wheels (hnswlib 0.8 is a source distribution that needs a C++ compiler), it
removes and replaces vectors and reuses their slots (faiss' HNSW cannot remove), and it can keep vectors in f16.
Its cost: it built the graph about twice as slowly as hnswlib or faiss (``bench_collections.py build``: 20,000
faces, one thread, 17.5 s against 7.5 s and 5.0 s).

The vectors are kept **only in the graph**, in float32 by default: at 1M faces that is the 512 MB an exact matrix
would take plus the graph, so an approximate index replaces the exact one rather than sitting beside it. The graph
proposes candidates; their distances are then computed again, exactly, from the vectors it stores, so that a
match's distance (and so its Similarity) is the one :class:`~facecompare.collections.index.ExactIndex` gives for the
same face (within 1e-6; for "euclidean" from the difference, which is more exact than ExactIndex's expansion near
0). ``dtype="f16"`` halves the vectors' memory; distances then differ from exact by up to about 1e-4 (measured on
LFW). int8 is not offered: its distances were off by up to 0.04 and it found the exact top-1 less often.

Face ids are strings; the graph wants integer keys: each id gets the next integer, and an id added again
(replaced) or removed gives its key up for good (usearch marks the node deleted and reuses its slot, so memory
does not grow with churn; a removed face's vector stays in that slot, unreachable, until a new face takes it).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Sequence

import numpy as np

# "cosine" rows and queries are L2-normalised here, so the graph can use the inner product (1 - dot, the same order
# and distance as usearch's "cos" without normalising again): 20 % faster to build in one side-by-side run
_METRICS = {"cosine": "ip", "euclidean": "l2sq"}


class ApproximateIndex:
    """A :class:`~facecompare.collections.index.SearchIndex` over an HNSW graph.

    ``connectivity`` (HNSW's M), ``expansion_add`` (ef_construction) and ``ef_search`` trade memory and build time
    for recall. The defaults come from benchmarks/bench_collections.py (results/collections-libraries-100000-*.json,
    collections-1m.json). At 100,000 faces, M 32 / ef_construction 200 found the exact top-1 for 98.4 / 99.7 / 100 %
    of searches at ef_search 256 / 512 / 1024 (13 ms p50, 24 ms p95 on a busy machine), where M 16 / 128 needed
    ef_search 2048 for 99.6 %; M 32 costs 40 % more memory (113 against 81 MiB) and 2.4 times the build time.
    At 1,000,000 faces only M 16 / 128 was measured: 78 % at ef_search 512, 5.2 ms p50. ``threads`` bounds the
    threads used to add a batch (0: all cores); a search uses one.
    """

    def __init__(self, metric: str, dimension: int, *, connectivity: int = 32, expansion_add: int = 200,
                 ef_search: int = 1024, dtype: str = "f32", threads: int = 0) -> None:
        from usearch.index import Index

        if metric not in _METRICS:
            raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(_METRICS)}")
        if dtype not in ("f32", "f16"):
            raise ValueError(f"unknown dtype {dtype!r}; expected f32 or f16")
        self.metric = metric
        self.dimension = int(dimension)
        self.dtype = dtype
        self.threads = int(threads)
        self._index = Index(ndim=self.dimension, metric=_METRICS[metric], dtype=dtype, connectivity=connectivity,
                            expansion_add=expansion_add, expansion_search=ef_search)
        self._keys: dict[str, int] = {}  # face id -> key
        self._ids: list[str | None] = []  # key -> face id (keys are never reused: None once removed)
        self._id_bytes = 0  # the id strings themselves, for memory_bytes
        self._lock = threading.RLock()

    # -------------------------------------------------------------------------------------------- settings
    @property
    def ef_search(self) -> int:
        return int(self._index.expansion_search)

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self._index.expansion_search = int(value)

    # ---------------------------------------------------------------------------------------------- changes
    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors.reshape(1, -1)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise ValueError(f"expected vectors of dimension {self.dimension}, got shape {vectors.shape}")
        if self.metric == "cosine":
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def add(self, face_ids: Sequence[str], vectors: np.ndarray) -> None:
        face_ids = list(face_ids)
        vectors = self._prepare(vectors)
        if len(face_ids) != len(vectors):
            raise ValueError(f"{len(face_ids)} ids for {len(vectors)} vectors")
        if not face_ids:
            return
        last: dict[str, int] = {}  # an id twice in one batch: the last row wins
        for row, face_id in enumerate(face_ids):
            last[face_id] = row
        rows = np.fromiter(last.values(), dtype=np.int64, count=len(last))
        with self._lock:
            self._remove_locked(last)
            first = len(self._ids)
            self._index.add(np.arange(first, first + len(rows), dtype=np.uint64), vectors[rows], threads=self.threads)
            for key, face_id in enumerate(last, start=first):
                self._keys[face_id] = key
                self._ids.append(face_id)
                self._id_bytes += sys.getsizeof(face_id)

    def remove(self, face_ids: Iterable[str]) -> None:
        with self._lock:
            self._remove_locked(face_ids)

    def _remove_locked(self, face_ids: Iterable[str]) -> None:
        gone = []
        for face_id in face_ids:
            key = self._keys.pop(face_id, None)
            if key is not None:
                self._ids[key] = None
                self._id_bytes -= sys.getsizeof(face_id)
                gone.append(key)
        if gone:
            self._index.remove(np.array(gone, dtype=np.uint64))

    # ----------------------------------------------------------------------------------------------- search
    def search(self, query: np.ndarray, k: int, max_distance: float = float("inf"),
               exclude: str | None = None) -> list[tuple[str, float]]:
        if k <= 0:
            return []
        q = self._prepare(query)[0]
        with self._lock:
            if not self._keys:
                return []
            want = min(len(self._keys), k + (1 if exclude is not None and exclude in self._keys else 0))
            # SearchFaces asks for up to 4096 faces and lets the threshold bound the answer: ask the graph for what
            # one search of ef_search candidates gives anyway, and for more only while the farthest is still near
            count = min(want, max(self.ef_search, 64))
            while True:
                ids, distances = self._search_locked(q, count, exclude)
                if count >= want or not len(distances) or distances.max() > max_distance:
                    break
                count = min(want, 4 * count)
        order = np.argsort(distances, kind="stable")
        return [(ids[i], float(distances[i])) for i in order[:k] if distances[i] <= max_distance]

    def _search_locked(self, q: np.ndarray, count: int, exclude: str | None) -> tuple[list[str], np.ndarray]:
        """The graph's ``count`` nearest (less ``exclude``), their distances computed again from the stored vectors."""
        found = self._index.search(q, count, threads=1)
        keys = [int(key) for key in np.asarray(found.keys).reshape(-1)]
        keys = [key for key in keys if 0 <= key < len(self._ids) and self._ids[key] not in (None, exclude)]
        if not keys:
            return [], np.empty(0, dtype=np.float32)
        stored = self._index.get(np.array(keys, dtype=np.uint64), dtype=np.float32)
        stored = np.vstack(stored) if isinstance(stored, tuple) else np.asarray(stored).reshape(len(keys), -1)
        stored = stored.astype(np.float32, copy=False)
        if self.metric == "cosine":  # the exact distance, as ExactIndex computes it
            distances = np.clip(1.0 - stored @ q, 0.0, 2.0)
        else:  # from the difference: |x|^2 + |q|^2 - 2 x.q loses ~1e-3 near 0 in float32
            diff = stored - q
            distances = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        return [self._ids[key] for key in keys], distances

    # ------------------------------------------------------------------------------------------------ sizes
    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, face_id: object) -> bool:
        return face_id in self._keys

    def memory_bytes(self) -> int:
        """The graph and its vectors (usearch's own count) plus the id maps and id strings."""
        return int(self._index.memory_usage) + sys.getsizeof(self._keys) + sys.getsizeof(self._ids) \
            + self._id_bytes + 32 * len(self._keys)  # the int keys the dict holds
