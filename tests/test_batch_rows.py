"""Batch runs: a damaged ``results.jsonl`` (a corrupt line in the middle) and manifests with duplicate or empty ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facecompare import InvalidParameterException
from facecompare.batch import BatchRow, load_finished, read_manifest, run_batch
from facecompare.cli import main

FIXTURES = Path(__file__).parent / "fixtures"


def _record(row_id: str, document: str, decision: str, similarity: float) -> str:
    """A results.jsonl line as a run writes it, with a marker field no run writes (to tell kept lines from redone)."""
    return json.dumps({"id": row_id, "selfie": str(FIXTURES / "Colin_Powell_0001.jpg"), "document": str(FIXTURES / document),
                       "expected": "", "decision": decision, "similarity": similarity, "distance": 0.5, "reasons": [],
                       "notes": [], "selfie_face": None, "document_face": None, "error": "", "marker": "kept"},
                      separators=(",", ":")) + "\n"


A = _record("a", "Colin_Powell_0002.jpg", "MATCH", 99.0)
C = _record("c", "Serena_Williams_0001.jpg", "NO_MATCH", 1.0)


@pytest.mark.parametrize("corrupt", [
    '{"id":"b","decis\n',  # a line cut short, then the writer went on
    "\x00\x00\x00\x00\n",  # a block of zeros, as a crash can leave in a file system's journal
    "not json at all\n",
    "null\n", "[1, 2]\n", "5\n", '"b"\n',  # JSON, but not a result record
    '{"decision":"MATCH"}\n',  # a record without an id
    '{"id":["b"]}\n', '{"id":{"b":1}}\n',  # an id that is not a string
])
def test_corrupt_line_in_the_middle_is_dropped_and_the_rest_kept(tmp_path, corrupt):
    results = tmp_path / "results.jsonl"
    results.write_text(A + corrupt + C)
    assert load_finished(results) == {"a", "c"}
    assert results.read_text() == A + C  # rewritten without the corrupt line, the others unchanged and in order
    assert load_finished(results) == {"a", "c"}  # and a second look changes nothing
    assert results.read_text() == A + C


def test_line_that_is_not_utf8_is_dropped(tmp_path):
    results = tmp_path / "results.jsonl"
    results.write_bytes(A.encode() + b"\xff\xfe\x80 garbage\n" + C.encode())
    assert load_finished(results) == {"a", "c"}
    assert results.read_text() == A + C


def test_clean_file_is_not_rewritten(tmp_path):
    results = tmp_path / "results.jsonl"
    results.write_text(A + C)
    before = results.stat().st_mtime_ns, results.stat().st_ino
    assert load_finished(results) == {"a", "c"}
    assert (results.stat().st_mtime_ns, results.stat().st_ino) == before


def test_resume_over_a_corrupt_middle_line_redoes_only_that_row(tmp_path, fixtures):
    """Rows a and c are in the file (with a marker no real run writes); b's line is corrupt. The run redoes b
    only: the file holds a and c unchanged, then b's real result, exactly one line per id."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.jsonl").write_text(A + '{"id":"b","decision":"MA\n' + C)
    rows = [BatchRow(i, str(fixtures / "Colin_Powell_0001.jpg"), str(fixtures / doc))
            for i, doc in (("a", "Colin_Powell_0002.jpg"), ("b", "Colin_Powell_0002.jpg"),
                           ("c", "Serena_Williams_0001.jpg"))]
    run_batch(rows, out, workers=1, progress=False)
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    assert lines[:2] == [A, C]
    assert len(lines) == 3
    b = json.loads(lines[2])
    assert b["id"] == "b" and b["decision"] == "MATCH" and "marker" not in b and b["similarity"] > 80
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] == 3 and summary["by_decision"] == {"MATCH": 2, "NO_MATCH": 1}


# -- manifests: duplicate and empty ids -------------------------------------------------------------------------


def _manifest(tmp_path, *ids: str):
    path = tmp_path / "manifest.csv"
    path.write_text("id,selfie,document\n" + "".join(f"{i},s{n}.jpg,d{n}.jpg\n" for n, i in enumerate(ids)))
    return path


@pytest.mark.parametrize("ids, message", [
    (("a", "b", "a"), "line 4: duplicate id 'a'"),
    (("a", " b ", "b"), "line 4: duplicate id 'b'"),  # ids are compared without surrounding spaces
    (("a", "", "c"), "line 3: empty id"),
    (("a", "   ", "c"), "line 3: empty id"),
])
def test_duplicate_or_empty_id_is_refused_before_any_work(tmp_path, capsys, ids, message):
    path = _manifest(tmp_path, *ids)
    with pytest.raises(InvalidParameterException, match=message):
        list(read_manifest(path))
    out = tmp_path / "out"
    assert main(["batch", str(path), "--out", str(out), "--workers", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "InvalidParameterException" in err and message in err
    assert not out.exists()  # refused before a worker started or a result was written


def test_distinct_ids_are_read_in_order(tmp_path):
    rows = list(read_manifest(_manifest(tmp_path, "x", " y ", "A", "a")))
    assert [r.id for r in rows] == ["x", "y", "A", "a"]  # case matters: "A" and "a" are two rows
    assert rows[0].selfie == str(tmp_path / "s0.jpg") and rows[3].document == str(tmp_path / "d3.jpg")
