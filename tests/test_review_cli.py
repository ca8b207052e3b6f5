"""Review queueing from the command line on real images: ``compare --queue-review``, ``batch --queue-review`` (and a
resumed batch), ``facecompare reviewer ...`` and ``facecompare review list|export|purge``, and ``calibrate
--from-reviews`` fitted on cases decided through the queue's own rules."""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from facecompare.cli import MIN_REVIEWED_PER_CLASS, main
from facecompare.native import other_faces, verification_dict
from facecompare.review.service import open_queue
from facecompare.review.store import CaseFilter
from facecompare.scoring import Calibration, fit_logistic, operating_points

EXAMPLES = Path(__file__).parent.parent / "examples"
PASSWORD = "correct horse battery"
ALL = CaseFilter(statuses=())


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _cases(url: str, where: CaseFilter = ALL) -> list:
    queue = open_queue(url, environ={})
    try:
        return queue.store.list_cases(where, limit=1000)
    finally:
        queue.store.close()


def _image(url: str, case_id: str, role: str):
    queue = open_queue(url, environ={})
    try:
        return queue.store.get_image(case_id, role)
    finally:
        queue.store.close()


# -- compare --queue-review -------------------------------------------------------------------------------------


def test_compare_queues_a_review_pair_with_its_images(fixtures, tmp_path, capsys):
    db = tmp_path / "review.db"
    selfie, document = fixtures / "Tony_Blair_0001.jpg", fixtures / "passport_specimen_cze.jpg"
    code = main(["compare", str(selfie), str(document), "--queue-review", "--review-store", _url(db),
                 "--review-batch", "branch 7 / morning", "--review-reference", "ticket-42"])
    text = capsys.readouterr().out
    assert code == 3 and "Decision:    REVIEW" in text and "MULTIPLE_FACES_IN_SELFIE" in text
    [case] = _cases(_url(db))
    assert f"Queued:      review case {case.case_id}" in text
    assert case.source == "cli" and case.status == "OPEN" and case.engine_decision == "REVIEW"
    assert case.batch == "branch 7 / morning" and case.reference == "ticket-42"
    assert case.model == "sface-2021dec-int8bq" and case.reasons == ["MULTIPLE_FACES_IN_SELFIE"]
    assert case.threshold == 80.0 and case.distance is not None and case.similarity is not None
    assert case.evidence["selfie_faces"] == 2 and len(case.evidence["other_faces"]["selfie"]) == 1
    for role, path in (("selfie", selfie), ("document", document)):
        image = _image(_url(db), case.case_id, role)
        assert image.media_type == "image/jpeg" and image.data == path.read_bytes()


def test_compare_json_carries_the_case_id(fixtures, tmp_path, capsys):
    db = tmp_path / "review.db"
    code = main(["compare", str(fixtures / "Serena_Williams_0001.jpg"), str(fixtures / "id_back_mrz_only_che.jpg"),
                 "--json", "--queue-review", "--review-store", _url(db)])
    data = json.loads(capsys.readouterr().out)
    assert code == 3 and data["verification"]["reasons"] == ["NO_FACE_ON_DOCUMENT"]
    [case] = _cases(_url(db))
    assert data["verification"]["review_case_id"] == case.case_id
    assert case.distance is None and case.similarity is None and case.batch is None and case.reference is None


def test_compare_stores_nothing_unless_a_queued_decision(fixtures, tmp_path, capsys):
    db = tmp_path / "review.db"
    # a MATCH with --queue-review: the store is opened only when a case is queued, so not even the file is made
    code = main(["compare", str(fixtures / "Colin_Powell_0001.jpg"), str(fixtures / "Colin_Powell_0002.jpg"),
                 "--queue-review", "--review-store", _url(db)])
    assert code == 0 and "Queued:" not in capsys.readouterr().out
    assert not db.exists()
    # NO_MATCH with --queue-review alone is not queued either; --json then has no review_case_id
    code = main(["compare", str(fixtures / "obama.jpg"), str(fixtures / "biden.jpg"), "--json", "--queue-review",
                 "--review-store", _url(db)])
    assert code == 1 and "review_case_id" not in json.loads(capsys.readouterr().out)["verification"]
    assert not db.exists()
    # a REVIEW pair without --queue-review: nothing stored
    code = main(["compare", str(fixtures / "Tony_Blair_0001.jpg"), str(fixtures / "passport_specimen_cze.jpg"),
                 "--review-store", _url(db)])
    assert code == 3 and "Queued:" not in capsys.readouterr().out
    assert not db.exists()
    # --queue-no-match queues the NO_MATCH pair
    code = main(["compare", str(fixtures / "obama.jpg"), str(fixtures / "biden.jpg"), "--queue-review",
                 "--queue-no-match", "--review-store", _url(db)])
    assert code == 1 and "Queued:" in capsys.readouterr().out
    assert [c.engine_decision for c in _cases(_url(db))] == ["NO_MATCH"]


