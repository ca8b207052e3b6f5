"""The SQLite collection store and the exact search index, on their own (no models): the store's contract
(store.py), keeping an index in step through changes_since, erasure in the file's bytes, several connections
and threads on one file; the exact index against a brute-force reference."""

from __future__ import annotations

import sqlite3
import threading
import uuid

import numpy as np
import pytest

from facecompare.collections import sqlite as sqlite_module
from facecompare.collections.index import ExactIndex
from facecompare.collections.sqlite import MIGRATIONS, SqliteStore
from facecompare.collections.store import StoredFace, open_store
from facecompare.errors import InvalidParameterException, ResourceAlreadyExistsException, ResourceNotFoundException

DIM = 16


def _faces(n: int, rng: np.random.Generator, image: str = "img") -> list[StoredFace]:
    return [StoredFace(face_id=str(uuid.UUID(int=int(rng.integers(1 << 62)) << 64 | i)), image_id=str(uuid.uuid4()),
                       external_image_id=image, bounding_box=(0.1, 0.2, 0.3, 0.4), confidence=99.5,
                       embedding=rng.normal(size=DIM).astype(np.float32), image_sha256="ab" * 32, indexed_at=1.0)
            for i in range(n)]


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite:///{tmp_path}/faces.db")
    yield s
    s.close()


