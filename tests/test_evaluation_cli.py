"""`synth-kyc`, `evaluate` and `calibrate` end to end on a tiny set made from the committed fixtures."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from facecompare.cli import main
from facecompare.scoring import load_calibration


def _faces(tmp_path, fixtures):
    faces = tmp_path / "faces"
    for name in ("Colin_Powell_0001", "Colin_Powell_0002", "Serena_Williams_0001", "Serena_Williams_0002",
                 "Tony_Blair_0001"):
        person = faces / name.rsplit("_", 1)[0]
        person.mkdir(parents=True, exist_ok=True)
        shutil.copy(fixtures / f"{name}.jpg", person / f"{name}.jpg")
    return faces


def test_synth_kyc_is_reproducible_and_evaluates(tmp_path, fixtures, capsys):
    faces = _faces(tmp_path, fixtures)
    args = ["synth-kyc", "--faces", str(faces), "--n", "6", "--seed", "3", "--workers", "1", "--no-progress",
            "--impostors-per-document", "2"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    # reproducible: a pair is determined by (seed, index) alone, so a second run of the first 2 pairs renders
    # the same bytes and rows as the first 2 of the 6 (a third of the rendering of a second full run)
    second = [a if a != "6" else "2" for a in args]
    assert main([*second, "--out", str(tmp_path / "b")]) == 0
    for i in range(2):
        for kind in ("selfie", "document"):
            name = f"images/{i:05d}_{kind}.jpg"
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    text = (tmp_path / "a" / "pairs.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(csv.DictReader(open(tmp_path / "b" / "pairs.csv")))[:2] == rows[:2]
    # and the impostor rows are the ones the seed gives for these rendered rows
    from facecompare.synth import add_impostor_pairs

    again = [{k: str(v) for k, v in row.items()} for row in add_impostor_pairs(rows[:6], 2, 3)]
    assert again == rows[6:]
    assert list(rows[0])[:4] == ["pair_id", "selfie", "document", "same"] and "rotation" in rows[0]
    rendered, extra = rows[:6], rows[6:]
    # every document also meets two selfies of other people, reusing the rendered images
    assert len(extra) == 12 and len({r["pair_id"] for r in rows}) == 18
    by_document = {r["document"]: r for r in rendered}
    for row in extra:
        assert row["same"] == "0" and (tmp_path / "a" / row["selfie"]).is_file()
        assert row["selfie_source"].split("/")[0] != row["document_source"].split("/")[0]
        assert row["rotation"] == by_document[row["document"]]["rotation"]
    # the same pairs on the original photos, the baseline without card and camera
    source = list(csv.DictReader(open(tmp_path / "a" / "source-pairs.csv")))
    assert [r["pair_id"] for r in source] == [r["pair_id"] for r in rows]
    for src, row in zip(source, rows):
        assert (src["selfie"], src["document"]) == (row["selfie_source"], row["document_source"])
        assert (faces / src["selfie"]).is_file() and (faces / src["document"]).is_file()
    assert main(["evaluate", str(tmp_path / "a" / "source-pairs.csv"), "--root", str(faces), "--out",
                 str(tmp_path / "source-eval"), "--workers", "1", "--no-progress"]) == 0
    source_summary = json.loads((tmp_path / "source-eval" / "summary.json").read_text())
    assert source_summary["pairs"] == 18 and source_summary["failure_to_acquire_images"] == 0

    out = tmp_path / "eval"
    assert main(["evaluate", str(tmp_path / "a" / "pairs.csv"), "--out", str(out), "--workers", "1",
                 "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pairs"] == 18 and summary["images"] == 12 and "by_condition" in summary
    assert set(summary["by_condition"]["conditions"]) >= {"rotation", "size", "portrait_pct", "grayscale"}
    # the portrait's share of the frame width in whole percent, within its size class; the groups add up
    for row in rendered:
        low, high = {"small": (2, 3), "medium": (4, 6), "large": (7, 9)}[row["size"]]
        assert low <= int(row["portrait_pct"]) <= high, row
    from facecompare.synth import CONDITION_COLUMNS

    for name in CONDITION_COLUMNS:  # the document's conditions: each document is in one group of each
        groups = summary["by_condition"]["conditions"][name]
        assert sum(g["documents"] for g in groups.values()) == 6
        assert sum(g["document_failures"] for g in groups.values()) <= summary["failure_to_acquire_images"]
        for g in groups.values():
            assert g["document_failure_to_acquire"] == pytest.approx(g["document_failures"] / g["documents"])
    # the plots are PNGs of their figure size (6 x 5 in, 7 x 4.5 in, at 110 dpi) with axes and labels (black)
    # and their data drawn: the ROC line in matplotlib's first colour, the histogram's genuine and impostor bars
    # (tab:green and tab:red at alpha 0.6 over white). (The DET curve draws only points where both error rates
    # are above 0, which 18 pairs need not have.)
    def has(pixels: np.ndarray, rgb: tuple[int, int, int]) -> int:
        return int(np.all(np.abs(pixels.astype(int) - rgb) <= 3, axis=2).sum())

    for plot, size, colours in (("roc.png", (660, 550), [(0, 0, 0), (31, 119, 180)]),
                                ("det.png", (660, 550), [(0, 0, 0)]),
                                ("histogram.png", (770, 495), [(0, 0, 0), (128, 198, 128), (230, 125, 126)])):
        with Image.open(out / plot) as im:
            assert im.format == "PNG" and im.size == size, plot
            pixels = np.asarray(im.convert("RGB"))
        for rgb in colours:
            assert has(pixels, rgb) > 200, (plot, rgb)
    rows = (out / "pairs.csv").read_text().splitlines()
    assert len(rows) == 19 and rows[0].startswith("first,second,same,fold,model,distance")
    assert summary["model"] == "sface-2021dec-int8bq" and rows[1].split(",")[4] == "sface-2021dec-int8bq"


def test_calibrate_from_results_keeps_the_recognizer_name(tmp_path, capsys):
    results = tmp_path / "pairs.csv"
    lines = ["first,second,same,fold,model,distance,similarity,decision,reasons"]
    for i, d in enumerate([0.30, 0.35, 0.42, 0.50, 0.58, 0.62]):
        lines.append(f"a{i},b{i},1,,sface-2021dec-int8bq,{d},,,")
    for i, d in enumerate([0.55, 0.66, 0.72, 0.80, 0.90, 1.00]):
        lines.append(f"c{i},d{i},0,,sface-2021dec-int8bq,{d},,,")
    results.write_text("\n".join(lines) + "\n")
    out = tmp_path / "cal.json"
    assert main(["calibrate", str(results), "--from-results", str(results), "--out", str(out)]) == 0
    cal = load_calibration(out, model="sface-2021dec-int8bq")
    # the fit is the (class-balanced) maximum-likelihood logistic curve: both score equations are zero there
    genuine = np.array([0.30, 0.35, 0.42, 0.50, 0.58, 0.62])
    impostor = np.array([0.55, 0.66, 0.72, 0.80, 0.90, 1.00])
    d = np.concatenate([genuine, impostor])
    y = np.repeat([1.0, 0.0], 6)
    p = np.array([cal.similarity(x) / 100 for x in d])
    assert abs(np.sum(y - p)) < 1e-6 and abs(np.sum((y - p) * d)) < 1e-6
    # the genuine and impostor means are 0.4617 and 0.7717; the curve's midpoint lies between the overlap's ends
    assert 0.55 < cal.midpoint < 0.62 and cal.similarity(0.30) > 90 and cal.similarity(1.00) < 2
    # each operating point's rates are the counts of the 12 pairs on either side of its distance
    assert [row["similarity_threshold"] for row in cal.operating_points] == [50, 70, 80, 90, 95, 99]
    for row in cal.operating_points:
        assert row["distance"] == pytest.approx(cal.distance_at(row["similarity_threshold"]), abs=1e-4)
        assert row["fmr"] == pytest.approx(np.sum(impostor <= row["distance"]) / 6)
        assert row["fnmr"] == pytest.approx(np.sum(genuine > row["distance"]) / 6)
    assert cal.operating_points[0]["fmr"] == pytest.approx(1 / 6)  # at the midpoint only 0.55 is below
    # the file is bound to the model whose distances it was fitted on
    assert main(["compare", "a.jpg", "b.jpg", "--calibration", str(out), "--recognizer", "dlib"]) == 2
    assert "fitted for the recognizer sface-2021dec-int8bq" in capsys.readouterr().err


def test_results_of_two_recognizers_are_not_mixed(tmp_path, capsys):
    results = tmp_path / "pairs.csv"
    results.write_text("first,second,same,fold,model,distance,similarity,decision,reasons\n"
                       "a,b,1,,sface-2021dec-int8bq,0.3,,,\nc,d,0,,dlib-resnet-v1,0.9,,,\n")
    assert main(["calibrate", str(results), "--from-results", str(results), "--out", str(tmp_path / "c.json")]) == 2
    assert "mixes distances of several recognizers" in capsys.readouterr().err


def test_evaluate_missing_pairs_file_is_an_error(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope.txt"), "--out", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err


def test_fold_without_pairs_is_an_error_for_every_source(tmp_path, capsys):
    results = tmp_path / "pairs.csv"
    results.write_text("first,second,same,fold,model,distance,similarity,decision,reasons\n"
                       "a,b,1,0,sface-2021dec-int8bq,0.3,,,\nc,d,0,0,sface-2021dec-int8bq,0.9,,,\n")
    for command in (["evaluate", str(results), "--from-results", str(results), "--out", str(tmp_path / "e")],
                    ["calibrate", str(results), "--from-results", str(results), "--out", str(tmp_path / "c.json")]):
        assert main([*command, "--fold", "3"]) == 2
        assert "No pairs in fold 3" in capsys.readouterr().err