def test_compare_queue_option_errors(fixtures, tmp_path, capsys):
    db = tmp_path / "review.db"
    pair = [str(fixtures / "Tony_Blair_0001.jpg"), str(fixtures / "passport_specimen_cze.jpg")]
    assert main(["compare", *pair, "--queue-no-match", "--review-store", _url(db)]) == 2
    assert "--queue-no-match goes with --queue-review" in capsys.readouterr().err
    assert main(["compare", *pair, "--queue-review", "--review-batch", "bad\x1blabel", "--review-store", _url(db)]) == 2
    assert "--review-batch must be 1-200 printable characters" in capsys.readouterr().err
    # a line feed at the end is a control character too (Python's $ would let it through)
    assert main(["compare", *pair, "--queue-review", "--review-reference", "ticket-42\n", "--review-store",
                 _url(db)]) == 2
    assert "--review-reference must be 1-200 printable characters; got 'ticket-42\\n'" in capsys.readouterr().err
    assert not db.exists()


# -- batch --queue-review ---------------------------------------------------------------------------------------


@pytest.fixture
def manifest(fixtures, tmp_path) -> Path:
    """Two REVIEW rows, one NO_MATCH, one MATCH and one ERROR (an unreadable image), with relative paths."""
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("Tony_Blair_0001.jpg", "passport_specimen_cze.jpg", "Serena_Williams_0001.jpg",
                 "id_back_mrz_only_che.jpg", "obama.jpg", "biden.jpg", "Colin_Powell_0001.jpg",
                 "Colin_Powell_0002.jpg"):
        shutil.copy(fixtures / name, folder / name)
    (folder / "junk.jpg").write_bytes(b"not an image at all")
    path = folder / "manifest.csv"
    path.write_text("id,selfie,document\n"
                    "review two faces,Tony_Blair_0001.jpg,passport_specimen_cze.jpg\n"
                    "review-no-doc-face,Serena_Williams_0001.jpg,id_back_mrz_only_che.jpg\n"
                    "nomatch,obama.jpg,biden.jpg\n"
                    "match,Colin_Powell_0001.jpg,Colin_Powell_0002.jpg\n"
                    "broken,junk.jpg,Colin_Powell_0002.jpg\n")
    return path


