"""Batch runs: a manifest mixing local files and S3 objects, killed halfway and resumed without redoing or
losing rows; one selfie against a folder and an S3 prefix; the Dask engine on a local cluster giving the same
results; the HTML report rendered in headless Chromium."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BUCKET, skip_or_fail
from facecompare.batch import load_finished
from facecompare.cli import main

PEOPLE = {"colin": ["Colin_Powell_0001.jpg", "Colin_Powell_0002.jpg"],
          "serena": ["Serena_Williams_0001.jpg", "Serena_Williams_0002.jpg"], "tony": ["Tony_Blair_0001.jpg"]}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, fixtures, seaweedfs):
    """44 rows: genuine and impostor pairs, half of the documents read from S3, plus rows that must fail."""
    root = tmp_path_factory.mktemp("batch")
    images = root / "images"
    images.mkdir()
    for files in PEOPLE.values():
        for name in files:
            shutil.copy(fixtures / name, images / name)
            seaweedfs["client"].put_object(Bucket=BUCKET, Key=f"batch/{name}", Body=(fixtures / name).read_bytes())
    shutil.copy(fixtures / "id_back_mrz_only_che.jpg", images / "back.jpg")
    rows = []
    names = [n for files in PEOPLE.values() for n in files]
    person = {n: p for p, files in PEOPLE.items() for n in files}
    i = 0
    for a in names:
        for b in names:
            if a == b:
                continue
            for source in ("local", "s3"):
                document = f"images/{b}" if source == "local" else f"s3://{BUCKET}/batch/{b}"
                expected = "MATCH" if person[a] == person[b] else "NO_MATCH"
                rows.append((f"row{i:03d}", f"images/{a}", document, expected))
                i += 1
    rows += [("bad-missing-file", "images/nope.jpg", "images/Tony_Blair_0001.jpg", ""),
             ("bad-missing-object", "images/Tony_Blair_0001.jpg", f"s3://{BUCKET}/batch/nope.jpg", ""),
             ("no-face-document", "images/Tony_Blair_0001.jpg", "images/back.jpg", "NO_MATCH"),
             ("not-an-image", "images/Tony_Blair_0001.jpg", "manifest.csv", "")]
    path = root / "manifest.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "selfie", "document", "expected"])
        writer.writerows(rows)
    return path


def _results(out: Path) -> dict[str, dict]:
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)), "a row was done twice"
    return {r["id"]: r for r in records}


def test_batch_killed_halfway_resumes_without_redoing_or_losing_rows(manifest, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "facecompare.cli", "batch", str(manifest), "--out", str(out), "--workers", "2",
               "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    results = out / "results.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline:
        if results.exists() and len(results.read_text().splitlines()) >= 12:
            break
        if process.poll() is not None:
            pytest.fail("the batch finished before it could be interrupted: " + process.stderr.read().decode()[-500:])
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)  # the whole process group, workers included
    process.wait()
    text = results.read_text()
    kept = text[: text.rfind("\n") + 1]  # the complete lines (a line cut by the kill is dropped and redone)
    done_before = {json.loads(line)["id"] for line in kept.splitlines()}
    assert 12 <= len(done_before) < 44
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    final = results.read_text()
    # finished rows were kept byte for byte, not redone, and every row is there exactly once
    assert final.startswith(kept)
    assert len(final.splitlines()) == 44
    results_by_id = _results(out)
    assert len(results_by_id) == 44
    assert results_by_id["bad-missing-file"]["decision"] == "ERROR"
    assert "not found" in results_by_id["bad-missing-file"]["error"]
    assert results_by_id["bad-missing-object"]["error"].startswith("InvalidS3ObjectException")
    assert results_by_id["not-an-image"]["error"].startswith("InvalidImageFormatException")
    assert results_by_id["no-face-document"]["decision"] == "REVIEW"
    # Tony Blair's LFW photo shows a second, partly cut-off face: as a selfie it is REVIEW (MULTIPLE_FACES_IN_SELFIE)
    decided = [r for r in results_by_id.values() if r["id"].startswith("row") and r["decision"] != "REVIEW"]
    assert len(decided) >= 30
    assert all(r["correct"] for r in decided), [r["id"] for r in decided if not r["correct"]]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] == 44 and summary["with_expected"]["false_matches"] == 0
    with open(out / "results.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 44


@pytest.fixture(scope="module")
def local_run(manifest, tmp_path_factory):
    """One uninterrupted local run of the 44-row manifest (2 worker processes), shared by the Dask comparison and
    the report rendering (each ran the batch again before)."""
    out = tmp_path_factory.mktemp("local-run") / "out"
    assert main(["batch", str(manifest), "--out", str(out), "--workers", "2", "--no-progress"]) == 0
    return out


def test_dask_local_cluster_gives_the_same_results(manifest, local_run, tmp_path):
    """A representative 14 of the 44 rows (every fourth pair, each with its local and its S3 document, and the
    four rows that must fail or be reviewed) through Dask give exactly the local run's results."""
    with open(manifest, newline="") as handle:
        rows = list(csv.reader(handle))
    chosen = [r for r in rows[1:] if not r[0].startswith("row") or int(r[0][3:]) % 8 in (0, 1)]
    assert len(chosen) == 14
    subset = manifest.parent / "manifest-dask.csv"  # beside the manifest: the same relative image paths
    with open(subset, "w", newline="") as handle:
        csv.writer(handle).writerows([rows[0], *chosen])
    dask = tmp_path / "dask"
    assert main(["batch", str(subset), "--out", str(dask), "--engine", "dask", "--workers", "2", "--no-progress"]) == 0
    local, b = _results(local_run), _results(dask)
    assert sorted(b) == sorted(r[0] for r in chosen)
    a = {row_id: local[row_id] for row_id in b}
    assert {r["decision"] for r in a.values()} == {"MATCH", "NO_MATCH", "REVIEW", "ERROR"}
    for row_id in a:
        for key in ("decision", "reasons", "error"):
            assert a[row_id][key] == b[row_id][key], (row_id, key)
        # the same Similarity, to its printed precision (two processes may sum float32 products differently)
        if a[row_id]["similarity"] is None or b[row_id]["similarity"] is None:
            assert a[row_id]["similarity"] is b[row_id]["similarity"], row_id
        else:
            assert abs(a[row_id]["similarity"] - b[row_id]["similarity"]) <= 0.01, row_id


