"""The embedded collection store: one SQLite file (``sqlite:///relative/path.db`` or ``sqlite:////abs/path.db``).

* The schema is versioned in code: :data:`MIGRATIONS` is applied in order, ``PRAGMA user_version`` says how many
  have run (a file made by an older release is brought up to date when opened; one made by a newer release is
  refused).
* WAL journal (readers never wait for the writer), a busy timeout so that several processes (``serve`` replicas,
  the CLI) can share one file, and ``BEGIN IMMEDIATE`` for every write so two writers queue instead of failing.
* ``PRAGMA secure_delete=ON``: a deleted row's bytes are overwritten with zeros in the file, not just unlinked;
  after a delete the WAL is checkpointed and truncated without waiting for readers (a reader in another process
  postpones it to the next search or listing), so an erased embedding is gone from the file and its WAL once no
  reader holds an older snapshot, and a reader never stalls a deletion.
* Embeddings are float32 BLOBs (512 bytes for 128-d). Every add and every delete takes a number from one counter
  per database (``meta.seq``); deletions are logged (the face id and that number, nothing else) so that an index
  in another process can catch up (:meth:`SqliteStore.changes_since`). The log keeps the last
  :data:`DELETION_LOG_ENTRIES` entries; a caller older than that rebuilds.
* Thread-safe: one connection per store, used under a lock (SQLite serialises writers anyway; reads are short).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager

import numpy as np

from ..db.sqlite import checkpoint_now, chunks, connect, path_from_url, snapshot, transaction
from ..errors import (
    InvalidParameterException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
    quote_input,
)
from .interface import Changes, CollectionInfo, CollectionStore, StoredFace
from .schema import FACE_COLUMNS, face_from_sqlite_row
from .schema import SQLITE_MIGRATIONS as MIGRATIONS
from .sqlite_users import SqliteUsers

__all__ = ["DELETION_LOG_ENTRIES", "MIGRATIONS", "SqliteStore", "path_from_url"]

#: deletions kept for changes_since (older callers rebuild their index from all_embeddings)
DELETION_LOG_ENTRIES = 100_000


class SqliteStore(SqliteUsers, CollectionStore):
    """:class:`CollectionStore` in one SQLite file (see the module docstring); Users and tags: :mod:`.sqlite_users`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path, self._db = connect(url)
        self._lock = threading.RLock()
        self._checkpoint_pending = False  # a deletion's checkpoint was kept from completing by a reader
        self._migrate()

    # -- plumbing ---------------------------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._write() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise InvalidParameterException(
                    f"The collection database {self.path} has schema version {version}, newer than this release "
                    f"knows ({len(MIGRATIONS)}); upgrade facecompare."
                )
            for number in range(version, len(MIGRATIONS)):
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number + 1}")

    def pagination_key(self) -> bytes:
        with self._read() as db:
            return bytes(db.execute("SELECT value FROM secrets WHERE name = 'pagination'").fetchone()[0])

    def first_use_of_signature(self, digest: bytes, until: float, now: float) -> bool:
        with self._write() as db:
            db.execute("DELETE FROM seen_signatures WHERE until <= ?", (now,))
            return db.execute("INSERT OR IGNORE INTO seen_signatures (digest, until) VALUES (?, ?)",
                              (bytes(digest), float(until))).rowcount == 1

    def forget_signature(self, digest: bytes) -> None:
        with self._write() as db:
            db.execute("DELETE FROM seen_signatures WHERE digest = ?", (bytes(digest),))

    def _write(self):
        """A write transaction (see :func:`transaction`)."""
        return transaction(self._db, self._lock, write=True)

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:
        """A read transaction: every query in it sees one snapshot of the file (see :func:`snapshot`)."""
        return snapshot(self._db, self._lock)

    @staticmethod
    def _collection_row(db: sqlite3.Connection, collection_id: str) -> tuple:
        row = db.execute("SELECT id, collection_id, model, metric, dimension, created_at, generation, face_count, "
                         "tags, user_count FROM collections WHERE collection_id = ?", (collection_id,)).fetchone()
        if row is None:
            raise ResourceNotFoundException(f"The collection id: {quote_input(collection_id)} does not exist.")
        return row

    @staticmethod
    def _info(row: tuple) -> CollectionInfo:
        _, collection_id, model, metric, dimension, created_at, generation, face_count, tags, user_count = row
        return CollectionInfo(collection_id=collection_id, model=model, metric=metric, dimension=dimension,
                              created_at=created_at, generation=generation, face_count=face_count,
                              tags=json.loads(tags), user_count=user_count)

    @staticmethod
    def _next_seq(db: sqlite3.Connection, count: int) -> int:
        """Reserve ``count`` numbers of the counter; returns the first."""
        (last,) = db.execute("UPDATE meta SET value = value + ? WHERE key = 'seq' RETURNING value - ?",
                             (count, count)).fetchone()
        return last + 1

    def checkpoint(self) -> bool:
        """Copy the WAL into the file and truncate it (what makes a deletion's zeros reach the main file and the
        WAL's older copies of the pages vanish), without waiting for readers (:func:`checkpoint_now`). False when
        a reader elsewhere kept it from completing: it is tried again before the next search or listing
        (``_checkpoint_pending``), so the erased bytes go once no reader holds them."""
        with self._lock:
            done = checkpoint_now(self._db)
            self._checkpoint_pending = not done
        return done

    def _checkpoint_if_pending(self) -> None:
        if self._checkpoint_pending:
            self.checkpoint()

    # -- collections ------------------------------------------------------------------------------------------

    def create_collection(self, collection_id: str, model: str, metric: str, dimension: int,
                          tags: dict[str, str] | None = None) -> CollectionInfo:
        created = time.time()
        generation = str(uuid.uuid4())
        with self._write() as db:
            try:
                db.execute("INSERT INTO collections (collection_id, model, metric, dimension, created_at, generation, "
                           "tags) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (collection_id, model, metric, int(dimension), created, generation,
                            json.dumps(dict(tags or {}), sort_keys=True)))
            except sqlite3.IntegrityError:
                raise ResourceAlreadyExistsException(
                    f"The collection id: {quote_input(collection_id)} already exists."
                ) from None
        return CollectionInfo(collection_id, model, metric, int(dimension), created, generation, 0, dict(tags or {}))

    def delete_collection(self, collection_id: str) -> None:
        with self._write() as db:
            coll = self._collection_row(db, collection_id)[0]
            db.execute("DELETE FROM faces WHERE coll = ?", (coll,))
            db.execute("DELETE FROM deletions WHERE coll = ?", (coll,))
            db.execute("DELETE FROM users WHERE coll = ?", (coll,))
            db.execute("DELETE FROM user_requests WHERE coll = ?", (coll,))
            db.execute("DELETE FROM collections WHERE id = ?", (coll,))
        self.checkpoint()

    def describe_collection(self, collection_id: str) -> CollectionInfo:
        with self._read() as db:
            return self._info(self._collection_row(db, collection_id))

    def list_collections(self, after: str | None = None, limit: int = 1000) -> list[CollectionInfo]:
        self._checkpoint_if_pending()
        with self._read() as db:
            rows = db.execute("SELECT id, collection_id, model, metric, dimension, created_at, generation, face_count, "
                              "tags, user_count FROM collections WHERE collection_id > ? ORDER BY collection_id "
                              "LIMIT ?",
                              (after or "", int(limit))).fetchall()
        return [self._info(row) for row in rows]

    # -- faces ------------------------------------------------------------------------------------------------

    def add_faces(self, collection_id: str, faces: Sequence[StoredFace]) -> list[StoredFace]:
        faces = list(faces)
        with self._write() as db:
            row = self._collection_row(db, collection_id)
            coll, dimension = row[0], row[4]
            result: list[StoredFace] = []
            fresh: list[StoredFace] = []
            seen: dict[str, StoredFace] = {}
            for face in faces:
                vector = np.ascontiguousarray(face.embedding, dtype=np.float32).reshape(-1)
                if vector.shape[0] != dimension:
                    raise InvalidParameterException(
                        f"An embedding of {vector.shape[0]} dimensions cannot go into collection "
                        f"{quote_input(collection_id)}, whose embeddings have {dimension}."
                    )
                if face.face_id in seen:
                    result.append(seen[face.face_id])
                    continue
                existing = db.execute(f"SELECT {FACE_COLUMNS} FROM faces WHERE coll = ? AND face_id = ?",
                                      (coll, face.face_id)).fetchone()
                stored = face_from_sqlite_row(existing) if existing else face
                if not existing:
                    fresh.append(face)
                seen[face.face_id] = stored
                result.append(stored)
            if fresh:
                first = self._next_seq(db, len(fresh))
                db.executemany(
                    "INSERT INTO faces (coll, face_id, image_id, external_image_id, box_width, box_height, box_left, "
                    "box_top, confidence, embedding, image_sha256, indexed_at, seq) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(coll, f.face_id, f.image_id, f.external_image_id, *map(float, f.bounding_box),
                      float(f.confidence), np.ascontiguousarray(f.embedding, dtype=np.float32).tobytes(),
                      f.image_sha256, f.indexed_at or time.time(), first + i) for i, f in enumerate(fresh)])
                db.execute("UPDATE collections SET face_count = face_count + ? WHERE id = ?", (len(fresh), coll))
        return result

    def get_faces(self, collection_id: str, face_ids: Iterable[str]) -> list[StoredFace]:
        ids = sorted(set(face_ids))
        found: list[StoredFace] = []
        with self._read() as db:
            coll = self._collection_row(db, collection_id)[0]
            for chunk in chunks(ids):
                marks = ",".join("?" * len(chunk))
                rows = db.execute(f"SELECT {FACE_COLUMNS} FROM faces WHERE coll = ? AND face_id IN ({marks})",
                                  (coll, *chunk)).fetchall()
                found.extend(face_from_sqlite_row(row) for row in rows)
        found.sort(key=lambda f: f.face_id)
        return found

    def list_faces(self, collection_id: str, after: str | None = None, limit: int = 1000,
                   user_id: str | None = None) -> list[StoredFace]:
        with self._read() as db:
            coll = self._collection_row(db, collection_id)[0]
            if user_id is not None:
                rows = db.execute(f"SELECT {FACE_COLUMNS} FROM faces WHERE coll = ? AND user_id = ? AND face_id > ? "
                                  "ORDER BY face_id LIMIT ?", (coll, user_id, after or "", int(limit))).fetchall()
            else:
                rows = db.execute(f"SELECT {FACE_COLUMNS} FROM faces WHERE coll = ? AND face_id > ? ORDER BY "
                                  "face_id LIMIT ?", (coll, after or "", int(limit))).fetchall()
        return [face_from_sqlite_row(row) for row in rows]

    def delete_faces(self, collection_id: str, face_ids: Iterable[str]) -> list[str]:
        wanted = list(dict.fromkeys(face_ids))
        with self._write() as db:
            coll = self._collection_row(db, collection_id)[0]
            existing: set[str] = set()
            for chunk in chunks(wanted):
                marks = ",".join("?" * len(chunk))
                existing.update(r[0] for r in db.execute(  # an associated face stays (see the interface)
                    f"SELECT face_id FROM faces WHERE coll = ? AND face_id IN ({marks}) AND user_id IS NULL",
                    (coll, *chunk)))
            deleted = [f for f in wanted if f in existing]
            if deleted:
                first = self._next_seq(db, len(deleted))
                db.executemany("DELETE FROM faces WHERE coll = ? AND face_id = ?", [(coll, f) for f in deleted])
                db.executemany("INSERT INTO deletions (seq, coll, face_id) VALUES (?, ?, ?)",
                               [(first + i, coll, f) for i, f in enumerate(deleted)])
                db.execute("UPDATE collections SET face_count = face_count - ? WHERE id = ?", (len(deleted), coll))
                self._trim_log(db)
        if deleted:
            self.checkpoint()
        return deleted

    @staticmethod
    def _trim_log(db: sqlite3.Connection) -> None:
        row = db.execute("SELECT seq FROM deletions ORDER BY seq DESC LIMIT 1 OFFSET ?",
                         (DELETION_LOG_ENTRIES,)).fetchone()
        if row is not None:  # entries at or below row[0] go; a caller at an older seq must rebuild
            db.execute("DELETE FROM deletions WHERE seq <= ?", (row[0],))
            db.execute("UPDATE meta SET value = max(value, ?) WHERE key = 'log_floor'", (row[0],))

    # -- keeping an index in step -------------------------------------------------------------------------------

    def changes_since(self, collection_id: str, generation: str | None, seq: int) -> Changes | None:
        self._checkpoint_if_pending()
        with self._read() as db:
            row = self._collection_row(db, collection_id)
            coll, current_generation = row[0], row[6]
            if generation != current_generation:
                return None
            floor = db.execute("SELECT value FROM meta WHERE key = 'log_floor'").fetchone()[0]
            if seq < floor:
                return None
            now = db.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[0]
            if now <= seq:
                return Changes(current_generation, seq, [], [])
            added = [face_from_sqlite_row(r) for r in db.execute(
                f"SELECT {FACE_COLUMNS} FROM faces WHERE coll = ? AND seq > ? ORDER BY seq", (coll, seq))]
            deleted = [r[0] for r in db.execute(
                "SELECT face_id FROM deletions WHERE coll = ? AND seq > ? ORDER BY seq", (coll, seq))]
        return Changes(current_generation, now, added, deleted)

    def all_embeddings(self, collection_id: str) -> tuple[str, int, list[str], np.ndarray]:
        with self._read() as db:
            row = self._collection_row(db, collection_id)
            coll, generation, dimension, count = row[0], row[6], row[4], row[7]
            now = db.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[0]
            ids: list[str] = []
            matrix = np.empty((count, dimension), dtype=np.float32)
            for i, (face_id, blob) in enumerate(db.execute(
                    "SELECT face_id, embedding FROM faces WHERE coll = ? ORDER BY face_id", (coll,))):
                if i >= len(matrix):  # face_count is kept in the same transactions; this is a safety net
                    matrix = np.concatenate([matrix, np.empty_like(matrix[:1])])
                ids.append(face_id)
                matrix[i] = np.frombuffer(blob, dtype=np.float32)
        return generation, now, ids, matrix[: len(ids)]

    def close(self) -> None:
        with self._lock:
            self._db.close()
