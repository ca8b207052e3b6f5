"""The collection store's contract (collections/store.py), run against every engine: SQLite in a temporary file
and PostgreSQL on a throwaway cluster (conftest's ``postgres_cluster``). Then what only PostgreSQL has: its
schema versioning, several processes on one database, and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from facecompare.collections.store import CollectionStore, StoredFace
from facecompare.errors import (
    InternalServerError,
    InvalidParameterException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
)

DIM = 128
SRC = str(Path(__file__).resolve().parents[1] / "src")


@dataclass
class Engine:
    name: str
    open: Callable[..., CollectionStore]  # another store on the same database (a replica); forget=True: a store
    # whose deletion log forgets at once
    erased: Callable[[str, str, bytes], bool]  # (collection id, face id, embedding bytes): no trace left, read afresh
    url: str


def _postgres_engine(url: str) -> Engine:
    from facecompare.collections.postgres import PostgresStore

    def open_store(forget: bool = False) -> CollectionStore:
        return PostgresStore(url, deletion_log_seconds=0.0) if forget else PostgresStore(url)

    def erased(collection_id: str, face_id: str, embedding: bytes) -> bool:
        import psycopg

        with psycopg.connect(url) as conn:  # a fresh connection: nothing cached by a store
            faces = conn.execute("SELECT count(*) FROM facecompare_faces WHERE face_id = %s OR embedding = %s",
                                 (face_id, embedding)).fetchone()[0]
            collections = conn.execute("SELECT count(*) FROM facecompare_collections WHERE collection_id = %s",
                                       (collection_id,)).fetchone()[0]
            log = conn.execute("SELECT count(*) FROM facecompare_face_deletions WHERE collection_id = %s",
                               (collection_id,)).fetchone()[0]
        return faces == 0 and (collections == 1 or log == 0)  # a deleted collection leaves no deletion log

    return Engine("postgres", open_store, erased, url)


def _sqlite_engine(path: Path, monkeypatch) -> Engine:
    from facecompare.collections import sqlite

    url = f"sqlite:///{path}"

    def open_store(forget: bool = False) -> CollectionStore:
        if forget:  # the SQLite engine keeps the last DELETION_LOG_ENTRIES deletions of the database
            monkeypatch.setattr(sqlite, "DELETION_LOG_ENTRIES", 0)
        return sqlite.SqliteStore(url)

    def erased(collection_id: str, face_id: str, embedding: bytes) -> bool:
        import sqlite3

        conn = sqlite3.connect(path)  # a fresh connection: nothing cached by a store
        try:
            rows = conn.execute("SELECT count(*) FROM faces WHERE face_id = ?", (face_id,)).fetchone()[0]
        finally:
            conn.close()
        # and the bytes: secure_delete zeroes them in the file, the checkpoint empties the WAL
        files = [p for p in (path, path.with_name(path.name + "-wal")) if p.exists()]
        return rows == 0 and not any(embedding in p.read_bytes() for p in files)

    return Engine("sqlite", open_store, erased, url)


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request, tmp_path) -> Engine:
    if request.param == "postgres":
        return _postgres_engine(request.getfixturevalue("postgres_url"))
    return _sqlite_engine(tmp_path / "collections.db", request.getfixturevalue("monkeypatch"))


@pytest.fixture
def store(engine):
    opened = engine.open()
    yield opened
    opened.close()


@pytest.fixture
def postgres_store(postgres_url):
    from facecompare.collections.postgres import PostgresStore

    opened = PostgresStore(postgres_url)
    yield opened
    opened.close()


def make_face(rng: np.random.Generator, *, external: str | None = None, image_id: str | None = None,
              dim: int = DIM) -> StoredFace:
    return StoredFace(face_id=str(uuid.uuid4()), image_id=image_id or str(uuid.uuid4()), external_image_id=external,
                      bounding_box=tuple(float(v) for v in rng.uniform(0, 1, 4)), confidence=float(rng.uniform(90, 100)),
                      embedding=rng.standard_normal(dim).astype(np.float32),
                      image_sha256=rng.bytes(32).hex(), indexed_at=time.time() + float(rng.uniform(0, 1)))


def same_face(a: StoredFace, b: StoredFace) -> bool:
    """Equal in every field, the embedding bit for bit."""
    return (a == b and a.embedding.dtype == np.float32 and b.embedding.dtype == np.float32
            and a.embedding.tobytes() == b.embedding.tobytes())


def new_collection(store: CollectionStore, collection_id: str = "kyc", **kw):
    return store.create_collection(collection_id, kw.pop("model", "sface"), kw.pop("metric", "cosine"),
                                   kw.pop("dimension", DIM), **kw)


# collections -------------------------------------------------------------------------------------------------


def test_create_and_describe_round_trip(store):
    before = time.time()
    created = store.create_collection("kyc-eu", "sface", "cosine", DIM, tags={"team": "onboarding", "é": "ü"})
    described = store.describe_collection("kyc-eu")
    assert created == described
    assert (described.collection_id, described.model, described.metric, described.dimension) == \
        ("kyc-eu", "sface", "cosine", DIM)
    assert described.tags == {"team": "onboarding", "é": "ü"} and described.face_count == 0
    assert before - 1 <= described.created_at <= time.time() + 1
    assert described.generation
    other = store.create_collection("dlib-set", "dlib", "euclidean", 128)
    assert other.tags == {} and other.metric == "euclidean" and other.generation != described.generation


def test_duplicate_collection_is_refused_and_the_first_stays(store):
    first = new_collection(store, "dup", tags={"a": "1"})
    with pytest.raises(ResourceAlreadyExistsException) as err:
        store.create_collection("dup", "dlib", "euclidean", 64)
    assert "'dup'" in err.value.message
    assert store.describe_collection("dup") == first


def test_unknown_collection_is_resource_not_found_everywhere(store):
    rng = np.random.default_rng(1)
    calls = [lambda: store.describe_collection("nope"), lambda: store.delete_collection("nope"),
             lambda: store.add_faces("nope", [make_face(rng)]), lambda: store.get_faces("nope", ["x"]),
             lambda: store.list_faces("nope"), lambda: store.delete_faces("nope", ["x"]),
             lambda: store.changes_since("nope", None, 0), lambda: store.all_embeddings("nope")]
    for call in calls:
        with pytest.raises(ResourceNotFoundException):
            call()
    assert store.list_collections() == []


def test_list_collections_orders_by_id_and_pages_with_after_and_limit(store):
    ids = ["b", "a", "A", "a.b", "a_b", "a-b", "Z9", "0", "zz"]
    for collection_id in ids:
        new_collection(store, collection_id)
    listed = [c.collection_id for c in store.list_collections()]
    assert listed == sorted(ids)  # code point order, as Python sorts (upper case before lower case)
    pages, after = [], None
    while True:
        page = store.list_collections(after=after, limit=2)
        if not page:
            break
        assert len(page) <= 2
        pages.append([c.collection_id for c in page])
        after = page[-1].collection_id
    assert [i for page in pages for i in page] == sorted(ids) and len(pages) == 5
    assert [c.collection_id for c in store.list_collections(after="a", limit=3)] == sorted(ids)[4:7]
    assert store.list_collections(after="zz") == []


def test_face_count_in_describe_and_list(store):
    rng = np.random.default_rng(2)
    new_collection(store, "one")
    new_collection(store, "two")
    faces = [make_face(rng) for _ in range(5)]
    store.add_faces("one", faces)
    store.add_faces("two", faces[:2])
    store.delete_faces("one", [faces[0].face_id, "not-a-face"])
    assert store.describe_collection("one").face_count == 4
    assert {c.collection_id: c.face_count for c in store.list_collections()} == {"one": 4, "two": 2}


# faces ---------------------------------------------------------------------------------------------------------


def test_add_faces_round_trip_is_exact(store):
    rng = np.random.default_rng(3)
    new_collection(store)
    faces = [make_face(rng, external="selfie-1.jpg"), make_face(rng), make_face(rng, external="ID «card» 2")]
    # values that a lossy encoding would change: signed zero, a subnormal, the extremes of float32
    special = np.array([-0.0, 1e-45, np.finfo(np.float32).max, np.finfo(np.float32).min], dtype=np.float32)
    faces[1] = replace(faces[1], embedding=np.concatenate([special, faces[1].embedding[4:]]))
    stored = store.add_faces("kyc", faces)
    assert all(same_face(a, b) for a, b in zip(stored, faces))
    got = store.get_faces("kyc", [f.face_id for f in faces] + [str(uuid.uuid4())])
    assert [f.face_id for f in got] == sorted(f.face_id for f in faces)
    by_id = {f.face_id: f for f in faces}
    for face in got:
        assert same_face(face, by_id[face.face_id])
        assert face.embedding.shape == (DIM,)
    assert np.signbit(store.get_faces("kyc", [faces[1].face_id])[0].embedding[0])
    assert store.describe_collection("kyc").face_count == 3


def test_add_faces_is_idempotent_by_face_id(store):
    rng = np.random.default_rng(4)
    new_collection(store)
    face = make_face(rng, external="first")
    store.add_faces("kyc", [face])
    generation, seq, _, _ = store.all_embeddings("kyc")
    retry = replace(face, external_image_id="second", embedding=rng.standard_normal(DIM).astype(np.float32))
    other = make_face(rng)
    answer = store.add_faces("kyc", [retry, other, retry])
    assert same_face(answer[0], face) and same_face(answer[2], face)  # the stored row, not the retry
    assert same_face(answer[1], other)
    assert store.describe_collection("kyc").face_count == 2
    assert same_face(store.get_faces("kyc", [face.face_id])[0], face)
    changes = store.changes_since("kyc", generation, seq)
    assert [f.face_id for f in changes.added] == [other.face_id] and changes.deleted == []


def test_the_same_face_id_in_two_collections_is_two_faces(store):
    rng = np.random.default_rng(5)
    new_collection(store, "one")
    new_collection(store, "two")
    face = make_face(rng)
    store.add_faces("one", [face])
    store.add_faces("two", [face])
    store.delete_faces("one", [face.face_id])
    assert store.get_faces("one", [face.face_id]) == []
    assert same_face(store.get_faces("two", [face.face_id])[0], face)


def test_concurrent_adds_of_the_same_faces_from_threads_store_each_once(engine, store):
    rng = np.random.default_rng(6)
    new_collection(store)
    faces = [make_face(rng) for _ in range(20)]
    replicas = [engine.open() for _ in range(2)]
    stores = [store, *replicas]
    barrier = threading.Barrier(6)
    answers: list[list[StoredFace]] = []
    errors: list[BaseException] = []

    def add(i: int) -> None:
        # each thread sends the same face ids with its own image ids: whichever commits first is stored
        mine = [replace(f, image_id=f"thread-{i}") for f in faces]
        barrier.wait()
        try:
            answers.append(stores[i % 3].add_faces("kyc", mine))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for replica in replicas:
        replica.close()
    assert not errors
    stored = {f.face_id: f for f in store.list_faces("kyc")}
    assert len(stored) == 20 and store.describe_collection("kyc").face_count == 20
    for answer in answers:  # every caller got the stored rows back
        assert [f.image_id for f in answer] == [stored[f.face_id].image_id for f in faces]


_ADD_IN_A_PROCESS = """
import json, sys, time
from pathlib import Path
import numpy as np
from facecompare.collections.store import StoredFace, open_store
url, go, faces = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
store = open_store(url)
faces = [StoredFace(f["face_id"], f["image_id"], None, tuple(f["box"]), 99.0, np.array(f["embedding"], np.float32),
                    "00" * 32, 1.0) for f in faces]
