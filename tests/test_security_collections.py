"""Collections under abuse (issue 22): pagination tokens are signed with a random secret kept in the store (not
derivable from the store's often guessable URL, shared by every replica whatever URL it uses), and a deleted face
leaves this process's in-memory index at once."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import time
import uuid

import numpy as np
import pytest

from facecompare.collections.service import Collections
from facecompare.collections.sqlite import MIGRATIONS
from facecompare.collections.store import StoredFace, open_store
from facecompare.errors import InvalidPaginationTokenException

DIM = 128


def faces(n: int, seed: int = 0) -> list[StoredFace]:
    rng = np.random.default_rng(seed)
    return [StoredFace(face_id=str(uuid.uuid4()), image_id=str(uuid.uuid4()), external_image_id=None,
                       bounding_box=(0.2, 0.3, 0.1, 0.1), confidence=99.0,
                       embedding=rng.standard_normal(DIM).astype(np.float32), image_sha256=rng.bytes(32).hex(),
                       indexed_at=time.time()) for _ in range(n)]


def url_derived_token(url: str, scope: str, position: str) -> str:
    """A token made the way the old code keyed its MAC: from the store's URL alone (anyone who guesses it can)."""
    key = hashlib.sha256(b"facecompare-pagination\0" + url.encode()).digest()
    mac = hmac.new(key, f"f\0{scope}\0{position}".encode(), hashlib.sha256).hexdigest()[:16]
    return f"v1:f:{mac}:{position}"


def two_replicas(verifier, first_url: str, second_url: str):
    a = Collections(verifier, open_store(first_url))
    b = Collections(verifier, open_store(second_url))
    a.store.create_collection("kyc", verifier.recognizer.name, "cosine", DIM)
    a.store.add_faces("kyc", faces(5))
    return a, b


def check_tokens(a: Collections, b: Collections) -> None:
    page, token = a.list_faces("kyc", max_results=2)
    assert len(page) == 2 and token
    # a replica reaching the same database by another URL accepts the token and goes on from it
    rest, _ = b.list_faces("kyc", next_token=token, max_results=10)
    assert [f.face_id for f in rest] == sorted(f.face_id for f in a.store.list_faces("kyc"))[2:]
    # a token keyed by the URL (which is often guessable: sqlite:///faces.db) is a forgery
    info = a.store.describe_collection("kyc")
    for url in (a.store.url, b.store.url):
        forged = url_derived_token(url, "kyc\0" + info.generation, page[0].face_id)
        with pytest.raises(InvalidPaginationTokenException):
            a.list_faces("kyc", next_token=forged)
    assert len(a.store.pagination_key()) == 32 and a.store.pagination_key() == b.store.pagination_key()


def test_sqlite_tokens_use_the_stores_random_secret(verifier, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, b = two_replicas(verifier, "sqlite:///faces.db", f"sqlite:///{tmp_path / 'faces.db'}")
    try:
        check_tokens(a, b)
        other = open_store(f"sqlite:///{tmp_path / 'other.db'}")  # another database has another secret
        assert other.pagination_key() != a.store.pagination_key()
        other.close()
    finally:
        a.store.close()
        b.store.close()


def test_postgres_tokens_use_the_stores_random_secret(verifier, postgres_url):
    a, b = two_replicas(verifier, postgres_url, postgres_url + ("&" if "?" in postgres_url else "?")
                        + "application_name=replica-b")
    try:
        check_tokens(a, b)
    finally:
        a.store.delete_collection("kyc")
        a.store.close()
        b.store.close()


def test_an_existing_sqlite_store_gets_a_secret_when_opened(tmp_path):
    path = tmp_path / "old.db"
    store = open_store(f"sqlite:///{path}")
    store.close()
    secret = next(k for k, m in enumerate(MIGRATIONS) if "CREATE TABLE secrets" in m)
    with sqlite3.connect(path) as db:  # the file as the release before the secret made it: the migrations before it
        db.execute("DROP TABLE secrets")
        db.execute("DROP TABLE seen_signatures")  # (made by a later migration)
        db.execute(f"PRAGMA user_version = {secret}")
    store = open_store(f"sqlite:///{path}")
    key = store.pagination_key()
    store.close()
    again = open_store(f"sqlite:///{path}")
    assert len(key) == 32 and again.pagination_key() == key  # made once, kept
    again.close()


def test_a_deleted_face_leaves_the_in_memory_index_at_once(verifier, tmp_path):
    service = Collections(verifier, open_store(f"sqlite:///{tmp_path / 'c.db'}"))
    try:
        service.store.create_collection("kyc", verifier.recognizer.name, "cosine", DIM)
        stored = service.store.add_faces("kyc", faces(4))
        victim, other = stored[0].face_id, stored[1].face_id
        assert service.search_faces("kyc", other, threshold=0)  # builds this process's index
        index = service._indexes["kyc"].index
        assert victim in index and len(index) == 4
        deleted, _ = service.delete_faces("kyc", [victim])
        assert deleted == [victim]
        index = service._indexes["kyc"].index
        assert victim not in index and len(index) == 3  # gone from memory now, not at the next search or sweep
        # a face deleted through another process leaves at this process's next call, as before
        replica = open_store(f"sqlite:///{tmp_path / 'c.db'}")
        replica.delete_faces("kyc", [other])
        replica.close()
        assert [m.face.face_id for m in service.search_faces("kyc", stored[2].face_id, threshold=0)] == \
            [stored[3].face_id]
    finally:
        service.store.close()
