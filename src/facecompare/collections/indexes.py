"""The in-process search indexes of :class:`~facecompare.collections.service.Collections`: one per collection,
built from the store and kept in step with it (:meth:`~facecompare.collections.interface.CollectionStore.changes_since`),
so that replicas sharing a database see each other's IndexFaces and DeleteFaces, and swept so that faces deleted
through another process leave this one's memory too. :class:`IndexKeeping` is a part of ``Collections`` (a mixin:
the host holds ``store``, ``index_factory``, ``approximate_above``, ``_indexes``, ``_indexes_lock`` and ``_swept``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from ..errors import ResourceNotFoundException
from .index import ExactIndex, SearchIndex
from .interface import Changes, CollectionInfo, CollectionStore

#: the matches a search returns when MaxFaces is omitted, and the most it may ask for (the model's maximum)
DEFAULT_MAX_MATCHES = 4096
MAX_MATCHES = 4096

#: at most this often (seconds), a collection call also brings every index this process holds up to date and
#: drops those of deleted collections, so that faces another process deleted leave this one's memory too
SWEEP_SECONDS = 30.0

IndexFactory = Callable[[str, int, int], SearchIndex]  # (metric, dimension, faces it will hold) -> an empty index


def default_index_factory(approximate_above: int | None) -> IndexFactory:
    """Exact search, or above ``approximate_above`` faces the approximate index (:mod:`.ann`) when it is installed.
    ``None`` (the default): always exact. The approximate index is opt-in because it is built synchronously on a
    process's first search of the collection (about 4 minutes at 100,000 faces on 2 cores) and its recall at 1M
    faces was measured below the 99 % aim (README, "Collections (1:N)")."""

    def make(metric: str, dimension: int, size: int) -> SearchIndex:
        if approximate_above is not None and size > approximate_above:
            try:
                from .ann import ApproximateIndex  # type: ignore[import-not-found]
            except ImportError:
                pass
            else:
                return ApproximateIndex(metric, dimension)
        return ExactIndex(metric, dimension, capacity=max(1024, size))

    return make


class IndexEntry:
    """One collection's index in this process and how far it has caught up with the store."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.index: SearchIndex | None = None
        self.generation: str | None = None
        self.seq = 0
        self.large = False  # built for a collection over approximate_above (the factory chose for that size)


class IndexKeeping:
    """The collections' indexes in this process (see the module docstring)."""

    store: CollectionStore
    index_factory: IndexFactory
    approximate_above: int | None
    _indexes: dict[str, IndexEntry]
    _indexes_lock: threading.Lock
    _swept: float

    def sweep(self, force: bool = False) -> None:
        """Bring every index this process holds up to date with the store and forget those of collections that
        are gone (deleted, or deleted and created again), at most every :data:`SWEEP_SECONDS` unless ``force``:
        faces deleted through another process then leave this process's memory too, not only its answers. An
        index busy in a search is left for the next sweep."""
        now = time.monotonic()
        if not force and now - self._swept < SWEEP_SECONDS:
            return
        self._swept = now
        with self._indexes_lock:
            entries = list(self._indexes.items())
        for collection_id, entry in entries:
            if not entry.lock.acquire(blocking=False):
                continue
            try:
                changes = None
                if entry.index is not None:
                    try:
                        changes = self.store.changes_since(collection_id, entry.generation, entry.seq)
                    except ResourceNotFoundException:
                        changes = None
                if changes is None:  # gone or replaced: forget it (the next search rebuilds)
                    entry.index = None
                    with self._indexes_lock:
                        if self._indexes.get(collection_id) is entry:
                            del self._indexes[collection_id]
                    continue
                self._apply(entry, changes)
            finally:
                entry.lock.release()

    def _forget(self, collection_id: str) -> None:
        """After a deletion: this process's index of the collection catches up with the store at once (the deleted
        embeddings leave memory now, not at the next search or sweep). Through changes_since, not by removing ids
        directly, so that a face indexed again in between by another process stays."""
        with self._indexes_lock:
            entry = self._indexes.get(collection_id)
        if entry is None:
            return
        with entry.lock:
            if entry.index is None:
                return
            try:
                changes = self.store.changes_since(collection_id, entry.generation, entry.seq)
            except ResourceNotFoundException:
                changes = None
            if changes is None:
                entry.index = None  # rebuilt by the next search
            else:
                self._apply(entry, changes)

    @staticmethod
    def _apply(entry: IndexEntry, changes: Changes) -> None:
        """Removals first, then additions: a face deleted and indexed again in between is then present."""
        entry.index.remove(changes.deleted)
        if changes.added:
            entry.index.add([f.face_id for f in changes.added],
                            np.stack([np.asarray(f.embedding, dtype=np.float32) for f in changes.added]))
        entry.seq = changes.seq

    def _entry(self, collection_id: str) -> IndexEntry:
        with self._indexes_lock:
            entry = self._indexes.get(collection_id)
            if entry is None:
                entry = self._indexes[collection_id] = IndexEntry()
            return entry

    def _synced(self, entry: IndexEntry, info: CollectionInfo) -> SearchIndex:
        """The collection's index, caught up with the store (another process's writes included): the changes
        since the last number it saw (removals first, then additions: a face deleted and indexed again in
        between is then present), or a rebuild when the store cannot say (another generation, an old number),
        or when the collection crossed ``approximate_above`` (see :meth:`_large`)."""
        changes = None
        if entry.index is not None:
            changes = self.store.changes_since(info.collection_id, entry.generation, entry.seq)
        if changes is not None:
            self._apply(entry, changes)
            if entry.large == self._large(len(entry.index), entry.large):
                return entry.index
        generation, seq, ids, matrix = self.store.all_embeddings(info.collection_id)
        index = self.index_factory(info.metric, info.dimension, len(ids))
        if ids:
            index.add(ids, matrix)
        entry.index, entry.generation, entry.seq = index, generation, seq
        entry.large = self._large(len(ids), entry.large)
        return index

    def _large(self, size: int, was_large: bool) -> bool:
        """Whether a collection of ``size`` faces gets the index for large ones: over ``approximate_above``, and
        once there, until it shrinks under 90 % of it (so that a collection near the line is not rebuilt on every
        other search)."""
        if self.approximate_above is None:
            return False
        return size > (0.9 * self.approximate_above if was_large else self.approximate_above)
