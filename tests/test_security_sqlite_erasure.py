"""Erasure on SQLite with a reader open (issue 22): another process holding a read transaction on the file (a second
replica, the CLI, a backup) must not stall DeleteFaces behind SQLite's 30 s busy timeout (and every request on the
store with it), and the deleted embedding's bytes must leave the file and its WAL once no reader holds them."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid

import numpy as np

from facecompare.collections.store import StoredFace, open_store


def face(rng) -> StoredFace:
    return StoredFace(face_id=str(uuid.uuid4()), image_id=str(uuid.uuid4()), external_image_id=None,
                      bounding_box=(0.2, 0.3, 0.1, 0.1), confidence=99.0,
                      embedding=rng.standard_normal(128).astype(np.float32), image_sha256=rng.bytes(32).hex(),
                      indexed_at=time.time())


def on_disk(path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name))


def test_a_deletion_does_not_wait_for_a_reader_and_its_bytes_go_when_the_reader_does(tmp_path):
    path = tmp_path / "faces.db"
    store = open_store(f"sqlite:///{path}")
    try:
        store.create_collection("kyc", "sface", "cosine", 128)
        victim, *others = store.add_faces("kyc", [face(np.random.default_rng(seed)) for seed in range(3)])
        store.checkpoint()
        secret = victim.embedding.tobytes()
        assert secret in on_disk(path)

        reader = sqlite3.connect(path)  # another process's read transaction, held open
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM faces").fetchone() == (3,)
        result = []
        worker = threading.Thread(target=lambda: result.append(store.delete_faces("kyc", [victim.face_id])))
        worker.start()
        worker.join(10)  # far below the 30 s busy timeout it used to wait for
        stalled = worker.is_alive()
        worker.join()
        assert not stalled, "DeleteFaces waited for the reader"
        assert result == [[victim.face_id]]
        assert [f.face_id for f in store.list_faces("kyc")] == sorted(f.face_id for f in others)  # others go on
        assert store.checkpoint() is False  # the reader still holds the old snapshot: it cannot complete yet

        reader.rollback()
        reader.close()
        store.changes_since("kyc", None, 0)  # the next search (or listing) completes the postponed checkpoint
        assert secret not in on_disk(path)  # gone from the file and its WAL
        assert all(f.embedding.tobytes() in on_disk(path) for f in others)
    finally:
        store.close()
