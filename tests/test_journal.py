"""The one JSONL journal (facecompare/journal.py) that batch and dedupe resume from, and the one reader of
"s3://bucket/key or a path" (facecompare/sources.py): the checks every caller now gets."""

from __future__ import annotations

import json

import pytest

from facecompare.errors import ImageTooLargeException, InvalidParameterException, InvalidS3ObjectException
from facecompare.journal import append, iter_records, open_journal, read_journal
from facecompare.settings import Settings
from facecompare.sources import ImageReader

ROW = {"id": "a", "status": "indexed", "face_id": "f-1", "image": "caf\u00e9.jpg"}
OTHER = {"id": "b", "status": "error", "error": "NO_FACE"}


def test_a_line_that_is_not_utf8_or_has_no_string_key_is_dropped_and_the_rest_kept(tmp_path):
    """dedupe's rows.jsonl read in text mode before: a kill that left bytes that are not UTF-8 made every resumed
    run fail with UnicodeDecodeError; and a record whose id was a number was kept as a row."""
    path = tmp_path / "rows.jsonl"
    with open_journal(path) as sink:
        append(sink, ROW)
    with open(path, "ab") as handle:
        handle.write(b"\xff\xfe\x80 cut\n" + b'{"id": 5}\n')
    with open_journal(path) as sink:
        append(sink, OTHER)
    assert [r["id"] for r in iter_records(path, "id")] == ["a", "b"]  # read without changing the file
    assert path.read_bytes().count(b"\n") == 4
    assert read_journal(path, "id") == {"a": ROW, "b": OTHER}
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == [ROW, OTHER]


def test_the_last_line_cut_by_a_kill_is_dropped(tmp_path):
    path = tmp_path / "searched.jsonl"
    path.write_text(json.dumps({"face_id": "f-1", "matches": []}) + "\n" + '{"face_id": "f-2", "matc')
    assert list(read_journal(path, "face_id")) == ["f-1"]
    assert path.read_text().endswith("[]}\n")


def test_a_path_is_read_with_the_engines_checks(tmp_path, fixtures):
    reader = ImageReader(settings=Settings(max_file_bytes=1000))
    with pytest.raises(ImageTooLargeException):  # Path.read_bytes() had no limit (review queue, report)
        reader.read_bytes(str(fixtures / "obama.jpg"))
    with pytest.raises(InvalidParameterException, match="not found"):  # an OSError before
        reader.read_bytes(str(tmp_path / "absent.jpg"))
    assert ImageReader(settings=Settings()).read_bytes(str(fixtures / "obama.jpg")) == (fixtures / "obama.jpg").read_bytes()


@pytest.mark.parametrize("url", ["s3://bucket-only", "s3:///key", "s3://"])
def test_an_s3_address_without_bucket_and_key_is_refused_before_any_request(url):
    with pytest.raises(InvalidS3ObjectException, match="is not an s3://bucket/key address"):
        ImageReader().read_bytes(url)