def test_one_selfie_against_folder_and_s3_prefix(fixtures, tmp_path, seaweedfs):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("Colin_Powell_0002.jpg", "Serena_Williams_0001.jpg", "Tony_Blair_0001.jpg"):
        shutil.copy(fixtures / name, folder / name)
        seaweedfs["client"].put_object(Bucket=BUCKET, Key=f"prefix-test/{name}", Body=(fixtures / name).read_bytes())
    selfie = str(fixtures / "Colin_Powell_0001.jpg")
    for documents, out in ((str(folder), tmp_path / "f"), (f"s3://{BUCKET}/prefix-test/", tmp_path / "s")):
        assert main(["batch", "--selfie", selfie, "--documents", documents, "--out", str(out), "--workers", "1",
                     "--no-progress"]) == 0
        results = _results(out)
        assert len(results) == 3
        decisions = {Path(k).name: v["decision"] for k, v in results.items()}
        assert decisions["Colin_Powell_0002.jpg"] == "MATCH"
        assert decisions["Serena_Williams_0001.jpg"] == "NO_MATCH"


def test_cut_last_line_is_dropped_and_redone(tmp_path):
    results = tmp_path / "results.jsonl"
    results.write_text('{"id": "a", "decision": "MATCH"}\n{"id": "b", "deci')
    assert load_finished(results) == {"a"}
    assert results.read_text() == '{"id": "a", "decision": "MATCH"}\n'


def test_bad_manifest_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "m.csv"
    path.write_text("id,selfie\n1,a.jpg\n")
    assert main(["batch", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "document" in capsys.readouterr().err


def test_report_renders_in_headless_chromium(local_run, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        skip_or_fail("Chromium is not installed (apt-get install chromium; .ci/run does this)")
    out = local_run
    results = _results(out)
    not_match = sum(1 for r in results.values() if r["decision"] != "MATCH")
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
                          (out / "report.html").as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert f'data-rows="{len(results)}"' in dom
    # two thumbnails per REVIEW / NO_MATCH / ERROR row, except the three images that cannot be read: the missing
    # selfie file (bad-missing-file), the missing S3 document (bad-missing-object), the CSV sent as a document
    # (not-an-image); each of those rows still shows its other, readable image
    assert {r["id"] for r in results.values() if r["decision"] == "ERROR"} == {
        "bad-missing-file", "bad-missing-object", "not-an-image"}
    loaded = int(dom.split('data-images-loaded="')[1].split('"')[0])
    assert loaded == 2 * not_match - 3
    assert dom.count("<img ") == loaded  # every thumbnail written decodes in the browser
    assert 'data-shown="44"' in dom


@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.parametrize("every", [pytest.param(10, id="100-pairs"),
                                   pytest.param(1, id="1000-pairs", marks=pytest.mark.full_size)])
def test_lfw_manifest_local_and_s3_killed_and_resumed(shared, seaweedfs, tmp_path, every):
    """LFW pairs from the first 500 genuine and 500 impostor of pairs.txt, every second document read from S3:
    killed halfway, restarted, all rows done exactly once, with a report. The default run takes every tenth of
    the 1,000 (50 genuine, 50 impostor, from the same folds: 200 images embedded instead of 2,000); the
    1,000-pair run is marked ``full_size`` (CI runs it: ``pytest -m full_size``)."""
    from facecompare.evaluation import read_lfw_pairs

    pairs = read_lfw_pairs(shared / "lfw" / "pairs.txt", shared / "lfw" / "lfw-deepfunneled")
    chosen = ([p for p in pairs if p.same][:500] + [p for p in pairs if not p.same][:500])[::every]
    n = len(chosen)
    assert n == 1000 // every and sum(p.same for p in chosen) == n // 2
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "selfie", "document", "expected"])
        for i, p in enumerate(chosen):
            document = p.second
            if i % 2:
                key = "lfw/" + "/".join(Path(p.second).parts[-2:])
                seaweedfs["client"].put_object(Bucket=BUCKET, Key=key, Body=Path(p.second).read_bytes())
                document = f"s3://{BUCKET}/{key}"
            writer.writerow([f"lfw{i:04d}", p.first, document, "MATCH" if p.same else "NO_MATCH"])
    out = tmp_path / "out"
    command = [sys.executable, "-m", "facecompare.cli", "batch", str(manifest), "--out", str(out), "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    results = out / "results.jsonl"
    deadline = time.time() + 1800
    while not (results.exists() and len(results.read_text().splitlines()) >= n // 2):
        assert process.poll() is None and time.time() < deadline
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    text = results.read_text()
    kept = text[: text.rfind("\n") + 1]
    assert n // 2 <= len(kept.splitlines()) < n
    finished = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert results.read_text().startswith(kept)  # the rows done before the kill were kept as they were
    after = _results(out)
    assert sorted(after) == [f"lfw{i:04d}" for i in range(n)]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] == n and summary["by_decision"].get("ERROR", 0) == 0
    assert summary["with_expected"]["accuracy_of_decided"] >= 0.98
    report = (out / "report.html").read_text()
    assert report.count("<tr data-decision=") == n and f"<p>{n} rows," in report
