"""The command line on real images: exit codes, JSON, annotated PNGs, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from facecompare.cli import main
from facecompare.draw import BLUE, GREEN

EXAMPLES = __import__("pathlib").Path(__file__).parent.parent / "examples"


def test_compare_match_exit_code_and_annotation(tmp_path, capsys):
    out = tmp_path / "cmp.png"
    code = main(["compare", str(EXAMPLES / "selfie.jpg"), str(EXAMPLES / "id_card.jpg"), "--annotate", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and "Decision:    MATCH" in text
    with Image.open(out) as im:
        # both panels 720 px high: the 800x1000 selfie 576 px wide, the 2400x1800 card 960, 16 px between
        assert im.format == "PNG" and im.size == (576 + 16 + 960, 720)
        pixels = np.asarray(im.convert("RGB"))
    # the compared faces are boxed in green (MATCH), on both panels
    green = np.all(pixels == GREEN, axis=2)
    assert green[:, :576].sum() > 200 and green[:, 592:].sum() > 200


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
    assert code == 0 and len(data["FaceDetails"]) == 2
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (800, 470)  # the 800x470 photo at its own size
        blue = np.all(np.asarray(im.convert("RGB")) == BLUE, axis=2)
    # each reported face has its blue box: the box's left edge is drawn at Left * width
    for face in data["FaceDetails"]:
        b = face["BoundingBox"]
        x = round(b["Left"] * 800)
        rows = slice(round((b["Top"] + 0.25 * b["Height"]) * 470), round((b["Top"] + 0.75 * b["Height"]) * 470))
        assert blue[rows, max(0, x - 3):x + 4].any(axis=1).all(), face["BoundingBox"]


def test_console_script_help():
    result = subprocess.run([sys.executable, "-m", "facecompare.cli", "compare", "--help"], capture_output=True,
                            text=True, check=True)
    assert "exit code 0 MATCH, 1 NO_MATCH, 3 REVIEW, 2 error" in " ".join(result.stdout.split())
