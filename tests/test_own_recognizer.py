"""Bringing your own recognizer (README, "Bring your own model"), through the real command line and its worker
processes, with the shipped SFace file as the stand-in: `evaluate` before any calibration exists (threshold-free
figures), `calibrate`, then the fitted file giving Similarity in `evaluate`, `batch`, `compare`, the library and
the service. A worker that cannot start stops the command at once (exit 2, one message), never a loop of pool
restarts: every command here runs under a timeout, so a hang fails the test."""

from __future__ import annotations

import csv
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import facecompare
from conftest import FIXTURES, ServeProcess
from facecompare import InvalidParameterException, Settings, Verifier
from facecompare.models import create_recognizer
from facecompare.scoring import Calibration, load_calibration

pytestmark = pytest.mark.slow

SFACE_FILE = Path(facecompare.__file__).parent / "models" / "weights" / "face_recognition_sface_2021dec_int8bq.onnx"
#: SFace takes 0-255 RGB (not ArcFace's default (x - 127.5) / 127.5): the options a user states for their model
SPEC = f"onnx:{SFACE_FILE}?size=112&channels=rgb&mean=0&std=1"
TIMEOUT = 300  # seconds for one command on a busy 2-core machine; the bug this guards was an endless loop
# evaluate and calibrate embed in one worker process here (``--workers 1`` still goes through the pool), quicker
# than two on a busy 2-core machine; batch with one worker runs in-process, so it is given two
IMAGES = ["Colin_Powell_0001", "Colin_Powell_0002", "Serena_Williams_0001", "Serena_Williams_0002",
          "Tony_Blair_0001", "biden", "obama"]


def _person(name: str) -> str:
    return name.rsplit("_", 1)[0]


