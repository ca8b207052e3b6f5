"""The database plumbing both stores share (facecompare.db): the URL dispatch, SQLite's connection and
transactions, and that the package and the SQLite stores work without the postgres extra."""

import sqlite3
import subprocess
import sys
import threading

import pytest

from facecompare.db import DEFAULT_URL, POSTGRES, SQLITE, engine_of
from facecompare.db.sqlite import BUSY_TIMEOUT_MS, CHUNK, checkpoint_now, chunks, connect, snapshot, transaction
from facecompare.errors import InvalidParameterException

SECRET = "hunter2-not-a-real-password"


def test_engine_of_picks_the_engine_and_defaults_to_the_sqlite_file():
    assert engine_of(None) == (SQLITE, DEFAULT_URL)
    assert engine_of("") == (SQLITE, DEFAULT_URL)
    assert engine_of(" sqlite:///x/faces.db\n") == (SQLITE, "sqlite:///x/faces.db")
    assert engine_of("postgresql://db/faces") == (POSTGRES, "postgresql://db/faces")
    assert engine_of("postgres://db/faces") == (POSTGRES, "postgres://db/faces")
    for bad in (f"mysql://kyc:{SECRET}@db/faces", f"postgresq://kyc:{SECRET}@db", "faces.db"):
        with pytest.raises(InvalidParameterException) as err:
            engine_of(bad)
        assert SECRET not in err.value.message and "FACECOMPARE_COLLECTIONS" in err.value.message


def test_connect_sets_the_stores_pragmas(tmp_path, monkeypatch):
    real_connect = sqlite3.connect

    def connect_with_secure_delete_off(*args, **kwargs):  # a build whose default is off (Debian's is on)
        connection = real_connect(*args, **kwargs)
        connection.execute("PRAGMA secure_delete = OFF")
        return connection

    monkeypatch.setattr(sqlite3, "connect", connect_with_secure_delete_off)
    path, db = connect(f"sqlite:///{tmp_path}/sub/dir/faces.db")
    try:
        assert path == tmp_path / "sub/dir/faces.db" and path.exists()  # the folder is made
        assert db.isolation_level is None  # transactions are explicit
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA secure_delete").fetchone()[0] == 1
        assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_MS == 30_000
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        # the connection is usable from another thread (the stores use it under their own lock)
        seen = []
        worker = threading.Thread(target=lambda: seen.append(db.execute("SELECT 1").fetchone()[0]))
        worker.start()
        worker.join()
        assert seen == [1]
        assert checkpoint_now(db) is True  # nobody reads: the checkpoint completes
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_MS  # restored after it
    finally:
        db.close()


def test_a_write_transaction_takes_the_lock_at_once_and_rolls_back_on_error(tmp_path):
    url = f"sqlite:///{tmp_path}/t.db"
    _, db = connect(url)
    other = sqlite3.connect(tmp_path / "t.db", timeout=0, isolation_level=None)
    lock = threading.RLock()
    try:
        db.execute("CREATE TABLE t (x INTEGER)")
        with transaction(db, lock, write=True):
            # BEGIN IMMEDIATE: another connection cannot start writing until this one commits
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        with transaction(db, lock, write=False):
            other.execute("BEGIN IMMEDIATE")  # a read transaction leaves the write lock free
            other.execute("ROLLBACK")
        with pytest.raises(RuntimeError), transaction(db, lock, write=True) as tx:
            tx.execute("INSERT INTO t VALUES (1)")
            raise RuntimeError("the block fails")
        assert not db.in_transaction and db.execute("SELECT count(*) FROM t").fetchone()[0] == 0
        with transaction(db, lock, write=True) as tx:
            tx.execute("INSERT INTO t VALUES (2)")
        assert other.execute("SELECT x FROM t").fetchall() == [(2,)]  # committed
        with snapshot(db, lock) as tx:
            assert db.in_transaction and tx.execute("SELECT x FROM t").fetchall() == [(2,)]
        assert not db.in_transaction
    finally:
        other.close()
        db.close()


def test_chunks_cut_in_lists_lists_of_at_most_the_limit():
    assert list(chunks([])) == []
    ids = [str(i) for i in range(2 * CHUNK + 1)]
    parts = list(chunks(ids))
    assert [len(p) for p in parts] == [CHUNK, CHUNK, 1] and sum(parts, []) == ids
    assert list(chunks(["a", "b", "c"], 2)) == [["a", "b"], ["c"]]


def test_the_sqlite_stores_work_without_the_postgres_extra(tmp_path):
    """Without psycopg and psycopg_pool: facecompare.db (its PostgreSQL module included) imports, the collection
    and review stores open on one SQLite file, and a postgresql:// URL is a typed error naming the extra for
    either store."""
    code = (
        "import sys\n"
        "sys.modules['psycopg'] = None; sys.modules['psycopg_pool'] = None  # as if the extra were not installed\n"
        "import facecompare.db, facecompare.db.postgres\n"
        "from facecompare.collections import open_store\n"
        "from facecompare.review import open_review_store\n"
        "from facecompare.errors import ModelNotAvailableError\n"
        f"url = 'sqlite:///{tmp_path}/both.db'\n"
        "store, reviews = open_store(url), open_review_store(url)\n"
        "store.create_collection('kyc', 'm', 'cosine', 4)\n"
        "print(store.describe_collection('kyc').collection_id, reviews.count_cases(__import__("
        "'facecompare.review.store', fromlist=['CaseFilter']).CaseFilter()))\n"
        "store.close(); reviews.close()\n"
        "for opener in (open_store, open_review_store):\n"
        "    try:\n        opener('postgresql://nobody@/none?host=/nonexistent')\n"
        "    except ModelNotAvailableError as exc:\n        print(exc.code, exc.message)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "kyc 0"
    assert lines[1].startswith("InternalServerError Collections on PostgreSQL need psycopg 3 and psycopg_pool")
    assert lines[2].startswith("InternalServerError Review cases on PostgreSQL need psycopg 3 and psycopg_pool")
    assert all("facecompare[postgres]" in line for line in lines[1:]) and len(lines) == 3
