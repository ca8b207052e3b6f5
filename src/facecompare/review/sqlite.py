"""The review store in the collections' SQLite file (``sqlite:///path.db``), in tables of its own.

Its schema has its own version (the ``facecompare_review_schema`` table; the collections' tables keep
``PRAGMA user_version``), so either part can change without the other. WAL, a busy timeout, ``BEGIN IMMEDIATE``
for writes and ``secure_delete`` as in the collection store: an erased image's pages are overwritten with zeros,
and the WAL is checkpointed and truncated after an erasure.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator

from ..db.sqlite import checkpoint_now, connect, transaction
from ..errors import InvalidParameterException
from .sql import SqlReviewStore

#: one entry per schema version; append, never edit a released one
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE facecompare_review_cases (
        case_id TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        source TEXT NOT NULL,
        model TEXT NOT NULL,
        engine_decision TEXT NOT NULL,
        similarity REAL,
        distance REAL,
        threshold REAL NOT NULL,
        band_low REAL NOT NULL,
        band_high REAL NOT NULL,
        reasons TEXT NOT NULL,
        evidence TEXT NOT NULL,
        batch TEXT,
        reference TEXT,
        status TEXT NOT NULL,
        reviewed_by TEXT,
        reviewed_at REAL,
        comment TEXT,
        images_erased_at REAL,
        version INTEGER NOT NULL
    );
    CREATE INDEX facecompare_review_cases_queue ON facecompare_review_cases (status, created_at, case_id);
    CREATE INDEX facecompare_review_cases_age ON facecompare_review_cases (created_at) WHERE images_erased_at IS NULL;
    CREATE TABLE facecompare_review_images (
        case_id TEXT NOT NULL REFERENCES facecompare_review_cases (case_id),
        role TEXT NOT NULL,
        media_type TEXT NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (case_id, role)
    );
    CREATE TABLE facecompare_review_audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        case_id TEXT,
        previous_state TEXT,
        new_state TEXT,
        comment TEXT
    );
    CREATE INDEX facecompare_review_audit_case ON facecompare_review_audit (case_id, seq);
    CREATE TRIGGER facecompare_review_audit_no_update BEFORE UPDATE ON facecompare_review_audit
    BEGIN SELECT RAISE(ABORT, 'the review audit log is append-only'); END;
    CREATE TRIGGER facecompare_review_audit_no_delete BEFORE DELETE ON facecompare_review_audit
    BEGIN SELECT RAISE(ABORT, 'the review audit log is append-only'); END;
    CREATE TABLE facecompare_reviewers (
        username TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        created_at REAL NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE facecompare_review_sessions (
        token_hash TEXT PRIMARY KEY,
        username TEXT NOT NULL REFERENCES facecompare_reviewers (username),
        csrf_token TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_seen REAL NOT NULL
    );
    """,
    # 2: the sign-in lockout counts a name's recent failures in the audit log
    """
    CREATE INDEX facecompare_review_audit_actor ON facecompare_review_audit (actor, action, seq);
    """,
    # 3: sign-in attempts counted before the password is checked, per name, client and both (digests as keys)
    """
    CREATE TABLE facecompare_review_sign_in_attempts (
        attempt_key TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        window_start REAL NOT NULL
    );
    """,
)


def _statements(script: str) -> Iterator[str]:
    """The statements of a migration, a line at a time until SQLite calls one complete (a trigger's body, with its
    own semicolons, stays whole)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        raise ValueError(f"an incomplete statement in a migration: {pending.strip()[:60]}")


class SqliteReviewStore(SqlReviewStore):
    def __init__(self, url: str) -> None:
        self.url = url
        self.path, self._db = connect(url)
        self._lock = threading.RLock()
        self._migrate()

    def _migrate(self) -> None:
        with self._tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS facecompare_review_schema (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM facecompare_review_schema").fetchone()
            version = row[0] if row else 0
            if row is None:
                db.execute("INSERT INTO facecompare_review_schema (version) VALUES (0)")
            if version > len(MIGRATIONS):
                raise InvalidParameterException(
                    f"The review tables in {self.path} have schema version {version}, newer than this release knows "
                    f"({len(MIGRATIONS)}); upgrade facecompare.")
            for number in range(version, len(MIGRATIONS)):
                for statement in _statements(MIGRATIONS[number]):
                    db.execute(statement)
                db.execute("UPDATE facecompare_review_schema SET version = ?", (number + 1,))

    def _tx(self, write: bool = True):
        return transaction(self._db, self._lock, write)

    def _is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)

    def _after_erase(self) -> None:
        with self._lock:
            checkpoint_now(self._db)  # without waiting for readers (a reader elsewhere postpones it)

    def close(self) -> None:
        with self._lock:
            self._db.close()
