"""`synth-kyc`, `evaluate` and `calibrate` end to end on a tiny set made from the committed fixtures."""

from __future__ import annotations

import json
import shutil

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
    args = ["synth-kyc", "--faces", str(faces), "--n", "6", "--seed", "3", "--workers", "1", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    for i in range(6):
        name = f"images/{i:05d}_document.jpg"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    header = (tmp_path / "a" / "pairs.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["pair_id", "selfie", "document", "same"] and "rotation" in header

    out = tmp_path / "eval"
    assert main(["evaluate", str(tmp_path / "a" / "pairs.csv"), "--out", str(out), "--workers", "1",
                 "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pairs"] == 6 and "by_condition" in summary
    assert set(summary["by_condition"]["conditions"]) >= {"rotation", "size", "grayscale"}
    for plot in ("roc.png", "det.png", "histogram.png"):
        assert (out / plot).stat().st_size > 1000
    rows = (out / "pairs.csv").read_text().splitlines()
    assert len(rows) == 7 and rows[0].startswith("first,second,same")


def test_calibrate_from_results(tmp_path, capsys):
    results = tmp_path / "pairs.csv"
    lines = ["first,second,same,fold,distance,similarity,decision,reasons"]
    for i, d in enumerate([0.30, 0.35, 0.42, 0.50, 0.58, 0.62]):
        lines.append(f"a{i},b{i},1,,{d},,,")
    for i, d in enumerate([0.55, 0.66, 0.72, 0.80, 0.90, 1.00]):
        lines.append(f"c{i},d{i},0,,{d},,,")
    results.write_text("\n".join(lines) + "\n")
    out = tmp_path / "cal.json"
    assert main(["calibrate", str(results), "--from-results", str(results), "--out", str(out)]) == 0
    cal = load_calibration(out)
    assert 0.5 < cal.midpoint < 0.65 and cal.slope > 0
    assert [row["similarity_threshold"] for row in cal.operating_points][:3] == [50, 70, 80]


def test_evaluate_missing_pairs_file_is_an_error(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope.txt"), "--out", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
