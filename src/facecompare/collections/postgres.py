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

from ..errors import (
    ConflictException,
    IdempotentParameterMismatchException,
    InternalServerError,
    InvalidParameterException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
    quote_input,
)
from .store import (
    MAX_FACES_PER_USER,
    Changes,
    CollectionInfo,
    CollectionStore,
    StoredFace,
    StoredUser,
    UserChange,
    plan_association,
    plan_disassociation,
    redact_url,
)

try:  # the `postgres` extra: pip install 'facecompare[postgres]'
    import psycopg
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("the PostgreSQL collection store needs psycopg 3 and psycopg_pool: "
                      "pip install 'facecompare[postgres]'") from exc

log = logging.getLogger("facecompare.collections")

SCHEMA_LOCK_KEY = 0x66636F6C  # pg_advisory_xact_lock key held while migrating ("fcol")

# one entry per schema version: the statements that bring version n to n + 1 (append; never edit a released one)
MIGRATIONS: list[tuple[str, ...]] = [
    # 1: collections, faces, the deletion log and the change sequence
    ("CREATE SEQUENCE facecompare_change_seq AS bigint",
    """
    CREATE TABLE facecompare_collections (
        collection_id   text COLLATE "C" PRIMARY KEY,
        model           text NOT NULL,
        metric          text NOT NULL,
        dimension       integer NOT NULL CHECK (dimension > 0),
        tags            jsonb NOT NULL DEFAULT '{}'::jsonb,
        created_at      double precision NOT NULL,
        generation      text NOT NULL,
        face_count      bigint NOT NULL DEFAULT 0,
        last_seq        bigint NOT NULL DEFAULT 0,
        pruned_through  bigint NOT NULL DEFAULT 0
    )""",
    """
    CREATE TABLE facecompare_faces (
        collection_id     text COLLATE "C" NOT NULL
                          REFERENCES facecompare_collections (collection_id) ON DELETE CASCADE,
        face_id           text COLLATE "C" NOT NULL,
        image_id          text NOT NULL,
        external_image_id text,
        box_width         double precision NOT NULL,
        box_height        double precision NOT NULL,
        box_left          double precision NOT NULL,
        box_top           double precision NOT NULL,
        confidence        double precision NOT NULL,
        embedding         bytea NOT NULL,
        image_sha256      text NOT NULL,
        indexed_at        double precision NOT NULL,
        seq               bigint NOT NULL,
        PRIMARY KEY (collection_id, face_id)
    )""",
    "CREATE INDEX facecompare_faces_seq ON facecompare_faces (collection_id, seq)",
    """
    CREATE TABLE facecompare_face_deletions (
        collection_id text COLLATE "C" NOT NULL
                      REFERENCES facecompare_collections (collection_id) ON DELETE CASCADE,
        seq           bigint NOT NULL,
        face_id       text COLLATE "C" NOT NULL,
        deleted_at    timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (collection_id, seq)
    )"""),
    # 2: Rekognition Users: a face's user, the users, and the digests of recent ClientRequestTokens
    ('ALTER TABLE facecompare_faces ADD COLUMN user_id text COLLATE "C"',
     "CREATE INDEX facecompare_faces_user ON facecompare_faces (collection_id, user_id) WHERE user_id IS NOT NULL",
     "ALTER TABLE facecompare_collections ADD COLUMN user_count bigint NOT NULL DEFAULT 0",
     """
    CREATE TABLE facecompare_users (
        collection_id text COLLATE "C" NOT NULL
                      REFERENCES facecompare_collections (collection_id) ON DELETE CASCADE,
        user_id       text COLLATE "C" NOT NULL,
        created_at    double precision NOT NULL,
        face_count    integer NOT NULL DEFAULT 0,
        PRIMARY KEY (collection_id, user_id)
    )""",
     """
    CREATE TABLE facecompare_user_requests (
        collection_id text COLLATE "C" NOT NULL
                      REFERENCES facecompare_collections (collection_id) ON DELETE CASCADE,
        token         text NOT NULL,
        digest        text NOT NULL,
        created_at    double precision NOT NULL,
        PRIMARY KEY (collection_id, token)
    )""",
     "CREATE INDEX facecompare_user_requests_time ON facecompare_user_requests (created_at)"),
    # 3: the key that signs pagination tokens: random (two gen_random_uuid()s, from the server's strong random
    # source), made once with the schema, shared by every replica on the database whatever URL it uses
    ("CREATE TABLE facecompare_secrets (name text COLLATE \"C\" PRIMARY KEY, value bytea NOT NULL)",
     "INSERT INTO facecompare_secrets (name, value) VALUES ('pagination', "
     "uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()))"),
    # 4: the SigV4 signatures of state-changing requests accepted within the clock-skew window (their SHA-256), shared
    # by every replica on the database, so a replay is refused whichever of them it reaches
    ("CREATE TABLE facecompare_seen_signatures (digest bytea PRIMARY KEY, until double precision NOT NULL)",
     "CREATE INDEX facecompare_seen_signatures_time ON facecompare_seen_signatures (until)"),
]

