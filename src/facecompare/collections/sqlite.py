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
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import (
    ConflictException,
    IdempotentParameterMismatchException,
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

#: deletions kept for changes_since (older callers rebuild their index from all_embeddings)
DELETION_LOG_ENTRIES = 100_000
#: milliseconds a statement waits for another connection's lock before failing
BUSY_TIMEOUT_MS = 30_000
_CHUNK = 500  # ids per IN (...) query (SQLite's default limit on host parameters is 32766; stay far below)

#: the schema, one migration per entry; ``PRAGMA user_version`` is the number applied. Never edit an entry that
#: has shipped: append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    INSERT INTO meta (key, value) VALUES ('seq', 0), ('log_floor', 0);
    CREATE TABLE collections (
        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: faces of a deleted collection cannot reappear
        collection_id TEXT NOT NULL UNIQUE,
        model TEXT NOT NULL,
        metric TEXT NOT NULL,
        dimension INTEGER NOT NULL,
        created_at REAL NOT NULL,
        generation TEXT NOT NULL,
        face_count INTEGER NOT NULL DEFAULT 0,
        tags TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE faces (
        coll INTEGER NOT NULL REFERENCES collections (id),
        face_id TEXT NOT NULL,
        image_id TEXT NOT NULL,
        external_image_id TEXT,
        box_width REAL NOT NULL,
        box_height REAL NOT NULL,
        box_left REAL NOT NULL,
        box_top REAL NOT NULL,
        confidence REAL NOT NULL,
        embedding BLOB NOT NULL,
        image_sha256 TEXT NOT NULL,
        indexed_at REAL NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (coll, face_id)
    ) WITHOUT ROWID;
    CREATE INDEX faces_by_seq ON faces (coll, seq);
    CREATE TABLE deletions (
        seq INTEGER PRIMARY KEY,
        coll INTEGER NOT NULL,
        face_id TEXT NOT NULL
    );
    CREATE INDEX deletions_by_coll ON deletions (coll, seq);
    """,
    # 2: Rekognition Users: a face's user, the users, and the digests of recent ClientRequestTokens
    """
    ALTER TABLE faces ADD COLUMN user_id TEXT;
    CREATE INDEX faces_by_user ON faces (coll, user_id) WHERE user_id IS NOT NULL;
    ALTER TABLE collections ADD COLUMN user_count INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE users (
        coll INTEGER NOT NULL REFERENCES collections (id),
        user_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        face_count INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (coll, user_id)
    ) WITHOUT ROWID;
    CREATE TABLE user_requests (
        coll INTEGER NOT NULL REFERENCES collections (id),
        token TEXT NOT NULL,
        digest TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (coll, token)
    ) WITHOUT ROWID;
    CREATE INDEX user_requests_by_time ON user_requests (created_at);
    """,
    # 3: the key that signs pagination tokens: random, made once with the schema, shared by every process on the file
    """
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
    INSERT INTO secrets (name, value) VALUES ('pagination', randomblob(32));
    """,
    # 4: the SigV4 signatures of state-changing requests accepted within the clock-skew window (their SHA-256), shared
    # by every process on the file, so a replay is refused whichever worker it reaches
    """
    CREATE TABLE seen_signatures (
        digest BLOB PRIMARY KEY,
        until REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX seen_signatures_by_time ON seen_signatures (until);
    """,
)

#: seconds a ClientRequestToken's digest is kept (a retry comes within seconds; boto3 makes a new one per call)
REQUEST_TOKEN_SECONDS = 24 * 3600.0

_FACE_COLUMNS = ("face_id, image_id, external_image_id, box_width, box_height, box_left, box_top, confidence, "
                 "embedding, image_sha256, indexed_at, user_id")


def path_from_url(url: str) -> str:
    """The file of a ``sqlite:///path`` URL (three slashes then a relative path, four for an absolute one)."""
    if not url.startswith("sqlite:///"):
        raise InvalidParameterException(
            f"A SQLite collection store URL is sqlite:///relative/path.db or sqlite:////absolute/path.db; got "
            f"{quote_input(redact_url(url))}."
        )
    path = url[len("sqlite:///"):].split("?", 1)[0]
    if not path or path == ":memory:":
        raise InvalidParameterException("The SQLite collection store needs a file path (sqlite:///path.db); an "
                                        "in-memory database would vanish with the process.")
    return path


def connect(url: str) -> tuple[Path, sqlite3.Connection]:
    """The file of ``url`` (its folder made when missing) and a connection to it as the stores use it: autocommit
    mode (isolation_level=None: transactions are explicit BEGIN ... COMMIT), usable from any thread under the
    store's lock, a busy timeout, ``secure_delete``, foreign keys, WAL. Shared by the collection and review stores."""
    path = Path(path_from_url(url))
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA secure_delete = ON")
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")  # durable across process crashes; WAL's usual setting
    return path, db


def checkpoint_now(db: sqlite3.Connection) -> bool:
    """Copy the WAL into the file and truncate it, without waiting: a TRUNCATE checkpoint waits (the busy timeout,
    30 s) for every reader in any process to finish, and every request on the store would wait with it. Here it
    gives up at once when a reader holds an older snapshot (having copied what it could); True when complete."""
    db.execute("PRAGMA busy_timeout = 0")
    try:
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return busy == 0


@contextmanager
def transaction(db: sqlite3.Connection, lock, write: bool) -> Iterator[sqlite3.Connection]:
    """One transaction on ``db`` under ``lock``, committed when the block ends, rolled back on an exception. A write
    transaction begins IMMEDIATE: it takes the write lock at once (waiting up to the busy timeout for another
    process), so it never fails half-way on a lock upgrade."""
    with lock:
        db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def _face_from_row(row: tuple) -> StoredFace:
    (face_id, image_id, external, w, h, left, top, confidence, blob, sha, indexed_at, user_id) = row
    return StoredFace(face_id=face_id, image_id=image_id, external_image_id=external,
                      bounding_box=(w, h, left, top), confidence=confidence,
                      embedding=np.frombuffer(blob, dtype=np.float32).copy(), image_sha256=sha,
                      indexed_at=indexed_at, user_id=user_id)


def _chunks(items: list[str], size: int = _CHUNK) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class SqliteStore(CollectionStore):
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

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query in it sees one snapshot of the file."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                self._db.execute("COMMIT")

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
                existing = db.execute(f"SELECT {_FACE_COLUMNS} FROM faces WHERE coll = ? AND face_id = ?",
                                      (coll, face.face_id)).fetchone()
                stored = _face_from_row(existing) if existing else face
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
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                rows = db.execute(f"SELECT {_FACE_COLUMNS} FROM faces WHERE coll = ? AND face_id IN ({marks})",
                                  (coll, *chunk)).fetchall()
                found.extend(_face_from_row(row) for row in rows)
        found.sort(key=lambda f: f.face_id)
        return found

    def list_faces(self, collection_id: str, after: str | None = None, limit: int = 1000,
                   user_id: str | None = None) -> list[StoredFace]:
        with self._read() as db:
            coll = self._collection_row(db, collection_id)[0]
            if user_id is not None:
                rows = db.execute(f"SELECT {_FACE_COLUMNS} FROM faces WHERE coll = ? AND user_id = ? AND face_id > ? "
                                  "ORDER BY face_id LIMIT ?", (coll, user_id, after or "", int(limit))).fetchall()
            else:
                rows = db.execute(f"SELECT {_FACE_COLUMNS} FROM faces WHERE coll = ? AND face_id > ? ORDER BY "
                                  "face_id LIMIT ?", (coll, after or "", int(limit))).fetchall()
        return [_face_from_row(row) for row in rows]

    def delete_faces(self, collection_id: str, face_ids: Iterable[str]) -> list[str]:
        wanted = list(dict.fromkeys(face_ids))
        with self._write() as db:
            coll = self._collection_row(db, collection_id)[0]
            existing: set[str] = set()
            for chunk in _chunks(wanted):
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

    # -- users --------------------------------------------------------------------------------------------------

    @staticmethod
    def _replayed(db: sqlite3.Connection, coll: int, request: tuple[str, str] | None) -> bool:
        """Whether ``request`` (token, digest) was seen; a token seen with another digest is refused. A new token
        is recorded (and tokens past their day forgotten)."""
        if request is None:
            return False
        token, digest = request
        row = db.execute("SELECT digest FROM user_requests WHERE coll = ? AND token = ?", (coll, token)).fetchone()
        if row is not None:
            if row[0] != digest:
                raise IdempotentParameterMismatchException(
                    f"The ClientRequestToken {quote_input(token)} was used with other parameters; use a new token "
                    "for a new request."
                )
            return True
        now = time.time()
        db.execute("DELETE FROM user_requests WHERE created_at < ?", (now - REQUEST_TOKEN_SECONDS,))
        db.execute("INSERT INTO user_requests (coll, token, digest, created_at) VALUES (?, ?, ?, ?)",
                   (coll, token, digest, now))
        return False

    @staticmethod
    def _user(db: sqlite3.Connection, coll: int, user_id: str) -> StoredUser | None:
        row = db.execute("SELECT user_id, created_at, face_count FROM users WHERE coll = ? AND user_id = ?",
                         (coll, user_id)).fetchone()
        return StoredUser(*row) if row else None

    @staticmethod
    def _user_not_found(collection_id: str, user_id: str) -> ResourceNotFoundException:
        return ResourceNotFoundException(f"The user {quote_input(user_id)} does not exist in collection "
                                         f"{quote_input(collection_id)}.")

    def create_user(self, collection_id: str, user_id: str,
                    request: tuple[str, str] | None = None) -> StoredUser:
        with self._write() as db:
            coll = self._collection_row(db, collection_id)[0]
            replay = self._replayed(db, coll, request)
            existing = self._user(db, coll, user_id)
            if replay:  # done before: succeed again, change nothing (not even a user deleted since)
                return existing or StoredUser(user_id, time.time(), 0)
            if existing is not None:
                raise ConflictException(f"The user {quote_input(user_id)} already exists in collection "
                                        f"{quote_input(collection_id)}.")
            created = time.time()
            db.execute("INSERT INTO users (coll, user_id, created_at) VALUES (?, ?, ?)", (coll, user_id, created))
            db.execute("UPDATE collections SET user_count = user_count + 1 WHERE id = ?", (coll,))
        return StoredUser(user_id, created, 0)

    def delete_user(self, collection_id: str, user_id: str, request: tuple[str, str] | None = None) -> None:
        with self._write() as db:
            coll = self._collection_row(db, collection_id)[0]
            if self._replayed(db, coll, request):  # done before: succeed again, change nothing
                return
            if self._user(db, coll, user_id) is None:
                raise self._user_not_found(collection_id, user_id)
            db.execute("UPDATE faces SET user_id = NULL WHERE coll = ? AND user_id = ?", (coll, user_id))
            db.execute("DELETE FROM users WHERE coll = ? AND user_id = ?", (coll, user_id))
            db.execute("UPDATE collections SET user_count = user_count - 1 WHERE id = ?", (coll,))
        self.checkpoint()

    def get_user(self, collection_id: str, user_id: str) -> StoredUser | None:
        with self._read() as db:
            return self._user(db, self._collection_row(db, collection_id)[0], user_id)

    def list_users(self, collection_id: str, after: str | None = None, limit: int = 1000) -> list[StoredUser]:
        with self._read() as db:
            coll = self._collection_row(db, collection_id)[0]
            rows = db.execute("SELECT user_id, created_at, face_count FROM users WHERE coll = ? AND user_id > ? "
                              "ORDER BY user_id LIMIT ?", (coll, after or "", int(limit))).fetchall()
        return [StoredUser(*row) for row in rows]

    def user_faces(self, collection_id: str, user_ids: Iterable[str]) -> list[StoredFace]:
        ids = sorted(set(user_ids))
        found: list[StoredFace] = []
        with self._read() as db:
            coll = self._collection_row(db, collection_id)[0]
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                found.extend(_face_from_row(row) for row in db.execute(
                    f"SELECT {_FACE_COLUMNS} FROM faces WHERE coll = ? AND user_id IN ({marks})", (coll, *chunk)))
        found.sort(key=lambda f: (f.user_id, f.face_id))
        return found

    def _owners(self, db: sqlite3.Connection, coll: int, face_ids: list[str]) -> dict[str, str | None]:
        owners: dict[str, str | None] = {}
        for chunk in _chunks(face_ids):
            marks = ",".join("?" * len(chunk))
            owners.update(db.execute(f"SELECT face_id, user_id FROM faces WHERE coll = ? AND face_id IN ({marks})",
                                     (coll, *chunk)).fetchall())
        return owners

    def associate_faces(self, collection_id: str, user_id: str, face_ids: Sequence[str],
                        request: tuple[str, str] | None = None,
                        max_faces: int = MAX_FACES_PER_USER) -> UserChange:
        wanted = list(dict.fromkeys(face_ids))
        with self._write() as db:
            coll = self._collection_row(db, collection_id)[0]
            self._replayed(db, coll, request)  # a replay associates again, which changes nothing
            user = self._user(db, coll, user_id)
            if user is None:
                raise self._user_not_found(collection_id, user_id)
            changed, refused, new = plan_association(user, user_id, wanted, self._owners(db, coll, wanted), max_faces)
            if new:
                db.executemany("UPDATE faces SET user_id = ? WHERE coll = ? AND face_id = ?",
                               [(user_id, coll, f) for f in new])
                db.execute("UPDATE users SET face_count = face_count + ? WHERE coll = ? AND user_id = ?",
                           (len(new), coll, user_id))
            user = self._user(db, coll, user_id)
        return UserChange(changed, refused, user)

    def disassociate_faces(self, collection_id: str, user_id: str, face_ids: Sequence[str],
                           request: tuple[str, str] | None = None) -> UserChange:
        wanted = list(dict.fromkeys(face_ids))
        with self._write() as db:
            coll = self._collection_row(db, collection_id)[0]
            self._replayed(db, coll, request)
            if self._user(db, coll, user_id) is None:
                raise self._user_not_found(collection_id, user_id)
            changed, refused = plan_disassociation(user_id, wanted, self._owners(db, coll, wanted))
            if changed:
                db.executemany("UPDATE faces SET user_id = NULL WHERE coll = ? AND face_id = ?",
                               [(coll, f) for f in changed])
                db.execute("UPDATE users SET face_count = face_count - ? WHERE coll = ? AND user_id = ?",
                           (len(changed), coll, user_id))
            user = self._user(db, coll, user_id)
        return UserChange(changed, refused, user)

    # -- tags ---------------------------------------------------------------------------------------------------

    def update_tags(self, collection_id: str, add: dict[str, str], remove: Iterable[str] = (),
                    max_tags: int = 200) -> dict[str, str]:
        with self._write() as db:
            row = self._collection_row(db, collection_id)
            tags = json.loads(row[8])
            tags.update(add)
            for key in remove:
                tags.pop(key, None)
            if len(tags) > max_tags:
                raise ServiceQuotaExceededException(
                    f"The collection {quote_input(collection_id)} would have {len(tags)} tags; the limit is {max_tags}."
                )
            db.execute("UPDATE collections SET tags = ? WHERE id = ?", (json.dumps(tags, sort_keys=True), row[0]))
        return tags

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
            added = [_face_from_row(r) for r in db.execute(
                f"SELECT {_FACE_COLUMNS} FROM faces WHERE coll = ? AND seq > ? ORDER BY seq", (coll, seq))]
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
