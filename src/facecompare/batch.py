"""Batch verification over whole datasets: a manifest of (id, selfie, document[, expected]) rows, or one selfie
against every image in a folder or S3 prefix.

Images are local paths or ``s3://bucket/key`` on the configured S3-compatible store. Rows run in parallel worker
processes that load the models once (or on a Dask cluster, one model set per Dask worker); results are
appended to ``results.jsonl`` row by row, so an interrupted run resumes where it stopped, skipping finished rows.
Memory stays bounded: the manifest is streamed and at most a few chunks of rows are in flight.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import FaceCompareError, InvalidParameterException, quote_input
from .journal import append, open_journal, read_journal
from .sources import is_s3_url, resolve_location

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
CHUNK = 64  # rows handed to the workers at a time


@dataclass(frozen=True)
class BatchRow:
    id: str
    selfie: str
    document: str
    expected: str = ""  # MATCH / NO_MATCH (or same / different, 1 / 0) when known


def read_manifest(path: str | Path) -> Iterator[BatchRow]:
    """Rows of a CSV with columns id, selfie, document and optionally expected; relative paths are relative to the
    manifest's folder. Streamed, so a manifest of millions of rows costs no memory."""
    base = Path(path).parent
    for _, row_id, row in manifest_rows(path, ("selfie", "document")):
        yield BatchRow(row_id, _resolve(base, row["selfie"]), _resolve(base, row["document"]),
                       normalize_expected(row.get("expected") or ""))


def manifest_rows(path: str | Path, columns: tuple[str, ...]) -> Iterator[tuple[int, str, dict]]:
    """(line number, id, row) of a CSV manifest with an ``id`` column and ``columns``, streamed. A missing column,
    an empty id or an id seen before is InvalidParameterException naming the line (batch and dedupe manifests)."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"id", *columns} - set(reader.fieldnames or [])
        if missing:
            raise InvalidParameterException(f"{path} lacks the column(s) {', '.join(sorted(missing))}.")
        seen: set[str] = set()
        for line, row in enumerate(reader, start=2):
            row_id = (row["id"] or "").strip()
            if not row_id:
                raise InvalidParameterException(f"{path} line {line}: empty id.")
            if row_id in seen:
                raise InvalidParameterException(f"{path} line {line}: duplicate id {quote_input(row_id)}.")
            seen.add(row_id)
            yield line, row_id, row


def normalize_expected(value: str) -> str:
    v = value.strip().lower()
    if v in ("match", "same", "1", "true", "yes"):
        return "MATCH"
    if v in ("no_match", "nomatch", "different", "0", "false", "no"):
        return "NO_MATCH"
    return ""


def _resolve(base: Path, name: str) -> str:
    return resolve_location(base, (name or "").strip())


def rows_for_folder(selfie: str, documents: str, s3_reader=None) -> Iterator[BatchRow]:
    """One selfie against every JPEG/PNG in a folder or under an ``s3://bucket/prefix`` (sorted by name)."""
    if is_s3_url(documents):
        from .storage import parse_s3_url

        bucket, _, prefix = documents[5:].partition("/")
        if not bucket:
            parse_s3_url(documents)
        client = (s3_reader or _default_s3()).client()
        paginator = client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if key.lower().endswith(IMAGE_SUFFIXES):
                        yield BatchRow(key, selfie, f"s3://{bucket}/{key}")
        except Exception as exc:  # botocore errors: the listing itself failed
            from .errors import InvalidS3ObjectException

            raise InvalidS3ObjectException(f"Cannot list {documents}: {exc}") from None
        return
    folder = Path(documents)
    if not folder.is_dir():
        raise InvalidParameterException(f"--documents {documents} is not a folder or an s3:// prefix.")
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        yield BatchRow(str(path.relative_to(folder)), selfie, str(path))


def _default_s3():
    from .storage import S3Reader

    return S3Reader()


# -- one row -------------------------------------------------------------------------------------------------


