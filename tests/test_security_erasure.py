"""A data subject's erasure before retention ends (issue 22): ``facecompare review erase --reference R`` deletes
the images of every case of that reference now, audited, and their bytes are gone from the SQLite file."""

from __future__ import annotations

import sqlite3

from facecompare.cli import main
from facecompare.review.service import ReviewQueue
from facecompare.review.store import open_review_store


def review_result() -> dict:
    return {"decision": "REVIEW", "similarity": 60.0, "distance": 0.5, "threshold": 60.0,
            "review_band": [50.0, 70.0], "reasons": ["SIMILARITY_IN_REVIEW_BAND"]}


def test_review_erase_deletes_one_references_images_now_and_audits_it(tmp_path, fixtures, capsys):
    path = tmp_path / "store.db"
    url = f"sqlite:///{path}"
    queue = ReviewQueue(open_review_store(url), 30)
    selfie, document = (fixtures / "obama.jpg").read_bytes(), (fixtures / "biden.jpg").read_bytes()
    other, other_document = ((fixtures / name).read_bytes() for name in ("Serena_Williams_0001.jpg",
                                                                         "Colin_Powell_0001.jpg"))
    mine = [queue.queue(review_result(), "sface", selfie, document, source="api", reference="cust-1")[0],
            queue.queue(review_result(), "sface", document, selfie, source="api", reference="cust-1")[0]]
    theirs, _ = queue.queue(review_result(), "sface", other, other_document, source="api",
                            reference="cust-2")
    # another process has the file open (idle, no transaction): the erasure must not wait for its last connection to
    # close to reach the file (SQLite checkpoints a WAL by itself only then)
    queue.store.close()
    keeper = sqlite3.connect(path)
    keeper.execute("SELECT count(*) FROM facecompare_review_cases").fetchone()

    assert main(["review", "erase", "--store", url, "--reference", "cust-1"]) == 0
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("store.db"))
    assert selfie[1000:1400] not in on_disk
    assert document[1000:1400] not in on_disk
    keeper.close()
    assert "2 cases of that reference; erased the images of 2 now" in capsys.readouterr().out
    queue = ReviewQueue(open_review_store(url), 30)
    try:
        for case in mine:
            assert queue.store.get_image(case.case_id, "selfie") is None
            assert queue.store.get_image(case.case_id, "document") is None
            assert queue.store.get_case(case.case_id).images_erased_at is not None  # the record stays
        assert queue.store.get_image(theirs.case_id, "selfie").data == other  # another person's case is untouched
        erasures = [(e.actor, e.case_id, e.comment) for e in queue.store.audit_log() if e.action == "IMAGES_ERASED"]
        assert sorted(erasures) == sorted(("system:cli", c.case_id, "erasure request (facecompare review erase)")
                                          for c in mine)
    finally:
        queue.store.close()
    # the bytes are gone from the file and its WAL (secure_delete, truncating checkpoint); the other case's stay
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("store.db"))
    assert selfie[1000:1400] not in on_disk
    assert document[1000:1400] not in on_disk
    assert other[1000:1400] in on_disk
    # again: nothing left to erase, said so
    assert main(["review", "erase", "--store", url, "--reference", "cust-1"]) == 0
    assert "erased the images of 0 now (2 were erased already)" in capsys.readouterr().out
    assert main(["review", "erase", "--store", url, "--reference", "nobody"]) == 0
    assert "0 cases of that reference" in capsys.readouterr().out