#: seconds a ClientRequestToken's digest is kept (a retry comes within seconds; boto3 makes a new one per call)
REQUEST_TOKEN_SECONDS = 24 * 3600.0

_FACE_COLUMNS = ("face_id, image_id, external_image_id, box_width, box_height, box_left, box_top, confidence, "
                 "embedding, image_sha256, indexed_at, user_id")


def open_pool(url: str, name: str, max_connections: int, connect_timeout: float, unreachable) -> ConnectionPool:
    """An open pool of autocommit connections to ``url`` (each checked before it is lent), at most
    ``max_connections``; ``unreachable(exc)`` is raised when the first connection does not come within
    ``connect_timeout``. Shared by the collection and review stores."""
    conninfo = "postgresql:" + url.split(":", 1)[1] if url.startswith("postgres:") else url
    pool = ConnectionPool(conninfo, min_size=1, max_size=max(1, max_connections), open=False, timeout=connect_timeout,
                          check=ConnectionPool.check_connection,
                          kwargs={"connect_timeout": max(1, int(connect_timeout)), "autocommit": True}, name=name)
    try:
        pool.open(wait=True, timeout=connect_timeout)
    except PoolTimeout as exc:
        pool.close()
        raise unreachable(exc) from exc
    return pool


class PostgresStore(CollectionStore):
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
            cur.executemany(f"INSERT INTO facecompare_faces (collection_id, {_FACE_COLUMNS}, seq) VALUES "
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
                cur.execute(f"SELECT {_FACE_COLUMNS} FROM facecompare_faces WHERE collection_id = %s AND "
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
            cur.execute(f"SELECT {_FACE_COLUMNS} FROM facecompare_faces WHERE collection_id = %s AND face_id = ANY(%s) "
                        "ORDER BY face_id", (collection_id, ids))
            return [self._face(row) for row in cur.fetchall()]

        return self._run(work)

    def list_faces(self, collection_id: str, after: str | None = None, limit: int = 1000,
                   user_id: str | None = None) -> list[StoredFace]:
        def work(cur):
            self._exists(cur, collection_id)
            if limit <= 0:
                return []
            cur.execute(f"SELECT {_FACE_COLUMNS} FROM facecompare_faces WHERE collection_id = %s AND "
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

    # users -------------------------------------------------------------------------------------------------

    @staticmethod
    def _replayed(cur, collection_id: str, request: tuple[str, str] | None) -> bool:
        """Whether ``request`` (token, digest) was seen; a token seen with another digest is refused. A new token
        is recorded (and the collection's tokens past their day forgotten). Called under the collection's lock."""
        if request is None:
            return False
        token, digest = request
        cur.execute("SELECT digest FROM facecompare_user_requests WHERE collection_id = %s AND token = %s",
                    (collection_id, token))
        row = cur.fetchone()
        if row is not None:
            if row[0] != digest:
                raise IdempotentParameterMismatchException(
                    f"The ClientRequestToken {quote_input(token)} was used with other parameters; use a new token "
                    "for a new request."
                )
            return True
        now = time.time()
        cur.execute("DELETE FROM facecompare_user_requests WHERE collection_id = %s AND created_at < %s",
                    (collection_id, now - REQUEST_TOKEN_SECONDS))
        cur.execute("INSERT INTO facecompare_user_requests (collection_id, token, digest, created_at) "
                    "VALUES (%s, %s, %s, %s)", (collection_id, token, digest, now))
        return False

    @staticmethod
    def _user(cur, collection_id: str, user_id: str) -> StoredUser | None:
        cur.execute("SELECT user_id, created_at, face_count FROM facecompare_users WHERE collection_id = %s AND "
                    "user_id = %s", (collection_id, user_id))
        row = cur.fetchone()
        return StoredUser(row[0], float(row[1]), int(row[2])) if row else None

    @staticmethod
    def _user_not_found(collection_id: str, user_id: str) -> ResourceNotFoundException:
        return ResourceNotFoundException(f"The user {quote_input(user_id)} does not exist in collection "
                                         f"{quote_input(collection_id)}.")

    def create_user(self, collection_id: str, user_id: str,
                    request: tuple[str, str] | None = None) -> StoredUser:
        def work(cur):
            self._lock(cur, collection_id)
            replay = self._replayed(cur, collection_id, request)
            existing = self._user(cur, collection_id, user_id)
            if replay:  # done before: succeed again, change nothing (not even a user deleted since)
                return existing or StoredUser(user_id, time.time(), 0)
            if existing is not None:
                raise ConflictException(f"The user {quote_input(user_id)} already exists in collection "
                                        f"{quote_input(collection_id)}.")
            created = time.time()
            cur.execute("INSERT INTO facecompare_users (collection_id, user_id, created_at) VALUES (%s, %s, %s)",
                        (collection_id, user_id, created))
            cur.execute("UPDATE facecompare_collections SET user_count = user_count + 1 WHERE collection_id = %s",
                        (collection_id,))
            return StoredUser(user_id, created, 0)

        return self._run(work)

    def delete_user(self, collection_id: str, user_id: str, request: tuple[str, str] | None = None) -> None:
        def work(cur):
            self._lock(cur, collection_id)
            if self._replayed(cur, collection_id, request):  # done before: succeed again, change nothing
                return
            if self._user(cur, collection_id, user_id) is None:
                raise self._user_not_found(collection_id, user_id)
            cur.execute("UPDATE facecompare_faces SET user_id = NULL WHERE collection_id = %s AND user_id = %s",
                        (collection_id, user_id))
            cur.execute("DELETE FROM facecompare_users WHERE collection_id = %s AND user_id = %s",
                        (collection_id, user_id))
            cur.execute("UPDATE facecompare_collections SET user_count = user_count - 1 WHERE collection_id = %s",
                        (collection_id,))

        self._run(work)

    def get_user(self, collection_id: str, user_id: str) -> StoredUser | None:
        def work(cur):
            self._exists(cur, collection_id)
            return self._user(cur, collection_id, user_id)

        return self._run(work)

    def list_users(self, collection_id: str, after: str | None = None, limit: int = 1000) -> list[StoredUser]:
        def work(cur):
            self._exists(cur, collection_id)
            cur.execute("SELECT user_id, created_at, face_count FROM facecompare_users WHERE collection_id = %s AND "
                        "(%s::text IS NULL OR user_id > %s) ORDER BY user_id LIMIT %s",
                        (collection_id, after, after, int(limit)))
            return [StoredUser(r[0], float(r[1]), int(r[2])) for r in cur.fetchall()]

        return self._run(work)

    def user_faces(self, collection_id: str, user_ids: Iterable[str]) -> list[StoredFace]:
        ids = sorted(set(user_ids))

        def work(cur):
            self._exists(cur, collection_id)
            if not ids:
                return []
            cur.execute(f"SELECT {_FACE_COLUMNS} FROM facecompare_faces WHERE collection_id = %s AND "
                        "user_id = ANY(%s) ORDER BY user_id, face_id", (collection_id, ids))
            return [self._face(row) for row in cur.fetchall()]

        return self._run(work)

    @staticmethod
    def _owners(cur, collection_id: str, face_ids: list[str]) -> dict[str, str | None]:
        cur.execute("SELECT face_id, user_id FROM facecompare_faces WHERE collection_id = %s AND face_id = ANY(%s) "
                    "FOR UPDATE", (collection_id, face_ids))
        return dict(cur.fetchall())

    def associate_faces(self, collection_id: str, user_id: str, face_ids: Sequence[str],
                        request: tuple[str, str] | None = None,
                        max_faces: int = MAX_FACES_PER_USER) -> UserChange:
        wanted = list(dict.fromkeys(face_ids))

        def work(cur):
            self._lock(cur, collection_id)
            self._replayed(cur, collection_id, request)  # a replay associates again, which changes nothing
            user = self._user(cur, collection_id, user_id)
            if user is None:
                raise self._user_not_found(collection_id, user_id)
            changed, refused, new = plan_association(user, user_id, wanted,
                                                     self._owners(cur, collection_id, wanted), max_faces)
            if new:
                cur.execute("UPDATE facecompare_faces SET user_id = %s WHERE collection_id = %s AND face_id = ANY(%s)",
                            (user_id, collection_id, new))
                cur.execute("UPDATE facecompare_users SET face_count = face_count + %s WHERE collection_id = %s AND "
                            "user_id = %s", (len(new), collection_id, user_id))
            return UserChange(changed, refused, self._user(cur, collection_id, user_id))

        return self._run(work)

    def disassociate_faces(self, collection_id: str, user_id: str, face_ids: Sequence[str],
                           request: tuple[str, str] | None = None) -> UserChange:
        wanted = list(dict.fromkeys(face_ids))

        def work(cur):
            self._lock(cur, collection_id)
            self._replayed(cur, collection_id, request)
            if self._user(cur, collection_id, user_id) is None:
                raise self._user_not_found(collection_id, user_id)
            changed, refused = plan_disassociation(user_id, wanted, self._owners(cur, collection_id, wanted))
            if changed:
                cur.execute("UPDATE facecompare_faces SET user_id = NULL WHERE collection_id = %s AND "
                            "face_id = ANY(%s)", (collection_id, changed))
                cur.execute("UPDATE facecompare_users SET face_count = face_count - %s WHERE collection_id = %s AND "
                            "user_id = %s", (len(changed), collection_id, user_id))
            return UserChange(changed, refused, self._user(cur, collection_id, user_id))

        return self._run(work)

    # tags --------------------------------------------------------------------------------------------------

    def update_tags(self, collection_id: str, add: dict[str, str], remove: Iterable[str] = (),
                    max_tags: int = 200) -> dict[str, str]:
        remove = list(remove)

        def work(cur):
            cur.execute("SELECT tags FROM facecompare_collections WHERE collection_id = %s FOR NO KEY UPDATE",
                        (collection_id,))
            row = cur.fetchone()
            if row is None:
                raise self._not_found(collection_id)
            tags = dict(row[0] or {})
            tags.update(add)
            for key in remove:
                tags.pop(key, None)
            if len(tags) > max_tags:
                raise ServiceQuotaExceededException(
                    f"The collection {quote_input(collection_id)} would have {len(tags)} tags; the limit is {max_tags}."
                )
            cur.execute("UPDATE facecompare_collections SET tags = %s::jsonb WHERE collection_id = %s",
                        (json.dumps(tags), collection_id))
            return tags

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
        cur.execute(f"SELECT {_FACE_COLUMNS} FROM facecompare_faces WHERE collection_id = %s AND seq > %s "
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
