"""SQLite as the stores use it: the file of a ``sqlite:///path`` URL, a connection with the stores' pragmas (WAL,
a busy timeout, ``secure_delete``, foreign keys), transactions, a checkpoint that never waits, and IN lists cut
to SQLite's limit. Used by the collection store and the review store, which share one file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import InvalidParameterException, quote_input
from .url import redact_url

#: milliseconds a statement waits for another connection's lock before failing
BUSY_TIMEOUT_MS = 30_000
#: ids per IN (...) query (SQLite's default limit on host parameters is 32766; stay far below)
CHUNK = 500


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


@contextmanager
def snapshot(db: sqlite3.Connection, lock) -> Iterator[sqlite3.Connection]:
    """A read transaction under ``lock``: every query in it sees one snapshot of the file (ended by COMMIT, which
    for a read changes nothing, whether the block ends or raises)."""
    with lock:
        db.execute("BEGIN")
        try:
            yield db
        finally:
            db.execute("COMMIT")


def chunks(items: list[str], size: int = CHUNK) -> Iterator[list[str]]:
    """``items`` in lists of at most ``size``, one per IN (...) query."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