def test_url_forms_and_schema_version(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///sub/dir/rel.db")
    assert isinstance(relative, SqliteStore) and (tmp_path / "sub/dir/rel.db").exists()
    relative.close()
    absolute = SqliteStore(f"sqlite:///{tmp_path}/abs.db")  # sqlite:////tmp/... : four slashes, absolute
    absolute.close()
    with sqlite3.connect(tmp_path / "abs.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for bad in ("sqlite://relative.db", "sqlite:///:memory:", "mysql://x"):
        with pytest.raises(InvalidParameterException):
            open_store(bad)


def test_newer_schema_is_refused(tmp_path):
    SqliteStore(f"sqlite:///{tmp_path}/f.db").close()
    with sqlite3.connect(tmp_path / "f.db") as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(InvalidParameterException, match="newer"):
        SqliteStore(f"sqlite:///{tmp_path}/f.db")


def test_collections_lifecycle(store):
    info = store.create_collection("kyc-1", "sface", "cosine", DIM, {"team": "onboarding"})
    assert (info.model, info.metric, info.dimension, info.face_count, info.tags) == ("sface", "cosine", DIM, 0,
                                                                                      {"team": "onboarding"})
    uuid.UUID(info.generation)
    with pytest.raises(ResourceAlreadyExistsException):
        store.create_collection("kyc-1", "sface", "cosine", DIM)
    store.create_collection("a", "sface", "cosine", DIM)
    store.create_collection("b", "dlib", "euclidean", 128)
    assert [c.collection_id for c in store.list_collections()] == ["a", "b", "kyc-1"]
    assert [c.collection_id for c in store.list_collections(after="a", limit=1)] == ["b"]
    assert store.describe_collection("kyc-1").tags == {"team": "onboarding"}
    store.delete_collection("a")
    with pytest.raises(ResourceNotFoundException):
        store.describe_collection("a")
    with pytest.raises(ResourceNotFoundException):
        store.delete_collection("a")
    again = store.create_collection("kyc-1x", "sface", "cosine", DIM)
    assert again.generation != info.generation
    for call in (lambda: store.list_faces("nope"), lambda: store.add_faces("nope", []),
                 lambda: store.changes_since("nope", None, 0), lambda: store.all_embeddings("nope")):
        with pytest.raises(ResourceNotFoundException):
            call()


def test_faces_add_get_list_delete(store):
    rng = np.random.default_rng(1)
    store.create_collection("c", "sface", "cosine", DIM)
    faces = _faces(5, rng)
    stored = store.add_faces("c", faces)
    assert [f.face_id for f in stored] == [f.face_id for f in faces]
    assert store.describe_collection("c").face_count == 5
    # the same face ids again (boto3 retries IndexFaces): nothing new, the stored rows come back
    changed = [StoredFace(f.face_id, f.image_id, "other", f.bounding_box, 1.0, f.embedding + 1) for f in faces[:2]]
    again = store.add_faces("c", changed)
    assert [f.external_image_id for f in again] == ["img", "img"]
    np.testing.assert_array_equal(again[0].embedding, faces[0].embedding)
    assert store.describe_collection("c").face_count == 5
    ids = sorted(f.face_id for f in faces)
    assert [f.face_id for f in store.list_faces("c")] == ids
    assert [f.face_id for f in store.list_faces("c", after=ids[1], limit=2)] == ids[2:4]
    got = store.get_faces("c", [ids[3], "00000000-0000-0000-0000-000000000000", ids[0]])
    assert [f.face_id for f in got] == [ids[0], ids[3]]
    assert got[0].bounding_box == (0.1, 0.2, 0.3, 0.4) and got[0].embedding.dtype == np.float32
    assert store.delete_faces("c", [ids[0], "00000000-0000-0000-0000-000000000000", ids[0]]) == [ids[0]]
    assert store.describe_collection("c").face_count == 4
    with pytest.raises(InvalidParameterException, match="dimensions"):
        store.add_faces("c", [StoredFace("x", "y", None, (0, 0, 0, 0), 1.0, np.zeros(DIM + 1, np.float32))])


def test_changes_since_keeps_an_index_in_step(store):
    rng = np.random.default_rng(2)
    store.create_collection("c", "sface", "cosine", DIM)
    first = _faces(3, rng)
    store.add_faces("c", first)
    generation, seq, ids, matrix = store.all_embeddings("c")
    assert sorted(ids) == sorted(f.face_id for f in first) and matrix.shape == (3, DIM)
    assert store.changes_since("c", generation, seq) == type(store.changes_since("c", generation, seq))(
        generation, seq, [], [])
    more = _faces(2, rng)
    store.add_faces("c", more)
    store.delete_faces("c", [first[0].face_id])
    changes = store.changes_since("c", generation, seq)
    assert sorted(f.face_id for f in changes.added) == sorted(f.face_id for f in more)
    assert changes.deleted == [first[0].face_id] and changes.seq > seq
    assert store.changes_since("c", "another-generation", seq) is None
    # deleted and created again: a new generation, so the old one must rebuild
    store.delete_collection("c")
    store.create_collection("c", "sface", "cosine", DIM)
    assert store.changes_since("c", generation, changes.seq) is None


def test_deletion_log_is_trimmed_and_old_callers_rebuild(store, monkeypatch):
    monkeypatch.setattr(sqlite_module, "DELETION_LOG_ENTRIES", 3)
    rng = np.random.default_rng(3)
    store.create_collection("c", "sface", "cosine", DIM)
    faces = _faces(8, rng)
    store.add_faces("c", faces)
    generation, seq, _, _ = store.all_embeddings("c")
    store.delete_faces("c", [f.face_id for f in faces[:6]])
    assert store.changes_since("c", generation, seq) is None  # the log no longer reaches back
    _, recent, _, _ = store.all_embeddings("c")
    store.delete_faces("c", [faces[6].face_id])
    assert store.changes_since("c", generation, recent).deleted == [faces[6].face_id]
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT count(*) FROM deletions").fetchone()[0] <= 4


def _file_bytes(store: SqliteStore) -> bytes:
    wal = store.path.with_name(store.path.name + "-wal")
    return store.path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_deleted_embeddings_are_erased_from_the_file(store):
    rng = np.random.default_rng(4)
    store.create_collection("c", "sface", "cosine", DIM)
    store.create_collection("d", "sface", "cosine", DIM)
    faces = _faces(4, rng)
    store.add_faces("c", faces[:3])
    store.add_faces("d", faces[3:])
    store.checkpoint()
    blobs = [f.embedding.tobytes() for f in faces]
    content = _file_bytes(store)
    assert all(b in content for b in blobs)  # stored in the file, so the next asserts can fail
    store.delete_faces("c", [faces[0].face_id])
    store.checkpoint()
    content = _file_bytes(store)
    assert blobs[0] not in content and blobs[1] in content
    store.delete_collection("c")
    store.checkpoint()
    content = _file_bytes(store)
    assert blobs[1] not in content and blobs[2] not in content and blobs[3] in content


def test_two_stores_on_one_file_and_many_threads(tmp_path):
    url = f"sqlite:///{tmp_path}/shared.db"
    a, b = SqliteStore(url), SqliteStore(url)
    a.create_collection("c", "sface", "cosine", DIM)
    generation, seq, _, _ = b.all_embeddings("c")
    rng = np.random.default_rng(5)
    batches = [_faces(20, rng, image=f"t{i}") for i in range(6)]
    errors = []

    def work(i):
        try:
            (a if i % 2 else b).add_faces("c", batches[i])
            (b if i % 2 else a).delete_faces("c", [batches[i][0].face_id])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert a.describe_collection("c").face_count == b.describe_collection("c").face_count == 6 * 19
    changes = a.changes_since("c", generation, seq)
    assert len(changes.added) == 6 * 19 and len(changes.deleted) == 6
    a.close()
    b.close()


def _reference(metric: str, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    if metric == "cosine":
        rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        return 1 - rows @ (query / np.linalg.norm(query))
    return np.linalg.norm(rows - query, axis=1)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_exact_index_matches_brute_force(metric):
    rng = np.random.default_rng(6)
    vectors = rng.normal(size=(700, DIM)).astype(np.float32)
    ids = [f"f{i:04d}" for i in range(700)]
    index = ExactIndex(metric, DIM, capacity=4)  # grows by doubling
    index.add(ids[:400], vectors[:400])
    index.add(ids[400:], vectors[400:])
    removed = set(ids[:300:3])
    index.remove([*removed, "unknown"])
    assert len(index) == 700 - len(removed)
    kept = [i for i, face_id in enumerate(ids) if face_id not in removed]
    for q in (vectors[5], rng.normal(size=DIM).astype(np.float32)):
        d = _reference(metric, vectors[kept], q)
        order = np.argsort(d)[:10]
        hits = index.search(q, 10)
        assert [h[0] for h in hits] == [ids[kept[i]] for i in order]
        np.testing.assert_allclose([h[1] for h in hits], d[order], atol=1e-4)
        cut = float(d[order[4]] + d[order[5]]) / 2  # between the 5th and 6th, clear of rounding
        assert [h[0] for h in index.search(q, 10, max_distance=cut)] == [ids[kept[i]] for i in order[:5]]
    # the searched row left out; a row replaced in place
    assert ids[5] not in [h[0] for h in index.search(vectors[5], 700, exclude=ids[5])]
    assert len(index.search(vectors[5], 700, exclude=ids[5])) == len(index) - 1
    index.add([ids[1]], vectors[5:6])
    assert len(index) == 700 - len(removed) and {h[0] for h in index.search(vectors[5], 2)} == {ids[1], ids[5]}
    assert index.memory_bytes() >= len(index) * DIM * 4
    last = index._ids[-1]
    index.remove([last])  # the last row itself: its vector must not stay in the spare rows
    assert not index._matrix[len(index)].any()
    assert ExactIndex(metric, DIM).search(vectors[0], 5) == []


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_exact_index_loaded_at_once_equals_one_built_row_by_row(metric):
    """A rebuild fills an empty index in one call (rows normalised in place, no second copy): the same rows,
    norms and answers as adding them one at a time, and the index still grows and removes afterwards."""
    rng = np.random.default_rng(8)
    vectors = (rng.normal(size=(300, DIM)) * 3).astype(np.float32)
    ids = [f"f{i:04d}" for i in range(300)]
    bulk = ExactIndex(metric, DIM, capacity=16)
    bulk._load(ids, vectors, chunk=64)  # several chunks
    single = ExactIndex(metric, DIM, capacity=16)
    for face_id, row in zip(ids, vectors):
        single.add([face_id], row[None])
    np.testing.assert_allclose(bulk._matrix[:300], single._matrix[:300], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(bulk._norms[:300], single._norms[:300], rtol=1e-5)
    query = rng.normal(size=DIM).astype(np.float32)
    assert [h[0] for h in bulk.search(query, 20)] == [h[0] for h in single.search(query, 20)]
    roomy = ExactIndex(metric, DIM, capacity=1000)  # more rows allocated than loaded (the service's rebuild)
    roomy.add(ids, vectors)
    assert [h[0] for h in roomy.search(query, 20)] == [h[0] for h in single.search(query, 20)]
    bulk.add(["extra"], vectors[:1] * 2)
    bulk.remove(["f0000"])
    assert len(bulk) == 300 and "extra" in bulk and "f0000" not in bulk
    with pytest.raises(ValueError):
        ExactIndex(metric, DIM).add(["a", "b"], vectors[:3])
