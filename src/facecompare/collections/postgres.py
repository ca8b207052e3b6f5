"""The PostgreSQL engine of the collection store (``postgresql://user:password@host:5432/dbname``).

Use it when several ``facecompare serve`` processes (replicas, on one machine or several) share collections: each
replica keeps its own search index in memory and follows the others' IndexFaces and DeleteFaces through
:meth:`PostgresStore.changes_since`. Search happens in-process in the index; the database only keeps rows, so no
extension (pgvector) is needed.

The schema is versioned in code (:data:`MIGRATIONS`, the ``facecompare_schema_version`` table) and brought up to
date when a store is opened, under an advisory lock so that processes starting together do not race. Tables
(in the connection's ``search_path``; choose a schema with ``?options=-csearch_path%3Dmyschema``):

- ``facecompare_collections``: one row per collection; also the lock every write to its faces takes first, so
  that the writes of one collection commit in the order of their sequence numbers, its face count and the last
  sequence number given to it (what a reader in one snapshot has seen all of);
- ``facecompare_faces``: one row per face, the embedding as ``bytea`` (float32, little-endian);
- ``facecompare_face_deletions``: the deletion log (face id, sequence number, time) that
  :meth:`~PostgresStore.changes_since` reads; entries older than ``deletion_log_seconds`` are dropped by
  the next write to the collection's faces, and a caller that last synchronised before a dropped entry is told
  to rebuild;
- the sequence ``facecompare_change_seq`` numbers every change.

Deleting faces or a collection DELETEs the rows (and the collection's deletion log): no query can read them
again. Reclaiming the space of deleted rows in the table files is PostgreSQL's business (autovacuum, or
``VACUUM``); until then the bytes of a deleted row may remain in the data files and WAL, as with any
PostgreSQL ``DELETE``: protect the database's disks and backups accordingly.

Connections come from a small thread-safe pool (``psycopg_pool``); every method runs in one transaction.
Open a store after forking worker processes, not before (connections must not be shared across a fork).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np

from ..db.postgres import open_pool
from ..db.url import redact_url
from ..errors import (
    InternalServerError,
    InvalidParameterException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
    quote_input,
)
from .interface import Changes, CollectionInfo, CollectionStore, StoredFace
from .postgres_users import PostgresUsers
from .schema import FACE_COLUMNS
from .schema import POSTGRES_MIGRATIONS as MIGRATIONS

try:  # the `postgres` extra: pip install 'facecompare[postgres]'
    import psycopg
    from psycopg_pool import PoolTimeout
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("the PostgreSQL collection store needs psycopg 3 and psycopg_pool: "
                      "pip install 'facecompare[postgres]'") from exc

__all__ = ["MIGRATIONS", "SCHEMA_LOCK_KEY", "PostgresStore", "open_pool", "redact_url"]

log = logging.getLogger("facecompare.collections")

SCHEMA_LOCK_KEY = 0x66636F6C  # pg_advisory_xact_lock key held while migrating ("fcol")


class PostgresStore(PostgresUsers, CollectionStore):
    """:class:`CollectionStore` on PostgreSQL (10 or newer) through psycopg 3.

    ``url`` is a libpq connection URI (``postgresql://user:password@host:port/dbname?sslmode=require``; a Unix
    socket with ``?host=/path/to/socket/dir``). ``deletion_log_seconds`` is how long a deleted face's id stays in
    the deletion log (a replica that has not synchronised for longer rebuilds its index from the store);
    ``max_connections`` bounds the pool; ``connect_timeout`` is how long a method waits for a connection before
    it fails with InternalServerError.
    """

    def __init__(self, url: str, *, deletion_log_seconds: float = 24 * 3600.0, max_connections: int = 8,
                 connect_timeout: float = 15.0) -> None:
        self.url = redact_url(url)
        self.deletion_log_seconds = float(deletion_log_seconds)
        self._timeout = connect_timeout
        self._closed = threading.Event()
        self._max_connections = max(1, max_connections)
        self._pool = open_pool(url, "facecompare-collections", max_connections, connect_timeout, self._unreachable)
        try:
            self._migrate()
        except BaseException:
            self._pool.close()
            raise

    # connections -------------------------------------------------------------------------------------------

    def _connection(self):
        if self._closed.is_set():
            raise InternalServerError("The collection store is closed.")
        return self._pool.connection(timeout=self._timeout)  # PoolTimeout when none comes in time

    def _run(self, work, *, snapshot: bool = False, transaction: bool = True):
        """``work(cursor)`` in one transaction, committed when it returns (``snapshot``: a read-only REPEATABLE
        READ one, every query seeing the same snapshot; ``transaction=False``: for one statement, which is atomic
        by itself, without BEGIN and COMMIT). Database failures become InternalServerError (their text may quote
        data, so it is not passed on)."""
        try:
            with self._connection() as conn:
                if not transaction:
                    with conn.cursor(binary=True) as cur:
                        return work(cur)
                # applied by the BEGIN that transaction() sends (no extra round trip); reset for the next user
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ if snapshot else None
                conn.read_only = True if snapshot else None
                with conn.transaction(), conn.cursor(binary=True) as cur:
                    return work(cur)
        except PoolTimeout as exc:  # (an OperationalError: caught first)
            raise self._unreachable(exc) from exc
        except psycopg.Error as exc:
            # the operator's log names the database and the error class; not its text, which may quote data
            log.warning("collection database error %s (SQLSTATE %s) on %s", type(exc).__name__, exc.sqlstate,
                        self.url)
            raise InternalServerError("Internal server error: the collection database failed.") from exc

    def _unreachable(self, exc: BaseException) -> InternalServerError:
        """The client is told no more than that (not where the database is); the operator's log says where and how
        long it waited."""
        log.warning("no connection to the collection database %s in %.0f s (%s): unreachable, or all %d "
                    "connections busy", self.url, self._timeout, type(exc).__name__, self._max_connections)
        return InternalServerError("Internal server error: no connection to the collection database in time.")

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._pool.close()

    def _migrate(self) -> None:
        def work(cur):
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            # CREATE ... IF NOT EXISTS would need the CREATE privilege even when the table exists: ask first, so
            # that a role with only SELECT/INSERT/UPDATE/DELETE can open a migrated database
            cur.execute("SELECT to_regclass('facecompare_schema_version') IS NULL")
            if cur.fetchone()[0]:
                cur.execute("CREATE TABLE facecompare_schema_version (version integer NOT NULL)")
            cur.execute("SELECT version FROM facecompare_schema_version")
            row = cur.fetchone()
            version = row[0] if row else 0
            if version > len(MIGRATIONS):
                raise InternalServerError(f"The collection database has schema version {version}, newer than this "
                                          f"facecompare knows ({len(MIGRATIONS)}): upgrade facecompare.")
            for statements in MIGRATIONS[version:]:
                for sql in statements:
                    cur.execute(sql)
            if row is None:
                cur.execute("INSERT INTO facecompare_schema_version (version) VALUES (%s)", (len(MIGRATIONS),))
            elif version < len(MIGRATIONS):
                cur.execute("UPDATE facecompare_schema_version SET version = %s", (len(MIGRATIONS),))

        self._run(work)

    def pagination_key(self) -> bytes:
        return bytes(self._run(lambda cur: cur.execute(
            "SELECT value FROM facecompare_secrets WHERE name = 'pagination'").fetchone()[0], transaction=False))

    def first_use_of_signature(self, digest: bytes, until: float, now: float) -> bool:
        def work(cur):
            cur.execute("DELETE FROM facecompare_seen_signatures WHERE until <= %s", (now,))
            cur.execute("INSERT INTO facecompare_seen_signatures (digest, until) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                        (bytes(digest), float(until)))
            return cur.rowcount == 1

        return self._run(work)

    def forget_signature(self, digest: bytes) -> None:
        self._run(lambda cur: cur.execute("DELETE FROM facecompare_seen_signatures WHERE digest = %s", (bytes(digest),)))

    def schema_version(self) -> int:
        return self._run(lambda cur: cur.execute("SELECT version FROM facecompare_schema_version").fetchone()[0])

    # collections -------------------------------------------------------------------------------------------

    @staticmethod
    def _info(row) -> CollectionInfo:
        collection_id, model, metric, dimension, tags, created_at, generation, face_count, user_count = row
        return CollectionInfo(collection_id=collection_id, model=model, metric=metric, dimension=int(dimension),
                              created_at=float(created_at), generation=generation, face_count=int(face_count),
                              tags=dict(tags or {}), user_count=int(user_count))

    _INFO = "collection_id, model, metric, dimension, tags, created_at, generation, face_count, user_count"

    def create_collection(self, collection_id: str, model: str, metric: str, dimension: int,
                          tags: dict[str, str] | None = None) -> CollectionInfo:
        if int(dimension) <= 0:
            raise InvalidParameterException(f"An embedding dimension must be positive; got {quote_input(dimension)}.")

        def work(cur):
            cur.execute(f"INSERT INTO facecompare_collections (collection_id, model, metric, dimension, tags, "
                        f"created_at, generation) VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s) "
                        f"ON CONFLICT (collection_id) DO NOTHING RETURNING {self._INFO}",
                        (collection_id, model, metric, int(dimension), json.dumps(dict(tags or {})), time.time(),
                         uuid.uuid4().hex))
            row = cur.fetchone()
            if row is None:
                raise ResourceAlreadyExistsException(f"The collection {quote_input(collection_id)} already exists.")
            return self._info(row)

        return self._run(work)

    def delete_collection(self, collection_id: str) -> None:
        def work(cur):
            cur.execute("DELETE FROM facecompare_collections WHERE collection_id = %s RETURNING 1", (collection_id,))
            if cur.fetchone() is None:
                raise self._not_found(collection_id)

        self._run(work)

    def describe_collection(self, collection_id: str) -> CollectionInfo:
        def work(cur):
            cur.execute(f"SELECT {self._INFO} FROM facecompare_collections WHERE collection_id = %s", (collection_id,))
            row = cur.fetchone()
            if row is None:
                raise self._not_found(collection_id)
            return self._info(row)

        return self._run(work)

    def list_collections(self, after: str | None = None, limit: int = 1000) -> list[CollectionInfo]:
        if limit <= 0:
            return []

        def work(cur):
            cur.execute(f"SELECT {self._INFO} FROM facecompare_collections WHERE %s::text IS NULL OR collection_id > %s"
                        " ORDER BY collection_id LIMIT %s", (after, after, int(limit)))
            return [self._info(row) for row in cur.fetchall()]

        return self._run(work)

    @staticmethod
    def _not_found(collection_id: str) -> ResourceNotFoundException:
        return ResourceNotFoundException(f"The collection {quote_input(collection_id)} does not exist.")

    def _lock(self, cur, collection_id: str) -> tuple[str, int]:
        """Take the collection's row lock (held to the end of the transaction): writes to one collection's faces
        are serialised, so their sequence numbers, all drawn after the lock, commit in increasing order."""
        cur.execute("SELECT generation, dimension FROM facecompare_collections WHERE collection_id = %s "
                    "FOR NO KEY UPDATE", (collection_id,))
        row = cur.fetchone()
        if row is None:
            raise self._not_found(collection_id)
        return row[0], int(row[1])

    def _exists(self, cur, collection_id: str) -> None:
        cur.execute("SELECT 1 FROM facecompare_collections WHERE collection_id = %s", (collection_id,))
        if cur.fetchone() is None:
            raise self._not_found(collection_id)

    def _prune(self, cur, collection_id: str) -> None:
        """Drop the collection's deletion log entries older than the retention (done by every write to its faces,
        under its lock); a caller that last synchronised before one of them must rebuild."""
        cur.execute("DELETE FROM facecompare_face_deletions WHERE collection_id = %s AND "
                    "deleted_at < now() - make_interval(secs => %s) RETURNING seq",
                    (collection_id, self.deletion_log_seconds))
        pruned = max((row[0] for row in cur.fetchall()), default=None)
        if pruned is not None:
            cur.execute("UPDATE facecompare_collections SET pruned_through = GREATEST(pruned_through, %s) "
                        "WHERE collection_id = %s", (pruned, collection_id))

    # faces -------------------------------------------------------------------------------------------------

    @staticmethod
    def _face(row) -> StoredFace:
        (face_id, image_id, external_image_id, width, height, left, top, confidence, embedding, image_sha256,
         indexed_at, user_id) = row
        return StoredFace(face_id=face_id, image_id=image_id, external_image_id=external_image_id,
                          bounding_box=(width, height, left, top), confidence=confidence,
                          embedding=np.frombuffer(bytes(embedding), dtype="<f4").astype(np.float32),
                          image_sha256=image_sha256, indexed_at=indexed_at, user_id=user_id)

    def add_faces(self, collection_id: str, faces: Sequence[StoredFace]) -> list[StoredFace]:
        faces = list(faces)

        def work(cur):
            _, dimension = self._lock(cur, collection_id)
            if not faces:
                return []
            vectors = []
            for face in faces:
                vector = np.ascontiguousarray(face.embedding, dtype="<f4").reshape(-1)
                if vector.shape[0] != dimension:
                    raise InvalidParameterException(f"The collection {quote_input(collection_id)} holds "
                                                    f"{dimension}-d embeddings; a face has {vector.shape[0]}.")
                vectors.append(vector)
            cur.executemany(f"INSERT INTO facecompare_faces (collection_id, {FACE_COLUMNS}, seq) VALUES "
                            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, NULL, "
                            "nextval('facecompare_change_seq')) "
                            "ON CONFLICT (collection_id, face_id) DO NOTHING RETURNING face_id, seq",
                            [(collection_id, face.face_id, face.image_id, face.external_image_id,
                              *(float(v) for v in face.bounding_box), float(face.confidence), vector.tobytes(),
                              face.image_sha256, float(face.indexed_at)) for face, vector in zip(faces, vectors)],
                            returning=True)
            inserted: dict[str, int] = {}
            while True:
                inserted.update((face_id, seq) for face_id, seq in cur.fetchall())
                if not cur.nextset():
                    break
            if inserted:
                cur.execute("UPDATE facecompare_collections SET face_count = face_count + %s, last_seq = %s "
                            "WHERE collection_id = %s", (len(inserted), max(inserted.values()), collection_id))
            self._prune(cur, collection_id)
            stored: dict[str, StoredFace] = {}
            for face, vector in zip(faces, vectors):
                if face.face_id in inserted and face.face_id not in stored:
                    stored[face.face_id] = replace(face, embedding=vector.astype(np.float32),
                                                   bounding_box=tuple(float(v) for v in face.bounding_box))
            missing = [face.face_id for face in faces if face.face_id not in stored]
            if missing:  # already there (a retry, or another process was first): the stored row stands
                cur.execute(f"SELECT {FACE_COLUMNS} FROM facecompare_faces WHERE collection_id = %s AND "
                            "face_id = ANY(%s)", (collection_id, missing))
                stored.update((row[0], self._face(row)) for row in cur.fetchall())
            return [stored[face.face_id] for face in faces]

        return self._run(work)

    def get_faces(self, collection_id: str, face_ids: Iterable[str]) -> list[StoredFace]:
        ids = sorted(set(face_ids))

        def work(cur):
            self._exists(cur, collection_id)
            if not ids:
                return []
            cur.execute(f"SELECT {FACE_COLUMNS} FROM facecompare_faces WHERE collection_id = %s AND face_id = ANY(%s) "
                        "ORDER BY face_id", (collection_id, ids))
            return [self._face(row) for row in cur.fetchall()]

        return self._run(work)

    def list_faces(self, collection_id: str, after: str | None = None, limit: int = 1000,
                   user_id: str | None = None) -> list[StoredFace]:
        def work(cur):
            self._exists(cur, collection_id)
            if limit <= 0:
                return []
            cur.execute(f"SELECT {FACE_COLUMNS} FROM facecompare_faces WHERE collection_id = %s AND "
                        "(%s::text IS NULL OR face_id > %s) AND (%s::text IS NULL OR user_id = %s) "
                        "ORDER BY face_id LIMIT %s", (collection_id, after, after, user_id, user_id, int(limit)))
            return [self._face(row) for row in cur.fetchall()]

        return self._run(work)

    def delete_faces(self, collection_id: str, face_ids: Iterable[str]) -> list[str]:
        ids = list(dict.fromkeys(face_ids))

        def work(cur):
            self._lock(cur, collection_id)
            if not ids:
                return []
            cur.execute("DELETE FROM facecompare_faces WHERE collection_id = %s AND face_id = ANY(%s) AND "
                        "user_id IS NULL RETURNING face_id", (collection_id, ids))  # associated faces stay
            gone = {row[0] for row in cur.fetchall()}
            deleted = [face_id for face_id in ids if face_id in gone]
            if deleted:  # one log entry per face, numbered in one statement
                cur.execute("INSERT INTO facecompare_face_deletions (collection_id, seq, face_id) "
                            "SELECT %s, nextval('facecompare_change_seq'), f FROM unnest(%s::text[]) f", (collection_id, deleted))
                cur.execute("SELECT max(seq) FROM facecompare_face_deletions WHERE collection_id = %s",
                            (collection_id,))
                last = cur.fetchone()[0]
                cur.execute("UPDATE facecompare_collections SET face_count = face_count - %s, last_seq = %s "
                            "WHERE collection_id = %s", (len(deleted), last, collection_id))
            self._prune(cur, collection_id)
            return deleted

        return self._run(work)

    # replicas: keeping an index in step ------------------------------------------------------------------

    def changes_since(self, collection_id: str, generation: str | None, seq: int) -> Changes | None:
        # asked before every search: when nothing changed, one statement answers (no transaction)
        quick = self._run(lambda cur: self._changes(cur, collection_id, generation, seq, quick=True),
                          transaction=False)
        if quick is not False:
            return quick
        return self._run(lambda cur: self._changes(cur, collection_id, generation, seq), snapshot=True)

    def _changes(self, cur, collection_id: str, generation: str | None, seq: int, quick: bool = False):
        """The answer of changes_since; with ``quick``, False when there are changes to read (in a snapshot)."""
        cur.execute("SELECT generation, last_seq, pruned_through FROM facecompare_collections "
                    "WHERE collection_id = %s", (collection_id,))
        row = cur.fetchone()
        if row is None:
            raise self._not_found(collection_id)
        current, last_seq, pruned_through = row
        if generation != current or seq < pruned_through or seq > last_seq:
            return None
        if seq == last_seq:
            return Changes(generation=current, seq=int(last_seq), added=[], deleted=[])
        if quick:
            return False  # there are changes: read them in one snapshot
        cur.execute(f"SELECT {FACE_COLUMNS} FROM facecompare_faces WHERE collection_id = %s AND seq > %s "
                    "ORDER BY seq", (collection_id, seq))
        added = [self._face(r) for r in cur.fetchall()]
        present = {face.face_id for face in added}
        cur.execute("SELECT face_id FROM facecompare_face_deletions WHERE collection_id = %s AND seq > %s "
                    "ORDER BY seq", (collection_id, seq))
        # a face id deleted and then stored again is present: report its latest state only
        deleted = list(dict.fromkeys(r[0] for r in cur.fetchall() if r[0] not in present))
        return Changes(generation=current, seq=int(last_seq), added=added, deleted=deleted)

    def all_embeddings(self, collection_id: str) -> tuple[str, int, list[str], np.ndarray]:
        def work(cur):
            cur.execute("SELECT generation, last_seq, dimension FROM facecompare_collections WHERE collection_id = %s",
                        (collection_id,))
            row = cur.fetchone()
            if row is None:
                raise self._not_found(collection_id)
            generation, last_seq, dimension = row
            cur.execute("SELECT face_id, embedding FROM facecompare_faces WHERE collection_id = %s ORDER BY face_id",
                        (collection_id,))
            rows = cur.fetchall()
            ids = [r[0] for r in rows]
            matrix = np.frombuffer(b"".join(bytes(r[1]) for r in rows), dtype="<f4").astype(np.float32)
            return generation, int(last_seq), ids, matrix.reshape(len(ids), int(dimension))

        return self._run(work, snapshot=True)