deadline = time.time() + 60
while not go.exists() and time.time() < deadline:
    time.sleep(0.005)
print(json.dumps([f.image_id for f in store.add_faces("kyc", faces)]))
store.close()
"""


def test_concurrent_adds_of_the_same_faces_from_two_processes_store_each_once(engine, store, tmp_path):
    new_collection(store)
    rng = np.random.default_rng(7)
    face_ids = [str(uuid.uuid4()) for _ in range(30)]
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))}
    processes = []
    for name in ("p1", "p2"):
        faces = [{"face_id": f, "image_id": name, "box": [0.1, 0.2, 0.3, 0.4],
                  "embedding": rng.standard_normal(DIM).tolist()} for f in face_ids]
        processes.append(subprocess.Popen([sys.executable, "-c", _ADD_IN_A_PROCESS, engine.url, str(go),
                                           json.dumps(faces)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True, env=env))
    time.sleep(1.5)  # both processes import and connect, then wait for the signal
    go.touch()
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [err[-2000:] for _, err in outputs]
    answers = [json.loads(out) for out, _ in outputs]
    stored = {f.face_id: f.image_id for f in store.list_faces("kyc")}
    assert sorted(stored) == sorted(face_ids) and store.describe_collection("kyc").face_count == 30
    for answer in answers:  # both processes were told the same, stored, rows
        assert answer == [stored[f] for f in face_ids]


def test_list_faces_pages_by_face_id(store):
    rng = np.random.default_rng(8)
    new_collection(store)
    faces = [make_face(rng) for _ in range(7)]
    store.add_faces("kyc", faces)
    expected = sorted(f.face_id for f in faces)
    assert [f.face_id for f in store.list_faces("kyc")] == expected
    seen, after = [], None
    while page := store.list_faces("kyc", after=after, limit=3):
        assert len(page) <= 3
        seen += [f.face_id for f in page]
        after = page[-1].face_id
    assert seen == expected
    assert [f.face_id for f in store.list_faces("kyc", after=expected[4], limit=10)] == expected[5:]
    listed = {f.face_id: f for f in store.list_faces("kyc")}
    assert all(same_face(listed[f.face_id], f) for f in faces)


def test_delete_faces_returns_what_existed_and_erases_it(store):
    rng = np.random.default_rng(9)
    new_collection(store)
    faces = [make_face(rng) for _ in range(4)]
    store.add_faces("kyc", faces)
    gone = store.delete_faces("kyc", [faces[0].face_id, "no-such-face", faces[2].face_id, faces[0].face_id])
    assert sorted(gone) == sorted([faces[0].face_id, faces[2].face_id])
    assert store.delete_faces("kyc", [faces[0].face_id]) == []
    assert store.delete_faces("kyc", []) == []
    assert [f.face_id for f in store.get_faces("kyc", [f.face_id for f in faces])] == \
        sorted([faces[1].face_id, faces[3].face_id])
    assert store.describe_collection("kyc").face_count == 2


def test_delete_collection_removes_its_faces_and_a_new_one_starts_empty(store):
    rng = np.random.default_rng(10)
    old = new_collection(store)
    faces = [make_face(rng) for _ in range(3)]
    store.add_faces("kyc", faces)
    store.delete_collection("kyc")
    with pytest.raises(ResourceNotFoundException):
        store.describe_collection("kyc")
    again = new_collection(store, model="dlib", metric="euclidean")
    assert again.generation != old.generation and again.face_count == 0 and again.model == "dlib"
    assert store.list_faces("kyc") == [] and store.get_faces("kyc", [f.face_id for f in faces]) == []
    generation, seq, ids, matrix = store.all_embeddings("kyc")
    assert generation == again.generation and ids == [] and matrix.shape == (0, DIM)


def test_deleted_faces_and_collections_are_erased_for_real(engine, store):
    rng = np.random.default_rng(11)
    new_collection(store, "a")
    new_collection(store, "b")
    face_a, face_b = make_face(rng), make_face(rng)
    store.add_faces("a", [face_a])
    store.add_faces("b", [face_b])
    assert not engine.erased("a", face_a.face_id, face_a.embedding.tobytes())  # the check can see a row
    store.delete_faces("a", [face_a.face_id])
    assert engine.erased("a", face_a.face_id, face_a.embedding.tobytes())
    store.delete_collection("b")
    assert engine.erased("b", face_b.face_id, face_b.embedding.tobytes())


# replicas: changes_since and all_embeddings ----------------------------------------------------------------------


def test_changes_since_reports_adds_and_deletes_in_order(store):
    rng = np.random.default_rng(12)
    new_collection(store)
    generation, seq0, ids, _ = store.all_embeddings("kyc")
    assert ids == []
    empty = store.changes_since("kyc", generation, seq0)
    assert empty.added == [] and empty.deleted == [] and empty.seq == seq0 and empty.generation == generation
    faces = [make_face(rng) for _ in range(3)]
    store.add_faces("kyc", faces[:2])
    first = store.changes_since("kyc", generation, seq0)
    assert first.seq > seq0 and first.deleted == []
    assert sorted(f.face_id for f in first.added) == sorted(f.face_id for f in faces[:2])
    assert all(same_face(f, {x.face_id: x for x in faces}[f.face_id]) for f in first.added)
    store.delete_faces("kyc", [faces[0].face_id])
    store.add_faces("kyc", [faces[2]])
    second = store.changes_since("kyc", generation, first.seq)
    assert second.seq > first.seq
    assert [f.face_id for f in second.added] == [faces[2].face_id] and second.deleted == [faces[0].face_id]
    # from the start: a face added and then deleted is reported deleted, not added
    whole = store.changes_since("kyc", generation, seq0)
    assert sorted(f.face_id for f in whole.added) == sorted([faces[1].face_id, faces[2].face_id])
    assert whole.deleted == [faces[0].face_id] and whole.seq == second.seq
    assert store.changes_since("kyc", generation, second.seq).added == []
    assert store.all_embeddings("kyc")[1] == second.seq


def test_changes_since_says_rebuild_for_another_generation(store):
    rng = np.random.default_rng(13)
    new_collection(store)
    store.add_faces("kyc", [make_face(rng)])
    generation, seq, _, _ = store.all_embeddings("kyc")
    assert store.changes_since("kyc", None, 0) is None
    assert store.changes_since("kyc", "another-generation", seq) is None
    store.delete_collection("kyc")
    new_collection(store)
    assert store.changes_since("kyc", generation, seq) is None
    assert store.changes_since("kyc", generation, 0) is None


def test_changes_since_says_rebuild_when_the_deletion_log_no_longer_reaches_back(engine):
    rng = np.random.default_rng(14)
    store = engine.open(forget=True)
    try:
        new_collection(store)
        faces = [make_face(rng) for _ in range(3)]
        store.add_faces("kyc", faces)
        generation, seq, _, _ = store.all_embeddings("kyc")
        store.delete_faces("kyc", [faces[0].face_id])
        time.sleep(0.05)
        store.delete_faces("kyc", [faces[1].face_id])  # the log has forgotten the first deletion by now
        assert store.changes_since("kyc", generation, seq) is None
        generation, seq, ids, _ = store.all_embeddings("kyc")  # a rebuild is up to date again
        assert ids == [faces[2].face_id]
        assert store.changes_since("kyc", generation, seq).deleted == []
    finally:
        store.close()


def test_all_embeddings_rows_match_their_ids(store):
    rng = np.random.default_rng(15)
    new_collection(store)
    faces = [make_face(rng) for _ in range(50)]
    store.add_faces("kyc", faces)
    store.delete_faces("kyc", [f.face_id for f in faces[::7]])
    generation, seq, ids, matrix = store.all_embeddings("kyc")
    kept = {f.face_id: f for i, f in enumerate(faces) if i % 7}
    assert ids == sorted(kept) and matrix.dtype == np.float32 and matrix.shape == (len(kept), DIM)
    for face_id, row in zip(ids, matrix):
        assert row.tobytes() == kept[face_id].embedding.tobytes()
    assert generation == store.describe_collection("kyc").generation


def test_a_snapshot_and_the_changes_after_it_add_up_while_others_write(engine, store):
    """An index built from all_embeddings and kept in step with changes_since ends with exactly the stored
    faces, however the writes of two other replicas interleave with each other and with its reads."""
    rng = np.random.default_rng(16)
    new_collection(store)
    writer_stores = [engine.open(), engine.open()]
    stop = threading.Event()
    errors: list[BaseException] = []

    def write(writer: CollectionStore, seed: int) -> None:
        try:
            local = np.random.default_rng(seed)
            alive: list[str] = []
            while not stop.is_set():
                batch = [make_face(local) for _ in range(3)]
                writer.add_faces("kyc", batch)
                alive += [f.face_id for f in batch]
                if len(alive) > 6:
                    writer.delete_faces("kyc", [alive.pop(0), alive.pop(3)])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w, 17 + i)) for i, w in enumerate(writer_stores)]
    for thread in threads:
        thread.start()
    try:
        store.add_faces("kyc", [make_face(rng) for _ in range(5)])
        checks = 0
        deadline = time.time() + 4
        while time.time() < deadline:
            generation, seq, ids, matrix = store.all_embeddings("kyc")
            assert len(ids) == matrix.shape[0]
            index = dict(zip(ids, (row.tobytes() for row in matrix)))
            for _ in range(5):
                changes = store.changes_since("kyc", generation, seq)
                assert changes is not None and changes.seq >= seq
                for face in changes.added:
                    index[face.face_id] = face.embedding.tobytes()
                for face_id in changes.deleted:
                    index.pop(face_id, None)
                seq = changes.seq
                time.sleep(0.01)
            checks += 1
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        for writer in writer_stores:
            writer.close()
    assert not errors
    final = store.changes_since("kyc", generation, seq)
    for face in final.added:
        index[face.face_id] = face.embedding.tobytes()
    for face_id in final.deleted:
        index.pop(face_id, None)
    truth = {f.face_id: f.embedding.tobytes() for f in store.list_faces("kyc", limit=100_000)}
    assert checks >= 2 and len(truth) > 5
    assert index == truth


def test_two_stores_on_one_database_see_each_others_writes(engine, store):
    rng = np.random.default_rng(18)
    replica = engine.open()
    try:
        new_collection(store)
        assert [c.collection_id for c in replica.list_collections()] == ["kyc"]
        generation, seq, _, _ = replica.all_embeddings("kyc")
        face = make_face(rng)
        store.add_faces("kyc", [face])
        assert same_face(replica.get_faces("kyc", [face.face_id])[0], face)
        changes = replica.changes_since("kyc", generation, seq)
        assert [f.face_id for f in changes.added] == [face.face_id]
        assert replica.delete_faces("kyc", [face.face_id]) == [face.face_id]
        assert store.get_faces("kyc", [face.face_id]) == []
        assert store.changes_since("kyc", generation, changes.seq).deleted == [face.face_id]
        replica.delete_collection("kyc")
        with pytest.raises(ResourceNotFoundException):
            store.describe_collection("kyc")
        new_collection(replica, "again")
        with pytest.raises(ResourceAlreadyExistsException):
            new_collection(store, "again")
    finally:
        replica.close()


# PostgreSQL only -------------------------------------------------------------------------------------------------


def test_postgres_schema_is_versioned_and_migrated_once(postgres_url, postgres_store):
    import psycopg

    from facecompare.collections.postgres import MIGRATIONS, PostgresStore

    assert postgres_store.schema_version() == len(MIGRATIONS)
    new_collection(postgres_store)
    # more stores opened at once on a migrated database (as replicas starting together) change nothing
    opened: list[PostgresStore] = []
    threads = [threading.Thread(target=lambda: opened.append(PostgresStore(postgres_url))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(opened) == 3
    assert all(s.describe_collection("kyc").face_count == 0 for s in opened)
    for s in opened:
        s.close()
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT version FROM facecompare_schema_version").fetchall() == [(len(MIGRATIONS),)]
        conn.execute("UPDATE facecompare_schema_version SET version = version + 1")
    with pytest.raises(InternalServerError, match="newer than this facecompare knows"):
        PostgresStore(postgres_url)


def test_postgres_a_role_without_create_can_use_a_migrated_database(postgres_url, postgres_store):
    """After the first store created the tables, replicas may connect as a role that can only read and write
    rows (the README's advice)."""
    import psycopg

    from facecompare.collections.postgres import PostgresStore

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE ROLE replica LOGIN")
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO replica")
        conn.execute("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO replica")
    user = postgres_url.split("//", 1)[1].split("@", 1)[0]
    limited = PostgresStore(postgres_url.replace(f"//{user}@", "//replica@", 1))
    try:
        new_collection(limited)
        face = make_face(np.random.default_rng(20))
        limited.add_faces("kyc", [face])
        assert limited.delete_faces("kyc", [face.face_id]) == [face.face_id]
        limited.delete_collection("kyc")
        with psycopg.connect(postgres_url.replace(f"//{user}@", "//replica@", 1)) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("CREATE TABLE t (x int)")
    finally:
        limited.close()


def test_postgres_first_open_from_several_processes_at_once(postgres_cluster, tmp_path):
    url = postgres_cluster.new_database()
    go = tmp_path / "go"
    script = ("import sys, time\nfrom pathlib import Path\nfrom facecompare.collections.postgres import PostgresStore\n"
              "while not Path(sys.argv[2]).exists(): time.sleep(0.005)\n"
              "s = PostgresStore(sys.argv[1]); print(s.schema_version()); s.close()\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))}
    processes = [subprocess.Popen([sys.executable, "-c", script, url, str(go)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env) for _ in range(3)]
    time.sleep(1.0)
    go.touch()
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], [err[-1500:] for _, err in outputs]
    from facecompare.collections.postgres import MIGRATIONS

    assert [out.strip() for out, _ in outputs] == [str(len(MIGRATIONS))] * 3


def test_postgres_refuses_an_embedding_of_the_wrong_dimension(postgres_store):
    new_collection(postgres_store)
    face = make_face(np.random.default_rng(19), dim=DIM + 1)
    with pytest.raises(InvalidParameterException, match="128-d"):
        postgres_store.add_faces("kyc", [face])
    assert postgres_store.describe_collection("kyc").face_count == 0


def test_postgres_open_store_picks_it_and_hides_the_password(postgres_url, postgres_cluster, caplog):
    from facecompare.collections import open_store
    from facecompare.collections.postgres import PostgresStore, redact_url

    opened = open_store(postgres_url.replace("postgresql:", "postgres:", 1))
    try:
        assert isinstance(opened, PostgresStore)
    finally:
        opened.close()
    assert redact_url("postgresql://kyc:s3cret@db.internal:5432/faces") == "postgresql://kyc:***@db.internal:5432/faces"
    # a server that is not there: a typed error that tells the client nothing about where the database is; the
    # operator's log says where, without the password
    missing = f"postgresql://{postgres_cluster.user}:s3cret@/nodb?host={postgres_cluster.root}&port=1"
    with caplog.at_level("WARNING", logger="facecompare.collections"):
        with pytest.raises(InternalServerError) as err:
            PostgresStore(missing, connect_timeout=2)
    assert err.value.message == "Internal server error: no connection to the collection database in time."
    logged = [r.getMessage() for r in caplog.records if r.name == "facecompare.collections"]
    assert logged and all("s3cret" not in line for line in logged)
    assert any(f"{postgres_cluster.user}:***@" in line and "nodb" in line for line in logged)


def test_postgres_methods_fail_typed_after_close(postgres_store):
    new_collection(postgres_store)
    postgres_store.close()
    with pytest.raises(InternalServerError, match="closed"):
        postgres_store.describe_collection("kyc")


def test_postgres_deletion_log_is_dropped_by_the_next_write_after_its_retention(postgres_url):
    import psycopg

    from facecompare.collections.postgres import PostgresStore

    store = PostgresStore(postgres_url, deletion_log_seconds=0.0)
    try:
        rng = np.random.default_rng(21)
        new_collection(store)
        faces = [make_face(rng) for _ in range(2)]
        store.add_faces("kyc", faces)
        generation, seq, _, _ = store.all_embeddings("kyc")
        store.delete_faces("kyc", [faces[0].face_id])
        with psycopg.connect(postgres_url) as conn:
            assert conn.execute("SELECT face_id FROM facecompare_face_deletions").fetchall() == [(faces[0].face_id,)]
        time.sleep(0.05)
        store.add_faces("kyc", [make_face(rng)])  # a write, not a deletion, drops the expired entry too
        with psycopg.connect(postgres_url) as conn:
            assert conn.execute("SELECT count(*) FROM facecompare_face_deletions").fetchone()[0] == 0
        assert store.changes_since("kyc", generation, seq) is None
    finally:
        store.close()


def test_postgres_snapshot_reads_are_repeatable_read_and_do_not_leak(postgres_store):
    def show(cur):
        cur.execute("SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')")
        return cur.fetchone()

    assert postgres_store._run(show, snapshot=True) == ("repeatable read", "on")
    assert postgres_store._run(show) == ("read committed", "off")  # the pooled connection was reset
    new_collection(postgres_store)  # and writes still work on it


def test_postgres_a_database_error_is_typed_and_logged_without_its_text(postgres_url, postgres_store, caplog):
    import psycopg

    new_collection(postgres_store, "secret-customer-list")
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # someone drops a table under the service
        conn.execute("DROP TABLE facecompare_face_deletions")
    with caplog.at_level("WARNING", logger="facecompare.collections"):
        with pytest.raises(InternalServerError) as err:
            postgres_store.delete_faces("secret-customer-list", ["f"])
    assert err.value.message == "Internal server error: the collection database failed."
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "facecompare.collections")
    assert "UndefinedTable" in logged and "42P01" in logged and "secret-customer-list" not in logged


def test_postgres_all_connections_busy_is_a_typed_error_in_time(postgres_url, caplog):
    from facecompare.collections.postgres import PostgresStore

    store = PostgresStore(postgres_url, max_connections=1, connect_timeout=1)
    try:
        new_collection(store)
        with store._pool.connection():  # the only connection, held elsewhere
            with caplog.at_level("WARNING", logger="facecompare.collections"):
                with pytest.raises(InternalServerError) as err:
                    store.describe_collection("kyc")
        assert err.value.message == "Internal server error: no connection to the collection database in time."
        assert any("all 1 connections busy" in r.getMessage() for r in caplog.records)
        assert store.describe_collection("kyc").face_count == 0  # and it recovers
    finally:
        store.close()


def test_postgres_a_write_draws_its_sequence_number_only_after_the_collection_lock(postgres_url, postgres_store):
    """What makes replicas' changes_since complete: a writer that waits for another's lock on the collection
    draws its numbers after that writer committed, so numbers commit in increasing order. Shown with a writer
    by hand that holds the lock and draws a number while the store's add_faces waits."""
    import psycopg

    new_collection(postgres_store)
    face = make_face(np.random.default_rng(22))
    with psycopg.connect(postgres_url) as other:
        other.execute("SELECT 1 FROM facecompare_collections WHERE collection_id = 'kyc' FOR NO KEY UPDATE")
        done: list[object] = []
        thread = threading.Thread(target=lambda: done.append(postgres_store.add_faces("kyc", [face])))
        thread.start()
        with psycopg.connect(postgres_url, autocommit=True) as watcher:  # until add_faces waits for a lock
            for _ in range(600):
                if watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND "
                                   "datname = current_database()").fetchone()[0]:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("add_faces never waited for the collection's lock")
        drawn = other.execute("SELECT nextval('facecompare_change_seq')").fetchone()[0]
        other.execute("UPDATE facecompare_collections SET last_seq = %s WHERE collection_id = 'kyc'", (drawn,))
        other.commit()
        thread.join(30)
    assert done
    with psycopg.connect(postgres_url) as conn:
        (seq,) = conn.execute("SELECT seq FROM facecompare_faces WHERE face_id = %s", (face.face_id,)).fetchone()
        (last,) = conn.execute("SELECT last_seq FROM facecompare_collections").fetchone()
    assert seq > drawn and last == seq