def _cli(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("FACECOMPARE_RECOGNIZER", "FACECOMPARE_CALIBRATION")}
    return subprocess.run([sys.executable, "-m", "facecompare.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def _one_error(result: subprocess.CompletedProcess) -> str:
    """The command failed with exit 2 and printed its error once, without a traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout[-1000:], result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), result.stderr[-3000:]
    return errors[0]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    """Every pair of seven committed photos: 2 genuine, 19 impostor."""
    path = tmp_path_factory.mktemp("pairs") / "pairs.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["selfie", "document", "same"])
        for a, b in itertools.combinations(IMAGES, 2):
            writer.writerow([FIXTURES / f"{a}.jpg", FIXTURES / f"{b}.jpg", int(_person(a) == _person(b))])
    return path


@pytest.fixture(scope="module")
def fitted(pairs, tmp_path_factory) -> Path:
    """`facecompare calibrate` on the pairs: it embeds through the worker processes, as evaluate does."""
    out = tmp_path_factory.mktemp("calibrate") / "calibration.json"
    result = _cli("calibrate", str(pairs), "--recognizer", SPEC, "--workers", "1", "--no-progress", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert f"Recognizer: {create_recognizer(SPEC).name}" in result.stdout
    return out


def test_evaluate_without_a_calibration_reports_the_threshold_free_figures(pairs, tmp_path):
    out = tmp_path / "out"
    result = _cli("evaluate", str(pairs), "--recognizer", SPEC, "--workers", "1", "--no-progress", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "Pairs: 21 (2 genuine, 19 impostor); images: 7, no usable face in 0" in result.stdout
    assert "ROC AUC: 1.00000   EER: 0.00 %" in result.stdout
    assert "TAR at FMR 0.01: 100.00 %" in result.stdout
    assert "Similarity operating points: none" in result.stdout and "facecompare calibrate" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == create_recognizer(SPEC).name
    assert summary["roc_auc"] == 1.0 and summary["operating_points"] == []
    rows = list(csv.DictReader(open(out / "pairs.csv")))
    assert len(rows) == 21 and all(r["distance"] and not r["similarity"] for r in rows)


def test_calibrate_then_evaluate_with_the_fitted_file(pairs, fitted, tmp_path):
    model = create_recognizer(SPEC).name
    calibration = load_calibration(fitted, model=model)
    by_threshold = {row["similarity_threshold"]: row for row in calibration.operating_points}
    assert by_threshold[80]["fmr"] == 0 and by_threshold[80]["fnmr"] == 0
    out = tmp_path / "out"
    result = _cli("evaluate", str(pairs), "--recognizer", SPEC, "--calibration", str(fitted), "--workers", "1",
                  "--no-progress", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Similarity >= 80 (distance <= " in result.stdout and "Similarity operating points: none" not in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert [p["similarity_threshold"] for p in summary["operating_points"]] == [80, 90, 95, 99]
    assert summary["operating_points"][0]["accuracy"] == 1.0
    rows = list(csv.DictReader(open(out / "pairs.csv")))
    assert {r["decision"] for r in rows if r["same"] == "1"} == {"MATCH"}
    assert {r["decision"] for r in rows if r["same"] == "0"} == {"NO_MATCH"}
    assert all(0 <= float(r["similarity"]) <= 100 for r in rows)


def test_batch_compare_library_and_service_give_similarity_with_the_fitted_file(fitted, tmp_path):
    manifest = tmp_path / "manifest.csv"
    rows = [("genuine", "Colin_Powell_0001", "Colin_Powell_0002"), ("impostor", "Colin_Powell_0001", "obama"),
            ("genuine2", "Serena_Williams_0001", "Serena_Williams_0002")]
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "selfie", "document"])
        writer.writerows([(i, FIXTURES / f"{a}.jpg", FIXTURES / f"{b}.jpg") for i, a, b in rows])
    # batch: the calibration reaches the worker processes, which verify
    out = tmp_path / "batch"
    result = _cli("batch", str(manifest), "--recognizer", SPEC, "--calibration", str(fitted), "--workers", "2",
                  "--no-progress", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    results = {r["id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert {k: r["decision"] for k, r in results.items()} == {"genuine": "MATCH", "impostor": "NO_MATCH",
                                                                "genuine2": "MATCH"}
    assert all(r["model"] == create_recognizer(SPEC).name and r["similarity"] is not None for r in results.values())
    # without it, batch stops before any work, with the error telling what to do
    refused = _cli("batch", str(manifest), "--recognizer", SPEC, "--workers", "2", "--no-progress",
                   "--out", str(tmp_path / "refused"), timeout=120)
    assert "No calibration ships for the recognizer" in _one_error(refused)
    assert not (tmp_path / "refused").exists()  # refused before any work
    # compare
    compared = _cli("compare", str(FIXTURES / "Colin_Powell_0001.jpg"), str(FIXTURES / "Colin_Powell_0002.jpg"),
                    "--recognizer", SPEC, "--calibration", str(fitted))
    assert compared.returncode == 0 and "Decision:    MATCH" in compared.stdout, compared.stdout + compared.stderr
    # the library
    verifier = Verifier(Settings(recognizer=SPEC, calibration=str(fitted), threads=1))
    v = verifier.verify(FIXTURES / "Colin_Powell_0001.jpg", FIXTURES / "Colin_Powell_0002.jpg")
    assert v.decision == "MATCH" and v.similarity == pytest.approx(results["genuine"]["similarity"], abs=1e-3)
    uncalibrated = Verifier(Settings(recognizer=SPEC, threads=1))
    with pytest.raises(InvalidParameterException, match="No calibration ships"):
        uncalibrated.verify(FIXTURES / "Colin_Powell_0001.jpg", FIXTURES / "Colin_Powell_0002.jpg")
    # the service, from its settings
    service = ServeProcess(tmp_path, access="AKID", secret="secret", api_key_name="t", api_key="key-of-the-test",
                           env={"FACECOMPARE_RECOGNIZER": SPEC, "FACECOMPARE_CALIBRATION": str(fitted)})
    try:
        service.wait_ready()
        files = {"selfie": ("a.jpg", (FIXTURES / "Colin_Powell_0001.jpg").read_bytes()),
                 "document": ("b.jpg", (FIXTURES / "obama.jpg").read_bytes())}
        r = httpx.post(service.url + "/v1/verify", files=files, headers={"X-API-Key": "key-of-the-test"}, timeout=120)
        assert r.status_code == 200, r.text
        assert r.json()["decision"] == "NO_MATCH"
        assert r.json()["similarity"] == pytest.approx(results["impostor"]["similarity"], abs=1e-3)
    finally:
        service.stop()


def test_dedupe_with_the_fitted_file(fitted, tmp_path):
    manifest = tmp_path / "manifest.csv"
    names = ["Colin_Powell_0001", "Colin_Powell_0002", "Serena_Williams_0001", "Serena_Williams_0002", "obama"]
    manifest.write_text("id,image\n" + "".join(f"{n},{FIXTURES / n}.jpg\n" for n in names))
    result = _cli("dedupe", str(manifest), "--recognizer", SPEC, "--calibration", str(fitted), "--threshold", "80",
                  "--no-progress", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr[-3000:]
    groups = json.loads((tmp_path / "out" / "groups.json").read_text())
    assert sorted(g["ids"] for g in groups) == [names[:2], names[2:4]]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["model"] == create_recognizer(SPEC).name
    refused = _cli("dedupe", str(manifest), "--recognizer", SPEC, "--no-progress", "--out", str(tmp_path / "no"),
                   timeout=120)
    assert "No calibration ships for the recognizer" in _one_error(refused)
    assert not (tmp_path / "no").exists()  # refused before any image was indexed


def test_serve_without_a_calibration_for_its_recognizer_stops_at_once():
    result = _cli("serve", "--recognizer", SPEC, "--no-auth", "--port", "9", timeout=120)
    assert "No calibration ships for the recognizer" in _one_error(result)


@pytest.fixture
def broken_model(tmp_path) -> str:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    return f"onnx:{broken}"


def test_a_worker_that_cannot_start_stops_evaluate_and_calibrate(pairs, broken_model, tmp_path):
    for command, workers in (("evaluate", "2"), ("calibrate", "1")):
        result = _cli(command, str(pairs), "--recognizer", broken_model, "--workers", workers, "--no-progress",
                      "--out", str(tmp_path / command), timeout=180)
        assert "error: InternalServerError: The recognizer model onnx-broken-" in _one_error(result)
        assert "cannot be loaded" in result.stderr
    missing = _cli("evaluate", str(pairs), "--recognizer", f"onnx:{tmp_path / 'none.onnx'}", "--workers", "2",
                   "--no-progress", "--out", str(tmp_path / "missing"), timeout=120)
    assert "does not exist" in _one_error(missing)


def test_a_worker_that_cannot_start_stops_batch(broken_model, tmp_path):
    calibration = tmp_path / "calibration.json"  # a calibration of the broken file: the workers get to load it
    Calibration(slope=10.0, midpoint=0.5, model=create_recognizer(broken_model).name).save(calibration)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"id,selfie,document\na,{FIXTURES / 'obama.jpg'},{FIXTURES / 'biden.jpg'}\n"
                        f"b,{FIXTURES / 'biden.jpg'},{FIXTURES / 'obama.jpg'}\n")
    result = _cli("batch", str(manifest), "--recognizer", broken_model, "--calibration", str(calibration),
                  "--workers", "2", "--no-progress", "--out", str(tmp_path / "out"), timeout=180)
    assert "cannot be loaded" in _one_error(result)


def test_settings_given_in_code_reach_the_worker_processes(tmp_path):
    """Not only what the environment says: a Settings object built in the parent is what the workers use."""
    from facecompare.batch import BatchRow, read_results, run_batch
    from facecompare.evaluation import embed_images

    tiny = Settings(max_file_bytes=1000)  # every fixture photo is larger
    paths = [str(FIXTURES / "obama.jpg"), str(FIXTURES / "biden.jpg")]
    embedded = embed_images(paths, workers=1, settings=tiny, progress=False)  # one worker process
    assert {reason for _, reason, _ in embedded.values()} == {"ImageTooLargeException"}
    out = run_batch([BatchRow("a", *paths), BatchRow("b", *reversed(paths))], tmp_path / "out", workers=2,
                    settings=tiny, progress=False)
    assert {r["error"].split(":")[0] for r in read_results(out)} == {"ImageTooLargeException"}
