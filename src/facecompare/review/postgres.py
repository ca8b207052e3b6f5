"""The review store on PostgreSQL, in the collections' database (``FACECOMPARE_COLLECTIONS=postgresql://...``).

Tables ``facecompare_review_*`` beside the collections' (in the connection's ``search_path``), with their own
schema version (``facecompare_review_schema_version``), migrated under an advisory lock when a store opens. The
audit log is append-only in the database: a trigger refuses UPDATE, DELETE and TRUNCATE on it. Erased images are
DELETEd; reclaiming their space in the data files is PostgreSQL's (autovacuum, or ``VACUUM``).
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager

from ..db.postgres import open_pool
from ..db.url import redact_url
from ..errors import InternalServerError
from .sql import SqlReviewStore

try:  # the `postgres` extra
    import psycopg
    from psycopg_pool import PoolTimeout
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("the PostgreSQL review store needs psycopg 3 and psycopg_pool: "
                      "pip install 'facecompare[postgres]'") from exc

log = logging.getLogger("facecompare.review")

SCHEMA_LOCK_KEY = 0x66637276  # pg_advisory_xact_lock key held while migrating ("fcrv")

MIGRATIONS: list[tuple[str, ...]] = [
    (
        """
        CREATE TABLE facecompare_review_cases (
            case_id          text COLLATE "C" PRIMARY KEY,
            created_at       double precision NOT NULL,
            source           text NOT NULL,
            model            text NOT NULL,
            engine_decision  text NOT NULL,
            similarity       double precision,
            distance         double precision,
            threshold        double precision NOT NULL,
            band_low         double precision NOT NULL,
            band_high        double precision NOT NULL,
            reasons          text NOT NULL,
            evidence         text NOT NULL,
            batch            text,
            reference        text,
            status           text NOT NULL,
            reviewed_by      text,
            reviewed_at      double precision,
            comment          text,
            images_erased_at double precision,
            version          integer NOT NULL
        )""",
        "CREATE INDEX facecompare_review_cases_queue ON facecompare_review_cases (status, created_at, case_id)",
        "CREATE INDEX facecompare_review_cases_age ON facecompare_review_cases (created_at) "
        "WHERE images_erased_at IS NULL",
        """
        CREATE TABLE facecompare_review_images (
            case_id    text COLLATE "C" NOT NULL REFERENCES facecompare_review_cases (case_id),
            role       text NOT NULL,
            media_type text NOT NULL,
            data       bytea NOT NULL,
            PRIMARY KEY (case_id, role)
        )""",
        """
        CREATE TABLE facecompare_review_audit (
            seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at             double precision NOT NULL,
            actor          text NOT NULL,
            action         text NOT NULL,
            case_id        text COLLATE "C",
            previous_state text,
            new_state      text,
            comment        text
        )""",
        "CREATE INDEX facecompare_review_audit_case ON facecompare_review_audit (case_id, seq)",
        """
        CREATE FUNCTION facecompare_review_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the review audit log is append-only';
        END
        $$""",
        "CREATE TRIGGER facecompare_review_audit_no_change BEFORE UPDATE OR DELETE ON facecompare_review_audit "
        "FOR EACH ROW EXECUTE FUNCTION facecompare_review_audit_append_only()",
        "CREATE TRIGGER facecompare_review_audit_no_truncate BEFORE TRUNCATE ON facecompare_review_audit "
        "FOR EACH STATEMENT EXECUTE FUNCTION facecompare_review_audit_append_only()",
        """
        CREATE TABLE facecompare_reviewers (
            username      text COLLATE "C" PRIMARY KEY,
            password_hash text NOT NULL,
            created_at    double precision NOT NULL,
            disabled      integer NOT NULL DEFAULT 0
        )""",
        """
        CREATE TABLE facecompare_review_sessions (
            token_hash text PRIMARY KEY,
            username   text COLLATE "C" NOT NULL REFERENCES facecompare_reviewers (username),
            csrf_token text NOT NULL,
            created_at double precision NOT NULL,
            last_seen  double precision NOT NULL
        )""",
    ),
    # 2: the sign-in lockout counts a name's recent failures in the audit log
    ("CREATE INDEX facecompare_review_audit_actor ON facecompare_review_audit (actor, action, seq)",),
    # 3: sign-in attempts counted before the password is checked, per name, client and both (digests as keys)
    ("CREATE TABLE facecompare_review_sign_in_attempts (attempt_key text COLLATE \"C\" PRIMARY KEY, "
     "failures integer NOT NULL, window_start double precision NOT NULL)",),
]


class _Cursor:
    """A cursor that takes ``?`` placeholders (the shared SQL's) and passes ``%s`` to psycopg."""

    def __init__(self, cursor) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params=()):
        self._cursor.execute(sql.replace("?", "%s"), tuple(params))
        return self._cursor


class PostgresReviewStore(SqlReviewStore):
    def __init__(self, url: str, *, max_connections: int = 4, connect_timeout: float = 15.0) -> None:
        self.url = redact_url(url)
        self._timeout = connect_timeout
        self._closed = threading.Event()
        self._pool = open_pool(url, "facecompare-review", max_connections, connect_timeout, self._unreachable)
        try:
            self._migrate()
        except BaseException:
            self._pool.close()
            raise

    def _migrate(self) -> None:
        with self._tx() as db:
            db.execute(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})")
            db.execute("CREATE TABLE IF NOT EXISTS facecompare_review_schema_version (version integer NOT NULL)")
            row = db.execute("SELECT version FROM facecompare_review_schema_version").fetchone()
            if row is None:
                db.execute("INSERT INTO facecompare_review_schema_version (version) VALUES (0)")
            version = row[0] if row else 0
            if version > len(MIGRATIONS):
                raise InternalServerError(f"The review tables have schema version {version}, newer than this release "
                                          f"knows ({len(MIGRATIONS)}); upgrade facecompare.")
            for number in range(version, len(MIGRATIONS)):
                for statement in MIGRATIONS[number]:
                    db._cursor.execute(statement)  # DDL as written ($$ bodies hold no placeholders)
                db.execute("UPDATE facecompare_review_schema_version SET version = ?", (number + 1,))

    @contextmanager
    def _tx(self, write: bool = True):
        if self._closed.is_set():
            raise InternalServerError("The review store is closed.")
        try:
            with self._pool.connection(timeout=self._timeout) as conn:
                conn.read_only = None if write else True
                with conn.transaction(), conn.cursor() as cur:
                    yield _Cursor(cur)
        except PoolTimeout as exc:
            raise self._unreachable(exc) from exc
        except psycopg.errors.UniqueViolation:
            raise
        except psycopg.Error as exc:
            log.warning("review database error %s (SQLSTATE %s) on %s", type(exc).__name__, exc.sqlstate, self.url)
            raise InternalServerError("Internal server error: the review database failed.") from exc

    def _is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.errors.UniqueViolation)

    def _unreachable(self, exc: BaseException) -> InternalServerError:
        log.warning("no connection to the review database %s in %.0f s (%s)", self.url, self._timeout,
                    type(exc).__name__)
        return InternalServerError("Internal server error: no connection to the review database in time.")

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._pool.close()