def test_postgres_a_database_restart_fails_typed_then_recovers(postgres_cluster):
    """The database goes away under a store (a crash, a failover): calls fail with InternalServerError within
    the connection timeout, not a hang; once it is back, the same store works again without a restart."""
    from conftest import PostgresCluster
    from facecompare.collections.postgres import PostgresStore

    cluster = PostgresCluster(postgres_cluster.bindir)  # its own server, to stop and start
    try:
        store = PostgresStore(cluster.new_database(), connect_timeout=2)
        try:
            new_collection(store)
            store.add_faces("kyc", [make_face(np.random.default_rng(23))])
            cluster.stop(remove=False, mode="fast")  # a restart that keeps the data (the others lose commits)
            with pytest.raises(InternalServerError):
                store.describe_collection("kyc")
            cluster.start()
            for _ in range(20):  # the pool replaces its broken connections
                try:
                    info = store.describe_collection("kyc")
                    break
                except InternalServerError:
                    time.sleep(0.5)
            else:
                pytest.fail("the store did not recover after the database came back")
            assert info.face_count == 1
            assert store.changes_since("kyc", info.generation, 0) is not None
        finally:
            store.close()
    finally:
        cluster.stop()


def test_postgresql_url_without_the_driver_is_a_typed_error(tmp_path):
    """Without the postgres extra, a postgresql:// URL is an error that names the extra, not an ImportError."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['psycopg'] = None\n"  # as if the extra were not installed
            "from facecompare.collections import open_store\n"
            "from facecompare.errors import ModelNotAvailableError\n"
            "try:\n    open_store('postgresql://nobody@/none?host=/nonexistent')\n"
            "except ModelNotAvailableError as exc:\n    print(exc.code, exc.message)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("InternalServerError ") and "facecompare[postgres]" in out.stdout
