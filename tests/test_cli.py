"""The command line on real images: exit codes, JSON, annotated PNGs, errors."""

from __future__ import annotations

import json
import subprocess
import sys

from PIL import Image

from facecompare.cli import main

EXAMPLES = __import__("pathlib").Path(__file__).parent.parent / "examples"


def test_compare_match_exit_code_and_annotation(tmp_path, capsys):
    out = tmp_path / "cmp.png"
    code = main(["compare", str(EXAMPLES / "selfie.jpg"), str(EXAMPLES / "id_card.jpg"), "--annotate", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and "Decision:    MATCH" in text
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > im.height


def test_compare_no_match_json(capsys):
    code = main(["compare", str(EXAMPLES / "other_selfie.jpg"), str(EXAMPLES / "id_card.jpg"), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert data["verification"]["decision"] == "NO_MATCH"
    rek = data["CompareFaces"]
    assert rek["FaceMatches"] == [] and len(rek["UnmatchedFaces"]) == 2  # portrait and ghost portrait


def test_compare_no_face_is_review_exit_3(fixtures, capsys):
    code = main(["compare", str(fixtures / "obama.jpg"), str(fixtures / "id_back_mrz_only_che.jpg")])
    text = capsys.readouterr().out
    assert code == 3 and "NO_FACE_ON_DOCUMENT" in text


def test_compare_bad_input_exit_2(tmp_path, capsys):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image at all")
    code = main(["compare", str(junk), str(EXAMPLES / "id_card.jpg")])
    assert code == 2
    assert "InvalidImageFormatException" in capsys.readouterr().err


def test_compare_bad_threshold_exit_2(capsys):
    code = main(["compare", str(EXAMPLES / "selfie.jpg"), str(EXAMPLES / "id_card.jpg"), "--threshold", "120"])
    assert code == 2 and "0 to 100" in capsys.readouterr().err


def test_detect_json_and_annotation(fixtures, tmp_path, capsys):
    out = tmp_path / "det.png"
    code = main(["detect", str(fixtures / "two_people.jpg"), "--json", "--annotate", str(out)])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and len(data["FaceDetails"]) == 2 and out.is_file()


def test_console_script_help():
    result = subprocess.run([sys.executable, "-m", "facecompare.cli", "compare", "--help"], capture_output=True,
                            text=True, check=True)
    assert "exit code 0 MATCH, 1 NO_MATCH, 3 REVIEW, 2 error" in " ".join(result.stdout.split())