class RowProcessor:
    """Loads the models once; turns a row into a result dictionary (errors become ERROR rows, never exceptions)."""

    def __init__(self, threshold: float = 80.0, settings_kwargs: dict | None = None, *, settings=None) -> None:
        """``settings`` (a :class:`~facecompare.settings.Settings`), else ``Settings.from_env(**settings_kwargs)``."""
        from .engine import Verifier
        from .settings import Settings
        from .sources import ImageReader

        self.verifier = Verifier(settings or Settings.from_env(**(settings_kwargs or {})))
        self.verifier.warm()
        self.images = ImageReader(settings=self.verifier.settings)
        self.threshold = threshold

    def read(self, location: str):
        # an S3 object decoded here (it may be up to 15 MB, inline bytes only 5 MB); a path as it is
        return self.images.source(self.verifier, location)

    def __call__(self, row: BatchRow) -> dict:
        from .native import face_summary, other_faces

        result = {"id": row.id, "selfie": row.selfie, "document": row.document, "expected": row.expected}
        try:
            v = self.verifier.verify(self.read(row.selfie), self.read(row.document), self.threshold)
            result.update({
                "model": self.verifier.recognizer.name,
                "threshold": v.threshold,
                "review_band": list(v.review_band),
                "decision": v.decision,
                "similarity": None if v.similarity is None else round(v.similarity, 4),
                "distance": None if v.distance is None else round(v.distance, 6),
                "reasons": v.reasons,
                "notes": v.notes,
                "selfie_face": face_summary(v.selfie_face),
                "document_face": face_summary(v.document_face),
                "selfie_faces": len(v.selfie.faces) if v.selfie else 0,
                "document_faces": len(v.document.faces) if v.document else 0,
                "other_faces": other_faces(v),
                "error": "",
            })
        except FaceCompareError as exc:
            result.update({"decision": "ERROR", "similarity": None, "distance": None, "reasons": [exc.code],
                           "notes": [], "selfie_face": None, "document_face": None, "error": f"{exc.code}: {exc.message}"})
        if row.expected:
            result["correct"] = result["decision"] == row.expected
        return result


_processor: RowProcessor | None = None


def _init_worker(threshold: float, settings) -> None:
    global _processor
    from dataclasses import replace

    _processor = RowProcessor(threshold, settings=replace(settings, threads=1))


def _run_row(row: BatchRow) -> dict:
    return _processor(row)


# -- results file (resume) -----------------------------------------------------------------------------------


def load_finished(results: Path) -> set[str]:
    """Ids already in ``results.jsonl``. A line cut by a kill is dropped from the file (that row runs again)."""
    return set(read_journal(results, "id"))


def _chunks(rows: Iterable[BatchRow], size: int) -> Iterator[list[BatchRow]]:
    chunk: list[BatchRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run_batch(rows: Iterable[BatchRow], out: str | Path, *, threshold: float = 80.0, workers: int | None = None,
              engine: str = "local", scheduler: str | None = None, progress: bool = True, total: int | None = None,
              settings_kwargs: dict | None = None, settings=None, on_result=None) -> Path:
    """Verify every row, appending to ``out/results.jsonl``; then write results.csv, summary.json, report.html.
    ``on_result(result)`` is called in this process after each row's line is written (``--queue-review``).
    Every worker uses ``settings`` (default ``Settings.from_env(**settings_kwargs)``); one that cannot start
    (a model that does not load, no calibration for the recognizer) stops the run with its error."""
    from tqdm import tqdm

    from .settings import Settings

    if settings is None:
        settings = Settings.from_env(**(settings_kwargs or {}))
    if engine == "dask":
        from .extras import require_extra

        require_extra("batch", "--engine dask")

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    finished = load_finished(results_path)
    pending = (row for row in rows if row.id not in finished)
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=total, initial=len(finished), disable=not progress, unit="pair", desc="verifying",
               smoothing=0.1)
    with open_journal(results_path) as sink:
        def write(result: dict) -> None:
            append(sink, result)
            if on_result is not None:
                on_result(result)
            bar.update(1)

        if engine == "dask":
            _run_dask(pending, write, threshold, scheduler, workers, settings)
        elif workers <= 1:
            processor = RowProcessor(threshold, settings=settings)
            for row in pending:
                write(processor(row))
        else:
            from .workers import WorkerPool

            with WorkerPool(workers, _init_worker, (threshold, settings)) as pool:
                for chunk in _chunks(pending, CHUNK * workers):
                    for result in pool.map_unordered(_run_row, chunk):
                        write(result)
    bar.close()
    write_outputs(out, threshold)
    return out


