"""The review store's contract (review/store.py), run against both engines: SQLite in a temporary file and
PostgreSQL on a throwaway cluster (conftest's ``postgres_cluster``). Cases, queue filters and order, decisions and
their conflicts, retention's erasure (the bytes gone from the files), the audit log append-only in the database,
reviewers and sessions, and one database shared with the collection store."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from facecompare.errors import ResourceAlreadyExistsException, ResourceNotFoundException
from facecompare.review.store import (
    CaseConflict,
    CaseFilter,
    CaseImage,
    ReviewCase,
    ReviewStore,
    Session,
    open_review_store,
)

FIXTURES = Path(__file__).parent / "fixtures"
ALL = CaseFilter(statuses=())


@dataclass
class Engine:
    name: str
    url: str
    raw: Callable[[ReviewStore, str], None]  # run one statement through the store's own connection
    image_gone: Callable[[str, bytes], bool]  # (case id, a marker inside its image): no row, no bytes, read afresh


def _sqlite_engine(path: Path) -> Engine:
    def raw(store: ReviewStore, sql: str) -> None:
        store._db.execute(sql)  # the engine's connection, in autocommit mode

    def image_gone(case_id: str, marker: bytes) -> bool:
        conn = sqlite3.connect(path)  # a fresh connection: nothing cached by a store
        try:
            rows = conn.execute("SELECT count(*) FROM facecompare_review_images WHERE case_id = ?",
                                (case_id,)).fetchone()[0]
        finally:
            conn.close()
        files = [p for p in (path, path.with_name(path.name + "-wal")) if p.exists()]
        return rows == 0 and not any(marker in p.read_bytes() for p in files)

    return Engine("sqlite", f"sqlite:///{path}", raw, image_gone)


def _postgres_engine(url: str) -> Engine:
    import psycopg

    def raw(store: ReviewStore, sql: str) -> None:
        with store._pool.connection() as conn:  # the engine's pool, autocommit as the store uses it
            conn.execute(sql)

    def image_gone(case_id: str, marker: bytes) -> bool:
        with psycopg.connect(url) as conn:  # a fresh connection: nothing cached by a store
            return conn.execute("SELECT count(*) FROM facecompare_review_images WHERE case_id = %s OR "
                                "position(%s in data) > 0", (case_id, marker)).fetchone()[0] == 0

    return Engine("postgres", url, raw, image_gone)


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request, tmp_path) -> Engine:
    if request.param == "postgres":
        return _postgres_engine(request.getfixturevalue("postgres_url"))
    return _sqlite_engine(tmp_path / "collections.db")


@pytest.fixture
def store(engine):
    opened = open_review_store(engine.url)
    yield opened
    opened.close()


def make_case(case_id: str, created_at: float, *, model: str = "sface", reasons=("FACE_TOO_SMALL",),
              batch: str | None = None, distance: float | None = 0.5, status: str = "OPEN") -> ReviewCase:
    return ReviewCase(case_id=case_id, created_at=created_at, source="api", model=model, engine_decision="REVIEW",
                      similarity=None if distance is None else 70.5, distance=distance, threshold=80.0,
                      review_band=(59.54, 91.58), reasons=list(reasons),
                      evidence={"selfie_faces": 1, "document_faces": 2, "notes": ["GHOST_PORTRAIT"],
                                "selfie_face": {"bounding_box": {"left": 0.1, "top": 0.2, "width": 0.3,
                                                                 "height": 0.4}, "confidence": 0.99}},
                      batch=batch, reference=None if batch is None else f"ref-{case_id}", status=status)


def images(marker: bytes = b"") -> list[CaseImage]:
    jpeg = (FIXTURES / "Tony_Blair_0001.jpg").read_bytes()
    return [CaseImage("selfie", "image/jpeg", jpeg + marker), CaseImage("document", "image/png",
                                                                        b"\x89PNG\r\n\x1a\n" + marker * 2)]


def ids(cases) -> list[str]:
    return [case.case_id for case in cases]


# -- cases ----------------------------------------------------------------------------------------------------


def test_add_case_round_trips_every_field(store):
    case = make_case("c1", 1000.25, batch="run-1")
    stored, created = store.add_case(case, images(b"MARK"), "system:api")
    assert (stored, created) == (case, True)
    got = store.get_case("c1")
    assert got == case
    assert got.review_band == (59.54, 91.58) and got.evidence["selfie_face"]["bounding_box"]["top"] == 0.2
    selfie = store.get_image("c1", "selfie")
    assert selfie == CaseImage("selfie", "image/jpeg", (FIXTURES / "Tony_Blair_0001.jpg").read_bytes() + b"MARK")
    assert store.get_image("c1", "document").data == b"\x89PNG\r\n\x1a\nMARKMARK"
    assert store.get_image("c1", "other") is None
    [entry] = store.audit_log("c1")
    assert (entry.actor, entry.action, entry.case_id, entry.previous_state, entry.new_state, entry.comment,
            entry.at) == ("system:api", "CASE_QUEUED", "c1", None, "OPEN", "FACE_TOO_SMALL", 1000.25)


def test_add_case_is_idempotent_by_id(store):
    first = make_case("c1", 1000.0, batch="run-1")
    store.add_case(first, images(b"FIRST"), "system:batch")
    second = replace(first, created_at=2000.0, model="other", reasons=["NO_FACE_IN_SELFIE"], batch="run-2")
    stored, created = store.add_case(second, [CaseImage("selfie", "image/jpeg", b"\xff\xd8\xffSECOND")],
                                     "system:batch")
    assert created is False
    assert stored == first and store.get_case("c1") == first
    assert store.get_image("c1", "selfie").data.endswith(b"FIRST")
    assert store.count_cases(ALL) == 1
    assert [e.action for e in store.audit_log("c1")] == ["CASE_QUEUED"]


def test_get_case_of_an_unknown_id_is_not_found(store):
    store.add_case(make_case("c1", 1.0), [], "system:api")
    with pytest.raises(ResourceNotFoundException, match="c2"):
        store.get_case("c2")


def test_list_cases_oldest_first_ties_by_id_with_offset_and_limit(store):
    for case_id, at in (("d", 300.0), ("b", 100.0), ("c", 200.0), ("a", 200.0), ("e", 50.0), ("Z", 300.0)):
        store.add_case(make_case(case_id, at), [], "system:api")
    # ties by id in byte order on both engines ("Z" before "d")
    assert ids(store.list_cases(CaseFilter())) == ["e", "b", "a", "c", "Z", "d"]
    assert ids(store.list_cases(CaseFilter(), offset=1, limit=2)) == ["b", "a"]
    assert ids(store.list_cases(CaseFilter(), offset=4, limit=10)) == ["Z", "d"]
    assert ids(store.list_cases(CaseFilter(), offset=6)) == []
    assert ids(store.iter_cases(CaseFilter(), page=2)) == ["e", "b", "a", "c", "Z", "d"]
    assert ids(store.iter_cases(CaseFilter(), page=4)) == ["e", "b", "a", "c", "Z", "d"]


@pytest.fixture
def queue_of_cases(store):
    """Cases with different statuses, reasons, batches and ages."""
    store.add_case(make_case("small", 100.0, reasons=["FACE_TOO_SMALL"], batch="b1"), [], "system:api")
    store.add_case(make_case("two", 200.0, reasons=["NO_FACE_IN_DOCUMENT", "FACE_TOO_SMALL"], batch="b2"), [],
                   "system:api")
    store.add_case(make_case("face", 300.0, reasons=["FACE"]), [], "system:api")
    store.add_case(make_case("other", 400.0, reasons=["MULTIPLE_FACES_IN_SELFIE"], batch="b1"), [], "system:api")
    store.add_case(make_case("esc", 500.0, reasons=["FACE_TOO_SMALL"]), [], "system:api")
    store.add_case(make_case("done", 600.0, reasons=["FACE_TOO_SMALL"], batch="b1"), [], "system:api")
    store.decide("esc", "ESCALATE", "ann", "senior please", 1, 700.0)
    store.decide("done", "NO_MATCH", "ann", "different", 1, 700.0)
    return store


@pytest.mark.parametrize("where, expected", [
    (CaseFilter(), ["small", "two", "face", "other"]),
    (CaseFilter(statuses=("ESCALATED",)), ["esc"]),
    (CaseFilter(statuses=("OPEN", "ESCALATED")), ["small", "two", "face", "other", "esc"]),
    (CaseFilter(statuses=("MATCH", "NO_MATCH")), ["done"]),
    (ALL, ["small", "two", "face", "other", "esc", "done"]),
    (CaseFilter(statuses=(), reason="FACE_TOO_SMALL"), ["small", "two", "esc", "done"]),
    (CaseFilter(statuses=(), reason="NO_FACE_IN_DOCUMENT"), ["two"]),
    # a reason is a whole code: no prefix, suffix or wildcard matches another
    (CaseFilter(statuses=(), reason="FACE"), ["face"]),
    (CaseFilter(statuses=(), reason="FACE_TOO"), []),
    (CaseFilter(statuses=(), reason="TOO_SMALL"), []),
    (CaseFilter(statuses=(), reason="FACE_TOO_SMAL_"), []),
    (CaseFilter(statuses=(), reason="FACE%"), []),  # no wildcards
    (CaseFilter(statuses=(), reason='FACE"'), []),
    (CaseFilter(statuses=(), reason="FACE_TOO%SMALL"), []),
    (CaseFilter(statuses=(), reason="MULTIPLE"), []),
    (CaseFilter(statuses=(), reason="face_too_small"), []),  # codes are case-sensitive on both engines
    (CaseFilter(statuses=(), reason="Face"), []),
    (CaseFilter(statuses=(), batch="b1"), ["small", "other", "done"]),
    (CaseFilter(batch="b1"), ["small", "other"]),
    (CaseFilter(statuses=(), batch="b"), []),
    (CaseFilter(statuses=(), created_after=200.0), ["two", "face", "other", "esc", "done"]),  # inclusive
    (CaseFilter(statuses=(), created_before=300.0), ["small", "two"]),  # exclusive
    (CaseFilter(statuses=(), created_after=200.0, created_before=500.0), ["two", "face", "other"]),
    (CaseFilter(statuses=("OPEN",), reason="FACE_TOO_SMALL", batch="b1", created_after=50.0, created_before=150.0),
     ["small"]),
])
def test_list_and_count_cases_filter(queue_of_cases, where, expected):
    assert ids(queue_of_cases.list_cases(where)) == expected
    assert queue_of_cases.count_cases(where) == len(expected)


def test_batches_are_the_distinct_labels(queue_of_cases):
    assert queue_of_cases.batches() == ["b1", "b2"]


def test_neighbours_within_a_queue(store):
    for case_id, at, batch in (("a", 100.0, "x"), ("b", 200.0, "y"), ("c", 200.0, "x"), ("d", 300.0, "x"),
                               ("e", 400.0, "y")):
        store.add_case(make_case(case_id, at, batch=batch), [], "system:api")
    get = store.get_case
    assert store.neighbours(get("a"), CaseFilter()) == (None, "b")
    assert store.neighbours(get("b"), CaseFilter()) == ("a", "c")  # same created_at: by id
    assert store.neighbours(get("c"), CaseFilter()) == ("b", "d")
    assert store.neighbours(get("e"), CaseFilter()) == ("d", None)
    assert store.neighbours(get("c"), CaseFilter(batch="x")) == ("a", "d")
    assert store.neighbours(get("b"), CaseFilter(batch="y")) == (None, "e")
    store.decide("c", "MATCH", "ann", "same", 1, 500.0)
    assert store.neighbours(get("b"), CaseFilter()) == ("a", "d")  # c left the OPEN queue
    assert store.neighbours(get("c"), CaseFilter()) == ("b", "d")  # a decided case still knows its place


# -- decisions ------------------------------------------------------------------------------------------------


def test_decide_records_the_decision_and_audits_the_previous_state(store):
    store.add_case(make_case("c1", 100.0), [], "system:api")
    decided = store.decide("c1", "MATCH", "ann", "same person, older photo", 1, 150.0)
    assert (decided.status, decided.reviewed_by, decided.reviewed_at, decided.comment, decided.version) == (
        "MATCH", "ann", 150.0, "same person, older photo", 2)
    assert store.get_case("c1") == decided
    entry = store.audit_log("c1")[0]
    assert (entry.actor, entry.action, entry.previous_state, entry.new_state, entry.comment, entry.at) == (
        "ann", "MATCH", "OPEN", "MATCH", "same person, older photo", 150.0)


def test_decide_on_an_old_version_is_a_conflict(store):
    store.add_case(make_case("c1", 100.0), [], "system:api")
    store.decide("c1", "ESCALATE", "ann", "not sure", 1, 150.0)
    with pytest.raises(CaseConflict) as raised:
        store.decide("c1", "NO_MATCH", "bob", "different", 1, 160.0)  # bob loaded version 1
    assert raised.value.current.status == "ESCALATED" and raised.value.current.version == 2
    assert store.get_case("c1").status == "ESCALATED"
    assert [e.action for e in store.audit_log("c1")] == ["ESCALATE", "CASE_QUEUED"]


def test_escalate_then_decide_and_then_no_more(store):
    store.add_case(make_case("c1", 100.0), [], "system:api")
    escalated = store.decide("c1", "ESCALATE", "ann", "not sure", 1, 150.0)
    assert (escalated.status, escalated.version) == ("ESCALATED", 2)
    with pytest.raises(CaseConflict, match="already escalated"):
        store.decide("c1", "ESCALATE", "bob", "again", 2, 155.0)
    decided = store.decide("c1", "MATCH", "senior", "same person", 2, 160.0)
    assert (decided.status, decided.reviewed_by, decided.version) == ("MATCH", "senior", 3)
    for action in ("NO_MATCH", "MATCH", "ESCALATE"):
        with pytest.raises(CaseConflict, match="already decided") as raised:
            store.decide("c1", action, "bob", "late", 3, 170.0)
        assert raised.value.current == decided
    entries = store.audit_log("c1")
    assert [(e.action, e.actor, e.previous_state, e.new_state, e.comment) for e in entries] == [
        ("MATCH", "senior", "ESCALATED", "MATCH", "same person"),
        ("ESCALATE", "ann", "OPEN", "ESCALATED", "not sure"),
        ("CASE_QUEUED", "system:api", None, "OPEN", "FACE_TOO_SMALL"),
    ]
    assert store.get_case("c1") == decided


def test_decide_an_unknown_case_is_not_found(store):
    with pytest.raises(ResourceNotFoundException):
        store.decide("nope", "MATCH", "ann", "x", 1, 1.0)
    assert store.audit_log() == []


# -- retention's erasure --------------------------------------------------------------------------------------


def test_erase_images_only_before_the_cutoff_and_keeps_the_case(engine, store):
    markers = {case_id: f"<<unique-image-marker-{case_id}-0123456789abcdef>>".encode() * 4
               for case_id in ("old1", "old2", "new")}
    for case_id, at in (("old2", 200.0), ("old1", 100.0), ("new", 300.0)):
        store.add_case(make_case(case_id, at), images(markers[case_id]), "system:api")
    store.decide("old1", "MATCH", "ann", "same", 1, 150.0)
    assert not any(engine.image_gone(case_id, marker) for case_id, marker in markers.items())
    assert store.erase_images(300.0, "system:retention", 1000.0) == ["old1", "old2"]  # created_at < 300
    for case_id in ("old1", "old2"):
        assert store.get_image(case_id, "selfie") is None and store.get_image(case_id, "document") is None
        assert engine.image_gone(case_id, markers[case_id])
        [entry] = [e for e in store.audit_log(case_id) if e.action == "IMAGES_ERASED"]
        assert (entry.actor, entry.at, entry.case_id) == ("system:retention", 1000.0, case_id)
    old1 = store.get_case("old1")  # the decision record stays
    assert (old1.status, old1.reviewed_by, old1.comment, old1.images_erased_at, old1.version) == (
        "MATCH", "ann", "same", 1000.0, 3)
    assert store.get_case("old2").images_erased_at == 1000.0
    new = store.get_case("new")
    assert new.images_erased_at is None and new.version == 1
    assert store.get_image("new", "selfie").data.endswith(markers["new"])
    assert not engine.image_gone("new", markers["new"])
    assert store.erase_images(300.0, "system:retention", 2000.0) == []  # nothing more to erase
    assert store.erase_images(300.5, "system:retention", 2000.0) == ["new"]
    assert engine.image_gone("new", markers["new"])


def test_an_erased_case_can_still_be_decided(store):
    store.add_case(make_case("c1", 100.0), images(b"x"), "system:api")
    store.erase_images(200.0, "system:retention", 300.0)
    with pytest.raises(CaseConflict):  # erasure raised the version: the reviewer's page is stale
        store.decide("c1", "MATCH", "ann", "same", 1, 400.0)
    assert store.decide("c1", "MATCH", "ann", "same", 2, 400.0).status == "MATCH"


# -- calibration's labels -------------------------------------------------------------------------------------


def test_reviewed_counts_and_distances_per_model(store):
    for case_id, at, model, distance, action in (
            ("a", 1.0, "m1", 0.30, "MATCH"), ("b", 2.0, "m1", 0.90, "NO_MATCH"), ("c", 3.0, "m1", 0.50, "ESCALATE"),
            ("d", 4.0, "m1", 0.60, None), ("e", 5.0, "m2", 0.40, "MATCH"), ("f", 6.0, "m1", None, "NO_MATCH"),
            ("g", 7.0, "m1", 0.35, "MATCH")):
        store.add_case(make_case(case_id, at, model=model, distance=distance), [], "system:api")
        if action:
            store.decide(case_id, action, "ann", "seen", 1, at + 10)
    assert store.reviewed_counts() == {"m1": {"ESCALATED": 1, "MATCH": 2, "NO_MATCH": 2, "OPEN": 1},
                                       "m2": {"MATCH": 1}}
    # a case without a distance (no face) carries no label for calibration
    assert store.reviewed_distances("m1") == ([0.30, 0.90, 0.35], [True, False, True])
    assert store.reviewed_distances("m2") == ([0.40], [True])
    assert store.reviewed_distances("m3") == ([], [])


# -- the audit log --------------------------------------------------------------------------------------------


def _refused(engine: Engine, store: ReviewStore, sql: str) -> str:
    """The error of a raw statement that must fail (its message and its cause's)."""
    with pytest.raises(Exception) as raised:
        engine.raw(store, sql)
    return str(raised.value)


def test_the_audit_log_is_append_only_in_the_database(engine, store):
    store.add_case(make_case("c1", 1.0), [], "system:api")
    store.decide("c1", "MATCH", "ann", "same", 1, 2.0)
    store.append_audit("ann", "SIGN_OUT", 3.0)
    before = store.audit_log()
    assert [e.action for e in before] == ["SIGN_OUT", "MATCH", "CASE_QUEUED"]
    statements = ["UPDATE facecompare_review_audit SET actor = 'mallory'",
                  "UPDATE facecompare_review_audit SET comment = NULL WHERE action = 'MATCH'",
                  "DELETE FROM facecompare_review_audit WHERE action = 'MATCH'",
                  "DELETE FROM facecompare_review_audit"]
    if engine.name == "postgres":
        statements.append("TRUNCATE facecompare_review_audit")
    for sql in statements:
        assert "append-only" in _refused(engine, store, sql), sql
    assert store.audit_log() == before
    engine.raw(store, "UPDATE facecompare_review_cases SET comment = 'edited'")  # the cases are not append-only
    assert store.get_case("c1").comment == "edited"


def test_audit_log_pages_newest_first(store):
    for i in range(5):
        store.append_audit(f"user{i}", "SIGN_IN", float(i))
    entries = store.audit_log()
    assert [e.actor for e in entries] == ["user4", "user3", "user2", "user1", "user0"]
    assert [e.seq for e in entries] == sorted((e.seq for e in entries), reverse=True)
    page = store.audit_log(before_seq=entries[1].seq, limit=2)
    assert [e.actor for e in page] == ["user2", "user1"]
    store.append_audit("ann", "MATCH", 9.0, case_id="c9", previous_state="OPEN", new_state="MATCH", comment="ok")
    [entry] = store.audit_log("c9")
    assert (entry.actor, entry.action, entry.at, entry.previous_state, entry.new_state, entry.comment) == (
        "ann", "MATCH", 9.0, "OPEN", "MATCH", "ok")


# -- reviewers and sessions -----------------------------------------------------------------------------------


def test_reviewers(store):
    assert store.add_reviewer("bob", "$argon2id$hash-b", 10.0).username == "bob"
    store.add_reviewer("ann", "$argon2id$hash-a", 20.0)
    with pytest.raises(ResourceAlreadyExistsException, match="ann"):
        store.add_reviewer("ann", "$argon2id$other", 30.0)
    reviewer, password_hash = store.reviewer("ann")
    assert (reviewer.username, reviewer.created_at, reviewer.disabled, password_hash) == (
        "ann", 20.0, False, "$argon2id$hash-a")  # the duplicate changed nothing
    assert store.reviewer("Ann") is None and store.reviewer("carol") is None
    assert [(r.username, r.disabled) for r in store.list_reviewers()] == [("ann", False), ("bob", False)]
    store.update_reviewer("bob", disabled=True)
    store.update_reviewer("ann", password_hash="$argon2id$new")
    assert store.reviewer("bob")[0].disabled is True and store.reviewer("bob")[1] == "$argon2id$hash-b"
    assert store.reviewer("ann") == (reviewer, "$argon2id$new")
    store.update_reviewer("bob", disabled=False)
    assert store.reviewer("bob")[0].disabled is False
    with pytest.raises(ResourceNotFoundException, match="carol"):
        store.update_reviewer("carol", disabled=True)
    assert [e.new_state for e in store.audit_log() if e.action == "REVIEWER_ADDED"] == ["ann", "bob"]


def test_sessions(store):
    store.add_reviewer("ann", "h", 0.0)
    store.add_reviewer("bob", "h", 0.0)
    sessions = [Session("t1", "ann", "csrf1", 100.0, 100.0), Session("t2", "ann", "csrf2", 200.0, 250.0),
                Session("t3", "bob", "csrf3", 300.0, 300.0), Session("t4", "bob", "csrf4", 50.0, 900.0)]
    for session in sessions:
        store.add_session(session)
    assert store.session("t1") == sessions[0] and store.session("nope") is None
    store.touch_session("t1", 500.0)
    assert store.session("t1") == replace(sessions[0], last_seen=500.0)
    assert store.delete_sessions() == 0
    assert store.delete_sessions(token_hash="t2") == 1 and store.session("t2") is None
    assert store.delete_sessions(token_hash="t2") == 0
    # idle (last seen before 400) or old (created before 60): t3 and t4, not t1 (touched at 500)
    assert store.delete_sessions(idle_before=400.0, created_before=60.0) == 2
    assert [store.session(t) is not None for t in ("t1", "t3", "t4")] == [True, False, False]
    store.add_session(Session("t5", "ann", "csrf5", 600.0, 600.0))
    store.add_session(Session("t6", "bob", "csrf6", 600.0, 600.0))
    assert store.delete_sessions(username="ann") == 2
    assert [store.session(t) is not None for t in ("t1", "t5", "t6")] == [False, False, True]


def test_a_session_needs_a_reviewer(store):
    with pytest.raises(Exception):  # noqa: B017 - the engines raise their own integrity errors
        store.add_session(Session("t1", "ghost", "csrf", 1.0, 1.0))
    assert store.session("t1") is None


# -- one database with the collection store -------------------------------------------------------------------


def _schema_versions(engine: Engine) -> tuple[int, int]:
    """(the collections' schema version, the review tables')."""
    if engine.name == "sqlite":
        conn = sqlite3.connect(engine.url.removeprefix("sqlite:///"))
        try:
            return (conn.execute("PRAGMA user_version").fetchone()[0],
                    conn.execute("SELECT version FROM facecompare_review_schema").fetchone()[0])
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(engine.url) as conn:
        return (conn.execute("SELECT version FROM facecompare_schema_version").fetchone()[0],
                conn.execute("SELECT version FROM facecompare_review_schema_version").fetchone()[0])


def _set_review_version(engine: Engine, version: int) -> None:
    if engine.name == "sqlite":
        conn = sqlite3.connect(engine.url.removeprefix("sqlite:///"))
        try:
            conn.execute("UPDATE facecompare_review_schema SET version = ?", (version,))
            conn.commit()
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(engine.url, autocommit=True) as conn:
        conn.execute("UPDATE facecompare_review_schema_version SET version = %s", (version,))


def test_one_database_with_the_collection_store(engine):
    import numpy as np

    from facecompare.collections import open_store
    from facecompare.collections.store import StoredFace
    from facecompare.errors import InternalServerError, InvalidParameterException
    from facecompare.review import postgres as review_postgres
    from facecompare.review import sqlite as review_sqlite

    collections = open_store(engine.url)
    reviews = open_review_store(engine.url)
    try:
        collections.create_collection("people", "sface", "cosine", 4)
        face = StoredFace(face_id="f1", image_id="i1", external_image_id=None, bounding_box=(0.1, 0.1, 0.5, 0.5),
                          confidence=99.0, embedding=np.ones(4, dtype=np.float32), image_sha256="0" * 64,
                          indexed_at=1.0)
        collections.add_faces("people", [face])
        marker = b"<<an image in the shared database, 5f0c2a>>" * 8
        reviews.add_case(make_case("c1", 1.0), images(marker), "system:api")
        assert [f.face_id for f in collections.list_faces("people")] == ["f1"]
        assert not engine.image_gone("c1", marker)
        assert reviews.erase_images(2.0, "system:retention", 3.0) == ["c1"]
        assert engine.image_gone("c1", marker)  # with the collection store's connection open on the file too
        assert [f.face_id for f in collections.list_faces("people")] == ["f1"]
    finally:
        collections.close()
        reviews.close()
    review_migrations = len(review_sqlite.MIGRATIONS if engine.name == "sqlite" else review_postgres.MIGRATIONS)
    if engine.name == "sqlite":
        from facecompare.collections.sqlite import MIGRATIONS as collection_migrations
    else:
        from facecompare.collections.postgres import MIGRATIONS as collection_migrations
    assert _schema_versions(engine) == (len(collection_migrations), review_migrations)
    # both reopen on the same database and see their data
    collections, reviews = open_store(engine.url), open_review_store(engine.url)
    try:
        assert collections.describe_collection("people").face_count == 1
        assert reviews.get_case("c1").images_erased_at == 3.0
    finally:
        collections.close()
        reviews.close()
    # the review tables from a newer release stop the review store, not the collections
    _set_review_version(engine, review_migrations + 1)
    with pytest.raises((InvalidParameterException, InternalServerError), match="newer than this release"):
        open_review_store(engine.url)
    collections = open_store(engine.url)
    try:
        assert collections.describe_collection("people").face_count == 1
    finally:
        collections.close()
    assert _schema_versions(engine) == (len(collection_migrations), review_migrations + 1)


# -- several reviewers and processes at once ------------------------------------------------------------------


def test_two_reviewers_deciding_the_same_version_one_wins(engine):
    import threading

    first, second = open_review_store(engine.url), open_review_store(engine.url)  # two processes' stores
    try:
        first.add_case(make_case("c1", 1.0), [], "system:api")
        barrier, outcomes = threading.Barrier(2), {}

        def decide(store: ReviewStore, actor: str, action: str) -> None:
            barrier.wait()
            try:
                outcomes[actor] = store.decide("c1", action, actor, "mine", 1, 2.0).status
            except CaseConflict:
                outcomes[actor] = "conflict"

        threads = [threading.Thread(target=decide, args=(first, "ann", "MATCH")),
                   threading.Thread(target=decide, args=(second, "bob", "NO_MATCH"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(outcomes.values()) in (["MATCH", "conflict"], ["NO_MATCH", "conflict"])
        winner = next(actor for actor, outcome in outcomes.items() if outcome != "conflict")
        case = first.get_case("c1")
        assert (case.reviewed_by, case.version) == (winner, 2)
        assert [(e.actor, e.action) for e in first.audit_log("c1")][0][0] == winner
        assert len(first.audit_log("c1")) == 2
    finally:
        first.close()
        second.close()


def test_a_case_queued_by_two_processes_at_once_is_stored_once(postgres_url):
    """Another process inserts the same case id and has not committed yet: this store's SELECT sees nothing, its
    INSERT waits for the other transaction, and then finds the id taken. That is the case that exists (created
    False), not an error."""
    import threading

    import psycopg

    store = open_review_store(postgres_url)
    try:
        other = psycopg.connect(postgres_url)
        other.execute("INSERT INTO facecompare_review_cases (case_id, created_at, source, model, engine_decision, "
                      "threshold, band_low, band_high, reasons, evidence, status, version) VALUES ('c1', 1, 'batch', "
                      "'sface', 'REVIEW', 80, 60, 90, '[]', '{}', 'OPEN', 1)")
        outcome: dict = {}

        def add() -> None:
            try:
                outcome["result"] = store.add_case(make_case("c1", 5.0), images(b"late"), "system:batch")
            except Exception as exc:  # noqa: BLE001 - the test reports what was raised
                outcome["error"] = exc

        thread = threading.Thread(target=add)
        thread.start()
        thread.join(1.0)
        assert thread.is_alive()  # waiting on the other transaction's row
        other.commit()
        other.close()
        thread.join(30)
        assert "error" not in outcome, repr(outcome.get("error"))
        case, created = outcome["result"]
        assert (created, case.case_id, case.created_at, case.source) == (False, "c1", 1.0, "batch")
        assert store.get_image("c1", "selfie") is None  # the late caller's images were not added
        assert store.audit_log("c1") == []
    finally:
        store.close()


def test_a_case_that_cannot_be_stored_leaves_nothing(store):
    duplicate_roles = [CaseImage("selfie", "image/jpeg", b"\xff\xd8\xffone"),
                       CaseImage("selfie", "image/jpeg", b"\xff\xd8\xfftwo")]
    with pytest.raises(Exception) as raised:  # noqa: B017 - each engine's integrity error
        store.add_case(make_case("c1", 1.0), duplicate_roles, "system:api")
    assert not isinstance(raised.value, ResourceNotFoundException)
    assert store.count_cases(ALL) == 0 and store.audit_log() == [] and store.get_image("c1", "selfie") is None


def test_failed_sign_ins_are_counted_from_the_audit_log(store):
    """The lockout's count: a name's SIGN_IN_FAILED entries after ``since`` and after its last SIGN_IN; other
    names, other actions and older entries do not count."""
    for at in (100.0, 200.0, 300.0):
        store.append_audit("ann", "SIGN_IN_FAILED", at)
    store.append_audit("bob", "SIGN_IN_FAILED", 300.0)
    store.append_audit("ann", "SIGN_IN_REFUSED", 300.0)
    assert store.failed_sign_ins("ann", 0.0) == 3
    assert store.failed_sign_ins("ann", 100.0) == 2  # strictly after since
    assert store.failed_sign_ins("bob", 0.0) == 1 and store.failed_sign_ins("carol", 0.0) == 0
    store.append_audit("ann", "SIGN_IN", 400.0)
    assert store.failed_sign_ins("ann", 0.0) == 0
    store.append_audit("ann", "SIGN_IN_FAILED", 500.0)
    assert store.failed_sign_ins("ann", 0.0) == 1


def test_sign_in_attempts_are_counted_atomically_per_key_and_window(store):
    """The sign-in budgets' counters (issue 22): one count per attempt, concurrent ones each get their own number, a
    window that has ended starts again at 1, a success forgets or takes back, ended windows are deleted."""
    import threading

    counts, lock = [], threading.Lock()

    def attempt():
        n = store.count_sign_in_attempt("k", 100.0, 0.0)
        with lock:
            counts.append(n)

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(counts) == list(range(1, 13))
    assert store.count_sign_in_attempt("other", 100.0, 0.0) == 1
    assert store.count_sign_in_attempt("k", 150.0, 99.0) == 13  # its window (from 100) has not ended at 99
    assert store.count_sign_in_attempt("k", 200.0, 100.0) == 1  # it has: a new window from 200
    store.forget_sign_in_attempts(undo=["k"])
    assert store.count_sign_in_attempt("k", 201.0, 100.0) == 1
    store.forget_sign_in_attempts(forget=["k"])
    assert store.count_sign_in_attempt("k", 300.0, 250.0) == 1  # forgotten: a new window from 300
    assert store.delete_sign_in_attempts(before=250.0) == 1  # "other", from 100
    assert store.count_sign_in_attempt("other", 301.0, 250.0) == 1