def _batch_results(out: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


def test_batch_queues_exactly_the_review_rows_once(manifest, tmp_path, capsys):
    db, out = tmp_path / "review.db", tmp_path / "run-2026-11"
    command = ["batch", str(manifest), "--out", str(out), "--workers", "1", "--no-progress", "--queue-review",
               "--review-store", _url(db)]
    assert main(command) == 0
    text = capsys.readouterr().out
    results = _batch_results(out)
    assert {k: r["decision"] for k, r in results.items()} == {
        "review two faces": "REVIEW", "review-no-doc-face": "REVIEW", "nomatch": "NO_MATCH", "match": "MATCH",
        "broken": "ERROR"}
    assert "Queued for review: 2 new cases in batch 'run-2026-11'" in text
    cases = {c.reference: c for c in _cases(_url(db))}
    assert set(cases) == {"review two faces", "review-no-doc-face"}
    folder = manifest.parent
    for ref, (selfie, document) in {"review two faces": ("Tony_Blair_0001.jpg", "passport_specimen_cze.jpg"),
                                    "review-no-doc-face": ("Serena_Williams_0001.jpg",
                                                           "id_back_mrz_only_che.jpg")}.items():
        case = cases[ref]
        assert case.source == "batch" and case.batch == "run-2026-11" and case.status == "OPEN"
        assert case.model == results[ref]["model"] == "sface-2021dec-int8bq"
        assert case.reasons == results[ref]["reasons"] and case.threshold == results[ref]["threshold"]
        assert list(case.review_band) == results[ref]["review_band"]
        assert case.evidence["selfie_faces"] == results[ref]["selfie_faces"]
        assert case.evidence["other_faces"] == results[ref]["other_faces"]
        assert _image(_url(db), case.case_id, "selfie").data == (folder / selfie).read_bytes()
        assert _image(_url(db), case.case_id, "document").data == (folder / document).read_bytes()
    assert len(cases["review two faces"].evidence["other_faces"]["selfie"]) == 1

    # the same command again: every row is finished, nothing new is queued, and the output says so
    assert main(command) == 0
    assert "Queued for review: 0 new cases in batch 'run-2026-11'" in capsys.readouterr().out
    assert len(_cases(_url(db))) == 2
    # a resumed run that does reach a row again (its results line lost) finds its case by the row's id: no copy
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text("\n".join(line for line in lines if '"review two faces"' not in line) + "\n")
    assert main(command) == 0
    assert "Queued for review: 0 new cases" in capsys.readouterr().out
    assert len(_cases(_url(db))) == 2


def test_a_resumed_batch_queues_the_finished_rows_not_queued_yet(manifest, tmp_path, capsys):
    """Rows an earlier run finished without queueing them (killed between writing a row and queueing it, or run
    without --queue-review) are queued when the batch is resumed with --queue-review: a resumed run skips them."""
    db, out = tmp_path / "review.db", tmp_path / "o"
    base = ["batch", str(manifest), "--out", str(out), "--workers", "1", "--no-progress", "--review-store", _url(db)]
    assert main(base) == 0 and not db.exists()
    capsys.readouterr()
    assert main([*base, "--queue-review"]) == 0
    assert "Queued for review: 2 new cases in batch 'o'" in capsys.readouterr().out
    assert sorted(c.reference for c in _cases(_url(db))) == ["review two faces", "review-no-doc-face"]
    assert main([*base, "--queue-review", "--queue-no-match"]) == 0
    assert "Queued for review: 1 new case in batch 'o'" in capsys.readouterr().out
    assert main([*base, "--queue-review", "--queue-no-match"]) == 0
    assert "Queued for review: 0 new cases in batch 'o'" in capsys.readouterr().out
    assert sorted((c.reference, c.engine_decision) for c in _cases(_url(db))) == [
        ("nomatch", "NO_MATCH"), ("review two faces", "REVIEW"), ("review-no-doc-face", "REVIEW")]
    # a row of a results.jsonl written before the rows carried the model is reported, not a crash
    lines = (out / "results.jsonl").read_text().splitlines()
    old = {**json.loads(lines[0]), "id": "old-row", "decision": "REVIEW"}
    del old["model"]
    (out / "results.jsonl").write_text("\n".join([*lines, json.dumps(old), "{\"id\": 7, \"decision\": \"REVIEW\"}"])
                                       + "\n")
    assert main([*base, "--queue-review"]) == 0
    assert ("Queued for review: 0 new cases in batch 'o'; 1 could not be queued (old-row: written by an older "
            "facecompare" in capsys.readouterr().out)
    assert len(_cases(_url(db))) == 3


def test_two_batches_with_one_label_and_the_same_row_ids_each_queue_their_pairs(manifest, fixtures, tmp_path,
                                                                                   capsys):
    """Row ids like 1, 2, 3 and an --out folder called "out" are common: a second batch of other pairs under the
    same label is queued, not taken for the first one resumed."""
    db = tmp_path / "review.db"
    other = tmp_path / "february"
    other.mkdir()
    for name in ("Tony_Blair_0001.jpg", "two_people.jpg", "obama.jpg", "id_back_mrz_only_che.jpg"):
        shutil.copy(fixtures / name, other / name)
    (other / "manifest.csv").write_text("id,selfie,document\n"
                                        "review two faces,Tony_Blair_0001.jpg,two_people.jpg\n"
                                        "review-no-doc-face,obama.jpg,id_back_mrz_only_che.jpg\n")
    for folder, source in (("january", manifest), ("february", other / "manifest.csv")):
        assert main(["batch", str(source), "--out", str(tmp_path / folder / "out"), "--workers", "1",
                     "--no-progress", "--queue-review", "--review-store", _url(db)]) == 0
        assert "Queued for review: 2 new cases in batch 'out'" in capsys.readouterr().out
    cases = _cases(_url(db))
    assert len(cases) == 4 and {c.batch for c in cases} == {"out"}
    documents = {_image(_url(db), c.case_id, "document").data for c in cases}
    assert documents == {(fixtures / name).read_bytes() for name in ("passport_specimen_cze.jpg", "two_people.jpg",
                                                                     "id_back_mrz_only_che.jpg")}
    assert sorted(c.reference for c in cases) == ["review two faces"] * 2 + ["review-no-doc-face"] * 2


def test_batch_queue_no_match_and_a_label_of_ones_own(manifest, tmp_path, capsys):
    db = tmp_path / "review.db"
    assert main(["batch", str(manifest), "--out", str(tmp_path / "o"), "--workers", "1", "--no-progress",
                 "--queue-review", "--queue-no-match", "--review-batch", "intake: week 48", "--review-store",
                 _url(db)]) == 0
    assert "Queued for review: 3 new cases in batch 'intake: week 48'" in capsys.readouterr().out
    cases = _cases(_url(db))
    assert sorted((c.reference, c.engine_decision) for c in cases) == [
        ("nomatch", "NO_MATCH"), ("review two faces", "REVIEW"), ("review-no-doc-face", "REVIEW")]
    assert {c.batch for c in cases} == {"intake: week 48"}  # the ERROR and MATCH rows are never queued


def test_batch_without_queue_review_stores_nothing(manifest, tmp_path, capsys):
    db = tmp_path / "review.db"
    assert main(["batch", str(manifest), "--out", str(tmp_path / "o"), "--workers", "1", "--no-progress",
                 "--review-store", _url(db)]) == 0
    assert "Queued for review" not in capsys.readouterr().out and not db.exists()
    assert main(["batch", str(manifest), "--out", str(tmp_path / "p"), "--queue-no-match", "--review-store",
                 _url(db)]) == 2
    assert "--queue-no-match goes with --queue-review" in capsys.readouterr().err
    assert not (tmp_path / "p").exists() and not db.exists()


# -- facecompare reviewer ---------------------------------------------------------------------------------------


def _stdin(monkeypatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def _sign_in(url: str, name: str, password: str):
    queue = open_queue(url, environ={})
    try:
        return queue.sign_in(name, password)
    finally:
        queue.store.close()


def test_reviewer_accounts(tmp_path, monkeypatch, capsys):
    url = _url(tmp_path / "review.db")
    _stdin(monkeypatch, PASSWORD + "\n")
    assert main(["reviewer", "add", "alice", "--store", url, "--password-stdin"]) == 0
    assert "Added reviewer alice" in capsys.readouterr().out
    _stdin(monkeypatch, "another long password\n")
    assert main(["reviewer", "add", "alice", "--store", url, "--password-stdin"]) == 2
    assert "ResourceAlreadyExistsException: A reviewer named 'alice' exists." in capsys.readouterr().err
    _stdin(monkeypatch, "short\n")
    assert main(["reviewer", "add", "bob", "--store", url, "--password-stdin"]) == 2
    assert "at least 12 characters" in capsys.readouterr().err
    _stdin(monkeypatch, PASSWORD + "\n")
    assert main(["reviewer", "add", "bob/x", "--store", url, "--password-stdin"]) == 2  # not a reviewer name
    assert "A reviewer name is 1-64 letters" in capsys.readouterr().err
    _stdin(monkeypatch, PASSWORD + "\n")
    assert main(["reviewer", "add", "bob\n", "--store", url, "--password-stdin"]) == 2  # a line feed is no letter
    assert "A reviewer name is 1-64 letters" in capsys.readouterr().err
    _stdin(monkeypatch, "bob's password 1\r\n")  # a Windows line end is not part of the password
    assert main(["reviewer", "add", "bob", "--store", url, "--password-stdin"]) == 0
    capsys.readouterr()
    assert main(["reviewer", "list", "--store", url]) == 0
    assert capsys.readouterr().out.splitlines() == ["alice\tactive", "bob\tactive"]
    assert _sign_in(url, "alice", PASSWORD) is not None and _sign_in(url, "bob", "bob's password 1") is not None

    assert main(["reviewer", "disable", "alice", "--store", url]) == 0
    assert "alice disabled." in capsys.readouterr().out
    assert _sign_in(url, "alice", PASSWORD) is None
    assert main(["reviewer", "list", "--store", url]) == 0
    assert capsys.readouterr().out.splitlines() == ["alice\tdisabled", "bob\tactive"]
    assert main(["reviewer", "enable", "alice", "--store", url]) == 0
    assert _sign_in(url, "alice", PASSWORD) is not None

    _stdin(monkeypatch, "a brand new password\n")
    assert main(["reviewer", "passwd", "alice", "--store", url, "--password-stdin"]) == 0
    assert "New password set for alice" in capsys.readouterr().out
    assert _sign_in(url, "alice", PASSWORD) is None
    assert _sign_in(url, "alice", "a brand new password") is not None
    _stdin(monkeypatch, "tiny\n")
    assert main(["reviewer", "passwd", "alice", "--store", url, "--password-stdin"]) == 2
    assert _sign_in(url, "alice", "a brand new password") is not None
    assert main(["reviewer", "disable", "nobody", "--store", url]) == 2
    assert "No reviewer is named 'nobody'" in capsys.readouterr().err

    # no --password-stdin and no terminal: a clear error, not a hang
    _stdin(monkeypatch, PASSWORD + "\n")
    assert main(["reviewer", "add", "carol", "--store", url]) == 2
    assert "No terminal to read the password from: pass --password-stdin" in capsys.readouterr().err
    assert main(["reviewer", "passwd", "alice", "--store", url]) == 2
    assert "No terminal" in capsys.readouterr().err
    queue = open_queue(url, environ={})
    try:
        assert [r.username for r in queue.store.list_reviewers()] == ["alice", "bob"]
        actions = [e.action for e in queue.store.audit_log()]
        assert {"REVIEWER_ADDED", "REVIEWER_DISABLED", "REVIEWER_ENABLED", "PASSWORD_CHANGED"} <= set(actions)
    finally:
        queue.store.close()


# -- facecompare review list | export | purge -------------------------------------------------------------------


@pytest.fixture
def queued(fixtures, verifier, tmp_path) -> str:
    """A store with four cases of two batches: one decided MATCH, one NO_MATCH, one escalated, one open."""
    url = _url(tmp_path / "review.db")
    queue = open_queue(url, environ={})
    try:
        pairs = [("Tony_Blair_0001.jpg", "passport_specimen_cze.jpg", "a", "decide-match"),
                 ("Serena_Williams_0001.jpg", "id_back_mrz_only_che.jpg", "a", "decide-no-match"),
                 ("Tony_Blair_0001.jpg", "two_people.jpg", "b", "escalate"),
                 ("obama.jpg", "biden.jpg", "b", "open")]
        cases = {}
        for selfie, document, batch, ref in pairs:
            v = verifier.verify(str(fixtures / selfie), str(fixtures / document), 80.0)
            cases[ref], _ = queue.queue({**verification_dict(v), "other_faces": other_faces(v)},
                                        verifier.recognizer.name, (fixtures / selfie).read_bytes(),
                                        (fixtures / document).read_bytes(), source="cli", batch=batch, reference=ref)
        for ref, action in (("decide-match", "MATCH"), ("decide-no-match", "NO_MATCH"), ("escalate", "ESCALATE")):
            queue.decide(cases[ref].case_id, action, "alice", f"=HYPERLINK(\"x\") {ref}", cases[ref].version)
    finally:
        queue.store.close()
    return url


def _export(url: str, tmp_path: Path, capsys, *filters: str) -> list[dict]:
    out = tmp_path / "export.csv"
    assert main(["review", "export", "--store", url, "--out", str(out), *filters]) == 0
    assert f"Wrote {out}" in capsys.readouterr().err
    with open(out, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_review_list_and_export(queued, tmp_path, capsys):
    assert main(["review", "list", "--store", queued]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 4 and captured.err.strip() == "4 cases"
    assert [line.split()[2] for line in lines] == ["MATCH", "NO_MATCH", "ESCALATED", "OPEN"]  # oldest first
    assert main(["review", "list", "--store", queued, "--status", "open"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1 and "open" in captured.out and captured.err.strip() == "1 case"

    rows = _export(queued, tmp_path, capsys)
    assert [r["reference"] for r in rows] == ["decide-match", "decide-no-match", "escalate", "open"]
    by_ref = {r["reference"]: r for r in rows}
    assert by_ref["decide-match"]["status"] == "MATCH" and by_ref["decide-match"]["reviewed_by"] == "alice"
    assert by_ref["decide-match"]["comment"].startswith("'=HYPERLINK")  # a spreadsheet does not run it
    assert by_ref["open"]["status"] == "OPEN" and by_ref["open"]["reviewed_by"] == "" and by_ref["open"]["comment"] == ""
    assert by_ref["open"]["engine_decision"] == "NO_MATCH" and float(by_ref["open"]["similarity"]) < 1
    assert by_ref["decide-no-match"]["similarity"] == "" and by_ref["decide-no-match"]["reasons"] == "NO_FACE_ON_DOCUMENT"
    assert by_ref["escalate"]["reasons"] == "MULTIPLE_FACES_IN_SELFIE" and by_ref["escalate"]["batch"] == "b"
    assert all(r["source"] == "cli" and r["model"] == "sface-2021dec-int8bq" and r["images_erased_at"] == ""
               and r["queued_at"].endswith("Z") for r in rows)

    assert [r["reference"] for r in _export(queued, tmp_path, capsys, "--status", "decided")] == [
        "decide-match", "decide-no-match"]
    assert [r["reference"] for r in _export(queued, tmp_path, capsys, "--status", "pending")] == ["escalate", "open"]
    assert [r["reference"] for r in _export(queued, tmp_path, capsys, "--batch", "b")] == ["escalate", "open"]
    assert [r["reference"] for r in _export(queued, tmp_path, capsys, "--reason", "MULTIPLE_FACES_IN_SELFIE")] == [
        "decide-match", "escalate"]
    assert _export(queued, tmp_path, capsys, "--batch", "a", "--status", "escalated") == []
    assert main(["review", "export", "--store", queued, "--reason", "not a code"]) == 2
    assert "Not a reason code" in capsys.readouterr().err
    assert main(["review", "export", "--store", queued, "--reason", "MULTIPLE_FACES_IN_SELFIE\n"]) == 2
    assert "Not a reason code" in capsys.readouterr().err
    # without --out the CSV goes to standard output
    assert main(["review", "export", "--store", queued, "--status", "open"]) == 0
    assert [r["reference"] for r in csv.DictReader(io.StringIO(capsys.readouterr().out))] == ["open"]


def test_export_defuses_formulas_in_the_callers_labels(fixtures, tmp_path, capsys):
    """Labels are the caller's printable text (--review-batch, REST review_reference, a batch row's id): a cell
    that starts with = + - @ must not run as a spreadsheet formula, as the reviewer's comment does not."""
    url = _url(tmp_path / "review.db")
    assert main(["compare", str(fixtures / "Tony_Blair_0001.jpg"), str(fixtures / "passport_specimen_cze.jpg"),
                 "--queue-review", "--review-store", url, "--review-batch", '=HYPERLINK("http://x.example")',
                 "--review-reference", "@SUM(A1)"]) == 3
    assert main(["compare", str(fixtures / "Tony_Blair_0001.jpg"), str(fixtures / "two_people.jpg"),
                 "--queue-review", "--review-store", url, "--review-batch", "+1", "--review-reference", "-2"]) == 3
    capsys.readouterr()
    rows = _export(url, tmp_path, capsys)
    assert [(r["batch"], r["reference"]) for r in rows] == [("'=HYPERLINK(\"http://x.example\")", "'@SUM(A1)"),
                                                            ("'+1", "'-2")]
    # the filter takes the label as it was given
    assert [r["reference"] for r in _export(url, tmp_path, capsys, "--batch", "+1")] == ["'-2"]


def test_review_purge_erases_images_past_retention(queued, monkeypatch, capsys):
    monkeypatch.setenv("FACECOMPARE_REVIEW_RETENTION_DAYS", "30")
    assert main(["review", "purge", "--store", queued]) == 0
    assert "Erased the images of 0 cases older than 30 days." in capsys.readouterr().out
    ids = [c.case_id for c in _cases(queued)]
    assert all(_image(queued, i, "selfie") is not None for i in ids)

    time.sleep(1.0)  # 0.00001 days is 0.864 s
    monkeypatch.setenv("FACECOMPARE_REVIEW_RETENTION_DAYS", "0.00001")
    assert main(["review", "purge", "--store", queued]) == 0
    assert "Erased the images of 4 cases older than 1e-05 days." in capsys.readouterr().out
    for case in _cases(queued):
        assert _image(queued, case.case_id, "selfie") is None and _image(queued, case.case_id, "document") is None
        assert case.images_erased_at is not None  # the decision record stays
    assert [c.status for c in _cases(queued)] == ["MATCH", "NO_MATCH", "ESCALATED", "OPEN"]
    assert main(["review", "purge", "--store", queued]) == 0
    assert "Erased the images of 0 cases" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf"])
def test_invalid_retention_is_an_error_naming_the_variable(queued, monkeypatch, capsys, value):
    monkeypatch.setenv("FACECOMPARE_REVIEW_RETENTION_DAYS", value)
    assert main(["review", "purge", "--store", queued]) == 2
    err = capsys.readouterr().err
    assert "FACECOMPARE_REVIEW_RETENTION_DAYS" in err and "positive number of days" in err
    monkeypatch.delenv("FACECOMPARE_REVIEW_RETENTION_DAYS")
    assert all(_image(queued, c.case_id, "selfie") is not None for c in _cases(queued))


# -- calibrate --from-reviews -----------------------------------------------------------------------------------

#: real pairs of the same person (an LFW pair each of Colin Powell and Serena Williams; Biden in a group photo;
#: Obama against a synthetic ID card made from another photo of him) and of different people
GENUINE = [("Colin_Powell_0001.jpg", "Colin_Powell_0002.jpg"), ("Serena_Williams_0001.jpg", "Serena_Williams_0002.jpg"),
           ("Colin_Powell_0002.jpg", "Colin_Powell_0001.jpg"), ("Serena_Williams_0002.jpg", "Serena_Williams_0001.jpg"),
           ("biden.jpg", "two_people.jpg"), ("obama.jpg", "examples:id_card.jpg"),
           ("examples:selfie.jpg", "examples:id_card.jpg")]
IMPOSTOR = [("obama.jpg", "biden.jpg"), ("Colin_Powell_0001.jpg", "Serena_Williams_0001.jpg"),
            ("Serena_Williams_0001.jpg", "Tony_Blair_0001.jpg"), ("Colin_Powell_0002.jpg", "obama.jpg"),
            ("Serena_Williams_0002.jpg", "biden.jpg"), ("Colin_Powell_0001.jpg", "passport_specimen_cze.jpg"),
            ("examples:other_selfie.jpg", "examples:id_card.jpg")]
MODEL = "sface-2021dec-int8bq"


def _path(fixtures: Path, name: str) -> Path:
    return EXAMPLES / name.split(":", 1)[1] if name.startswith("examples:") else fixtures / name


def _queue_and_decide(url: str, verifier, fixtures, pairs, same: bool, action: str | None = None,
                      result_changes: dict | None = None, model: str | None = None) -> list:
    """Verify each real pair, queue it as the REST API would (its verification_dict), and decide it with the true
    label (or ``action``)."""
    queue = open_queue(url, environ={})
    cases = []
    try:
        for first, second in pairs:
            a, b = _path(fixtures, first), _path(fixtures, second)
            v = verifier.verify(str(a), str(b), 80.0)
            case, _ = queue.queue({**verification_dict(v), **(result_changes or {})}, model or verifier.recognizer.name,
                                  a.read_bytes(), b.read_bytes(), source="api")
            if action != "leave open":
                case = queue.decide(case.case_id, action or ("MATCH" if same else "NO_MATCH"), "alice",
                                    "looked at both photos", case.version)
            cases.append(case)
    finally:
        queue.store.close()
    return cases


def _reviewed(url: str) -> tuple[np.ndarray, np.ndarray]:
    queue = open_queue(url, environ={})
    try:
        distances, labels = queue.store.reviewed_distances(MODEL)
    finally:
        queue.store.close()
    return np.asarray(distances), np.asarray(labels, dtype=bool)


@pytest.fixture(scope="module")
def reviewed_store(tmp_path_factory, verifier):
    fixtures = Path(__file__).parent / "fixtures"
    url = _url(tmp_path_factory.mktemp("reviews") / "review.db")
    genuine = _queue_and_decide(url, verifier, fixtures, GENUINE, True)
    impostor = _queue_and_decide(url, verifier, fixtures, IMPOSTOR, False)
    assert verifier.recognizer.name == MODEL
    assert max(c.distance for c in genuine) < min(c.distance for c in impostor)  # the engine tells them apart
    return url


def test_calibrate_from_reviews_fits_exactly_the_decided_cases(reviewed_store, verifier, fixtures, tmp_path,
                                                                capsys):
    out = tmp_path / "cal.json"
    assert main(["calibrate", "--from-reviews", "--review-store", reviewed_store, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"Reviewed cases of {MODEL}: {len(GENUINE)} MATCH, {len(IMPOSTOR)} NO_MATCH" in text
    assert "Note: reviewed cases are the hard ones" in text
    saved = json.loads(out.read_text())
    distances, same = _reviewed(reviewed_store)
    assert len(distances) == len(GENUINE) + len(IMPOSTOR) and same.sum() == len(GENUINE)
    slope, midpoint = fit_logistic(distances, same)
    assert saved["model"] == MODEL == verifier.recognizer.name
    assert saved["mapping"] == {"type": "logistic", "slope": slope, "midpoint": midpoint}
    assert saved["source"] == f"reviewed cases: {len(GENUINE)} MATCH, {len(IMPOSTOR)} NO_MATCH"
    expected = operating_points(Calibration(slope=slope, midpoint=midpoint, model=MODEL), distances, same)
    assert saved["operating_points"] == json.loads(json.dumps(expected))
    assert all(row["genuine_pairs"] == len(GENUINE) and row["impostor_pairs"] == len(IMPOSTOR)
               for row in saved["operating_points"])
    # genuine distances are below the midpoint, impostor distances above: the fitted curve separates them
    assert distances[same].max() < midpoint < distances[~same].min()

    # an escalated and an open case with extreme distances, and a decided case of another recognizer, change
    # nothing: only the decided cases of the recognizer in use are fitted
    _queue_and_decide(reviewed_store, verifier, fixtures, [GENUINE[0]], True, action="ESCALATE",
                      result_changes={"distance": 3.5})
    _queue_and_decide(reviewed_store, verifier, fixtures, [IMPOSTOR[0]], False, action="leave open",
                      result_changes={"distance": 0.0})
    _queue_and_decide(reviewed_store, verifier, fixtures, [IMPOSTOR[1]], False, model="dlib-resnet-v1",
                      result_changes={"distance": 0.01})
    again = tmp_path / "again.json"
    assert main(["calibrate", "--from-reviews", "--review-store", reviewed_store, "--out", str(again)]) == 0
    capsys.readouterr()
    assert json.loads(again.read_text()) == saved


def _pairs_csv(path: Path) -> tuple[list[float], list[float]]:
    """A pairs.csv as `facecompare evaluate` writes it (see test_evaluation_cli.py)."""
    genuine, impostor = [0.30, 0.35, 0.42, 0.50, 0.58, 0.62], [0.55, 0.66, 0.72, 0.80, 0.90, 1.00]
    lines = ["first,second,same,fold,model,distance,similarity,decision,reasons"]
    lines += [f"a{i},b{i},1,,{MODEL},{d},,," for i, d in enumerate(genuine)]
    lines += [f"c{i},d{i},0,,{MODEL},{d},,," for i, d in enumerate(impostor)]
    path.write_text("\n".join(lines) + "\n")
    return genuine, impostor


def test_calibrate_from_reviews_with_results_adds_the_counts(reviewed_store, tmp_path, capsys):
    results = tmp_path / "pairs.csv"
    genuine, impostor = _pairs_csv(results)
    out = tmp_path / "cal.json"
    assert main(["calibrate", "--from-results", str(results), "--from-reviews", "--review-store", reviewed_store,
                 "--out", str(out)]) == 0
    assert "Note: reviewed cases" not in capsys.readouterr().out
    saved = json.loads(out.read_text())
    reviewed, labels = _reviewed(reviewed_store)
    distances = np.concatenate([genuine, impostor, reviewed])
    same = np.concatenate([np.ones(6, bool), np.zeros(6, bool), labels])
    slope, midpoint = fit_logistic(distances, same)
    assert saved["mapping"]["slope"] == slope and saved["mapping"]["midpoint"] == midpoint
    assert saved["source"] == (f"pairs.csv: 12 pairs; reviewed cases: {labels.sum()} MATCH, "
                               f"{(~labels).sum()} NO_MATCH")
    for row in saved["operating_points"]:
        assert row["genuine_pairs"] == 6 + labels.sum() and row["impostor_pairs"] == 6 + (~labels).sum()


def test_calibrate_from_too_few_reviews(verifier, fixtures, tmp_path, capsys):
    url = _url(tmp_path / "few.db")
    out = tmp_path / "cal.json"
    assert main(["calibrate", "--from-reviews", "--review-store", url, "--out", str(out)]) == 2
    assert f"0 MATCH and 0 NO_MATCH; at least {MIN_REVIEWED_PER_CLASS} of each" in capsys.readouterr().err
    _queue_and_decide(url, verifier, fixtures, GENUINE[:4], True)
    _queue_and_decide(url, verifier, fixtures, IMPOSTOR[:6], False)
    assert main(["calibrate", "--from-reviews", "--review-store", url, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"Too few reviewed cases of {MODEL} to fit on alone: 4 MATCH and 6 NO_MATCH" in err
    assert not out.exists()
    # with a pair list they are enough: the counts add
    results = tmp_path / "pairs.csv"
    _pairs_csv(results)
    assert main(["calibrate", "--from-results", str(results), "--from-reviews", "--review-store", url, "--out",
                 str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["source"] == "pairs.csv: 12 pairs; reviewed cases: 4 MATCH, 6 NO_MATCH"
    assert {(row["genuine_pairs"], row["impostor_pairs"]) for row in saved["operating_points"]} == {(10, 12)}