def _run_dask(rows: Iterable[BatchRow], write, threshold: float, scheduler: str | None, workers: int,
              settings) -> None:
    """Rows on a Dask cluster (``scheduler`` address, or a local cluster of ``workers`` processes); the models
    load once per Dask worker (a worker plugin), rows stream in chunks so memory stays bounded."""
    from dask.distributed import Client, LocalCluster, WorkerPlugin, as_completed

    class ModelPlugin(WorkerPlugin):
        name = "facecompare-models"

        def setup(self, worker):
            from dataclasses import replace

            worker.facecompare = RowProcessor(threshold, settings=replace(settings, threads=1))

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        from .models.cpu import ENGINE_PROCESSES_VARIABLE

        # the worker processes start now and inherit it: each takes its share of the cores (models/cpu.py)
        before = os.environ.get(ENGINE_PROCESSES_VARIABLE)
        os.environ[ENGINE_PROCESSES_VARIABLE] = str(max(1, workers))
        try:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        finally:
            if before is None:
                os.environ.pop(ENGINE_PROCESSES_VARIABLE, None)
            else:
                os.environ[ENGINE_PROCESSES_VARIABLE] = before
        client = Client(cluster)
    try:
        client.register_plugin(ModelPlugin())
        for chunk in _chunks(rows, CHUNK * max(1, workers)):
            futures = client.map(_dask_row, chunk, pure=False)
            for future in as_completed(futures):
                write(future.result())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _dask_row(row: BatchRow) -> dict:
    from dask.distributed import get_worker

    return get_worker().facecompare(row)


# -- outputs -------------------------------------------------------------------------------------------------


def read_results(out: Path) -> list[dict]:
    with open(out / "results.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_outputs(out: Path, threshold: float) -> dict:
    results = read_results(out)
    results.sort(key=lambda r: r["id"])
    columns = ["id", "selfie", "document", "decision", "similarity", "distance", "reasons", "notes", "expected",
               "correct", "error", "selfie_box", "document_box"]
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for r in results:
            writer.writerow({
                **{k: r.get(k, "") for k in ("id", "selfie", "document", "decision", "similarity", "distance",
                                             "expected", "error")},
                "reasons": ";".join(r.get("reasons") or []),
                "notes": ";".join(r.get("notes") or []),
                "correct": "" if "correct" not in r else int(bool(r["correct"])),
                "selfie_box": _box(r.get("selfie_face")),
                "document_box": _box(r.get("document_face")),
            })
    summary = summarize_results(results, threshold)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    from .report import write_report

    write_report(out, results, summary)
    return summary


def _box(face: dict | None) -> str:
    if not face:
        return ""
    b = face["bounding_box"]
    return f"{b['left']:.4f} {b['top']:.4f} {b['width']:.4f} {b['height']:.4f}"


def summarize_results(results: list[dict], threshold: float) -> dict:
    by_decision: dict[str, int] = {}
    by_reason: dict[str, int] = {}
    for r in results:
        by_decision[r["decision"]] = by_decision.get(r["decision"], 0) + 1
        for reason in r.get("reasons") or []:
            by_reason[reason] = by_reason.get(reason, 0) + 1
    summary = {"rows": len(results), "threshold": threshold, "by_decision": by_decision, "by_reason": by_reason}
    labelled = [r for r in results if r.get("expected")]
    if labelled:
        decided = [r for r in labelled if r["decision"] in ("MATCH", "NO_MATCH")]
        summary["with_expected"] = {
            "rows": len(labelled),
            "decided": len(decided),
            "accuracy_of_decided": sum(r["correct"] for r in decided) / len(decided) if decided else None,
            "false_matches": sum(1 for r in decided if r["decision"] == "MATCH" and r["expected"] == "NO_MATCH"),
            "false_non_matches": sum(1 for r in decided if r["decision"] == "NO_MATCH" and r["expected"] == "MATCH"),
            "review_or_error": len(labelled) - len(decided),
        }
    return summary
