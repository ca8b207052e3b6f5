"""The store's Users and tags (collections/store.py), on every engine (SQLite, PostgreSQL; the fixtures of
test_collection_store): ClientRequestToken replays, association reasons and the 100-faces limit, DeleteFaces
keeping associated faces, erasure of a deleted user and collection, schema version 1 migrated to 2."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from facecompare.errors import (
    ConflictException,
    IdempotentParameterMismatchException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
)
from test_collection_store import DIM, engine, make_face, new_collection, store  # noqa: F401 (fixtures)


def test_create_user_is_idempotent_with_its_token_and_conflicts_without(store):  # noqa: F811
    new_collection(store)
    first = store.create_user("kyc", "customer-1", ("token-1", "digest-a"))
    assert (first.user_id, first.face_count, first.status) == ("customer-1", 0, "CREATED")
    assert store.create_user("kyc", "customer-1", ("token-1", "digest-a")) == first  # a replay
    with pytest.raises(ConflictException):
        store.create_user("kyc", "customer-1", ("token-2", "digest-a"))
    with pytest.raises(ConflictException):
        store.create_user("kyc", "customer-1")
    with pytest.raises(IdempotentParameterMismatchException):
        store.create_user("kyc", "customer-2", ("token-1", "digest-b"))
    assert store.get_user("kyc", "customer-2") is None
    for i in range(2, 6):
        store.create_user("kyc", f"customer-{i}")
    assert store.describe_collection("kyc").user_count == 5
    assert [u.user_id for u in store.list_users("kyc", "customer-2", 2)] == ["customer-3", "customer-4"]
    with pytest.raises(ResourceNotFoundException):
        store.create_user("nope", "customer-1")
    store.delete_user("kyc", "customer-5", ("token-5", "d"))
    store.delete_user("kyc", "customer-5", ("token-5", "d"))  # a replay of a delete that happened
    with pytest.raises(ResourceNotFoundException):
        store.delete_user("kyc", "customer-5")
    store.create_user("kyc", "customer-5")
    store.delete_user("kyc", "customer-5", ("token-5", "d"))  # a late retry does not delete the new user
    assert store.get_user("kyc", "customer-5") is not None
    assert store.describe_collection("kyc").user_count == 5


def test_association_reasons_limit_and_delete_faces(store):  # noqa: F811
    rng = np.random.default_rng(24)
    new_collection(store)
    faces = [make_face(rng) for _ in range(102)]
    store.add_faces("kyc", faces)
    store.create_user("kyc", "a")
    store.create_user("kyc", "b")
    ids = [f.face_id for f in faces]
    change = store.associate_faces("kyc", "a", ids[:100])
    assert change.changed == ids[:100] and change.user.face_count == 100 and change.user.status == "ACTIVE"
    with pytest.raises(ServiceQuotaExceededException):
        store.associate_faces("kyc", "a", [ids[100]])
    assert store.get_user("kyc", "a").face_count == 100 and store.get_faces("kyc", [ids[100]])[0].user_id is None
    again = store.associate_faces("kyc", "a", ids[:2])  # already this user's: associated, nothing added
    assert again.changed == ids[:2] and again.user.face_count == 100
    other = store.associate_faces("kyc", "b", [ids[0], ids[101], "00000000-0000-4000-8000-000000000000"])
    assert other.changed == [ids[101]]
    assert [(r.face_id, r.reason, r.user_id) for r in other.refused] == [
        (ids[0], "ASSOCIATED_TO_A_DIFFERENT_USER", "a"),
        ("00000000-0000-4000-8000-000000000000", "FACE_NOT_FOUND", None)]
    assert sorted(f.face_id for f in store.list_faces("kyc", user_id="b")) == [ids[101]]
    assert [f.user_id for f in store.user_faces("kyc", ["b"])] == ["b"]
    assert store.delete_faces("kyc", [ids[0], ids[100]]) == [ids[100]]  # an associated face stays
    back = store.disassociate_faces("kyc", "b", [ids[101], ids[0], ids[100]])
    assert back.changed == [ids[101]] and back.user.status == "CREATED"
    assert [r.reason for r in back.refused] == ["ASSOCIATED_TO_A_DIFFERENT_USER", "FACE_NOT_FOUND"]
    assert store.delete_faces("kyc", [ids[101]]) == [ids[101]]
    with pytest.raises(ResourceNotFoundException):
        store.associate_faces("kyc", "nobody", [ids[1]])


def test_delete_user_keeps_its_faces_and_the_tags_have_a_limit(store):  # noqa: F811
    rng = np.random.default_rng(5)
    new_collection(store, tags={"team": "kyc"})
    face = make_face(rng)
    store.add_faces("kyc", [face])
    store.create_user("kyc", "a")
    store.associate_faces("kyc", "a", [face.face_id])
    store.delete_user("kyc", "a")
    (kept,) = store.get_faces("kyc", [face.face_id])
    assert kept.user_id is None and kept.embedding.tobytes() == face.embedding.tobytes()
    assert store.update_tags("kyc", {"a": "1", "team": "risk"}, ["absent"]) == {"a": "1", "team": "risk"}
    assert store.update_tags("kyc", {}, ["a"]) == {"team": "risk"}
    with pytest.raises(ServiceQuotaExceededException):
        store.update_tags("kyc", {f"k{i}": "v" for i in range(200)})
    assert store.describe_collection("kyc").tags == {"team": "risk"}


def _traces(engine, user_id: str, embedding: bytes) -> list[str]:  # noqa: F811
    """Where the user id (or an embedding) can still be read: SQLite's file and WAL bytes, PostgreSQL's rows."""
    if engine.name == "sqlite":
        from pathlib import Path

        path = Path(engine.url[len("sqlite:///"):])
        found = []
        for p in (path, path.with_name(path.name + "-wal")):
            content = p.read_bytes() if p.exists() else b""
            found += [f"{p.name}: user id"] if user_id.encode() in content else []
            found += [f"{p.name}: embedding"] if embedding in content else []
        return found
    import psycopg

    with psycopg.connect(engine.url) as conn:
        users = conn.execute("SELECT count(*) FROM facecompare_users WHERE user_id = %s", (user_id,)).fetchone()[0]
        faces = conn.execute("SELECT count(*) FROM facecompare_faces WHERE user_id = %s", (user_id,)).fetchone()[0]
        vectors = conn.execute("SELECT count(*) FROM facecompare_faces WHERE embedding = %s",
                               (embedding,)).fetchone()[0]
    return [name for name, n in (("user row", users), ("face's user", faces), ("embedding", vectors)) if n]


def test_deleted_users_and_collections_leave_no_template(engine, store):  # noqa: F811
    rng = np.random.default_rng(7)
    new_collection(store, "c")
    faces = [make_face(rng) for _ in range(3)]
    store.add_faces("c", faces)
    user = "customer-erased-7f3a"
    store.create_user("c", user, ("tok", "digest"))
    store.associate_faces("c", user, [f.face_id for f in faces[:2]])
    if engine.name == "sqlite":
        store.checkpoint()
    assert _traces(engine, user, faces[0].embedding.tobytes())  # the check sees them while they are there
    store.delete_user("c", user)
    left = _traces(engine, user, faces[0].embedding.tobytes())
    assert [t for t in left if "user" in t] == []  # the user is gone; its faces stay, associated to nobody
    store.create_user("c", user)
    store.associate_faces("c", user, [faces[2].face_id])
    store.delete_collection("c")
    assert _traces(engine, user, faces[2].embedding.tobytes()) == []


def test_a_version_1_database_is_migrated_with_its_faces(engine):  # noqa: F811
    """A database made before Users (schema 1) opens: its faces stay, associated to nobody, and users work."""
    rng = np.random.default_rng(1)
    face = make_face(rng)
    blob = face.embedding.tobytes()
    columns = ("face_id, image_id, external_image_id, box_width, box_height, box_left, box_top, confidence, "
               "embedding, image_sha256, indexed_at, seq")
    if engine.name == "sqlite":
        from facecompare.collections.sqlite import MIGRATIONS

        path = engine.url[len("sqlite:///"):]
        db = sqlite3.connect(path)
        db.executescript(MIGRATIONS[0])
        db.execute("INSERT INTO collections (collection_id, model, metric, dimension, created_at, generation, "
                   "face_count) VALUES ('old', 'sface', 'cosine', ?, 1.0, 'g', 1)", (DIM,))
        db.execute(f"INSERT INTO faces (coll, {columns}) VALUES (1, ?, 'img', NULL, .1, .1, .1, .1, 99, ?, 'ab', 1, 1)",
                   (face.face_id, blob))
        db.execute("PRAGMA user_version = 1")
        db.commit()
        db.close()
    else:
        import psycopg

        from facecompare.collections.postgres import MIGRATIONS

        with psycopg.connect(engine.url) as conn:
            for statement in MIGRATIONS[0]:
                conn.execute(statement)
            conn.execute("CREATE TABLE facecompare_schema_version (version integer NOT NULL)")
            conn.execute("INSERT INTO facecompare_schema_version VALUES (1)")
            conn.execute("INSERT INTO facecompare_collections (collection_id, model, metric, dimension, created_at, "
                         "generation, face_count, last_seq) VALUES ('old', 'sface', 'cosine', %s, 1.0, 'g', 1, 1)",
                         (DIM,))
            conn.execute(f"INSERT INTO facecompare_faces (collection_id, {columns}) VALUES ('old', %s, 'img', NULL, "
                         ".1, .1, .1, .1, 99, %s, 'ab', 1, 1)", (face.face_id, blob))
    opened = engine.open()
    try:
        (kept,) = opened.get_faces("old", [face.face_id])
        assert kept.user_id is None and kept.embedding.tobytes() == blob
        assert opened.describe_collection("old").user_count == 0
        opened.create_user("old", "u")
        assert opened.associate_faces("old", "u", [face.face_id]).changed == [face.face_id]
    finally:
        opened.close()
