"""The duplicate-identity sweep: which ids of a manifest show the same person?

``facecompare dedupe MANIFEST --out DIR`` reads rows ``id,image`` (local paths, relative to the manifest, or
``s3://bucket/key`` as in batch runs), indexes each row's largest face into a collection (by default a fresh
SQLite file ``DIR/collection.db``), then searches the collection with each indexed face and joins every pair
of faces that match at ``threshold`` or above into groups (union-find over the matches). A group is a set of
ids that, transitively, show one person: the candidates for a duplicate identity.

Resumable like ``batch``: each row is appended to ``DIR/rows.jsonl`` as soon as it is indexed (or fails), each
searched face to ``DIR/searched.jsonl``; running the same command again skips both. Indexing is idempotent
(the collection gives an image indexed again under the same external id the same face id), so a row indexed
but not yet written when the run was killed is indexed again without a second face.

Outputs: ``summary.json`` (rows, indexed, errors, groups, threshold, model), ``groups.csv`` (one line per id
of a group) and ``report.html`` (self-contained: each group's faces side by side, small thumbnails as data
URIs, with the similarity of each matching pair). No image is stored; the collection keeps embeddings
(delete ``DIR/collection.db`` to erase them).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .batch import manifest_rows
from .errors import FaceCompareError, InvalidParameterException, quote_input
from .journal import append, open_journal, read_journal
from .sources import ImageReader, resolve_location

DEFAULT_COLLECTION = "dedupe"
#: Similarity from which two rows count as one person. Stricter than compare's 80: a sweep of N faces makes N(N-1)/2
#: comparisons and union-find joins two groups through one false match; on 1,000 LFW images 80 chained 328 ids
#: into one group, 99 kept group precision 0.976 at recall 0.986 (README, "Duplicate identities")
DEFAULT_THRESHOLD = 99.0
DEFAULT_MAX_MATCHES = 100  # matches kept per searched face (Rekognition's MaxFaces); a group is rarely larger
CHUNK = 32  # rows handed to the worker threads at a time
_EXTERNAL_ID = re.compile(r"^[a-zA-Z0-9_.\-:]{1,255}$")  # Rekognition's ExternalImageId


@dataclass(frozen=True)
class DedupeRow:
    id: str
    image: str


def read_dedupe_manifest(path: str | Path) -> Iterator[DedupeRow]:
    """Rows of a CSV with columns id and image; relative paths are relative to the manifest's folder. Streamed."""
    base = Path(path).parent
    for line, row_id, row in manifest_rows(path, ("image",)):
        image = (row["image"] or "").strip()
        if not image:
            raise InvalidParameterException(f"{path} line {line}: empty image.")
        yield DedupeRow(row_id, resolve_location(base, image))


def external_image_id(row_id: str) -> str:
    """The ExternalImageId a row's face is indexed under: the row id when Rekognition's pattern allows it, else a
    digest of it. Distinct per row, so that one image under two ids (a planted duplicate) gives two faces."""
    if _EXTERNAL_ID.match(row_id):
        return row_id
    return "row-sha256-" + hashlib.sha256(row_id.encode()).hexdigest()[:40]


class UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[str]]:
        members: dict[str, list[str]] = {}
        for x in self.parent:
            members.setdefault(self.find(x), []).append(x)
        return [sorted(m) for m in members.values()]


def _chunks(rows: Iterable, size: int) -> Iterator[list]:
    chunk: list = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- the run ------------------------------------------------------------------------------------------------


class Deduper:
    """The collection and the reader of images; indexes one row or searches one face (thread-safe)."""

    def __init__(self, collections, collection_id: str, *, threshold: float, quality_filter: str = "NONE",
                 max_matches: int = DEFAULT_MAX_MATCHES, s3=None) -> None:
        self.collections = collections
        self.collection_id = collection_id
        self.threshold = threshold
        self.quality_filter = quality_filter
        self.max_matches = max_matches
        self.images = ImageReader(s3, collections.verifier.settings)

    def index_row(self, row: DedupeRow) -> dict:
        """The row's record: its largest face indexed, or the error (never an exception for bad input)."""
        record = {"id": row.id, "image": row.image}
        try:
            # every face that passes the filter is indexed (IndexFaces' MaxFaces would keep the best-quality face,
            # not the largest), then all but the largest are erased at once
            image = self.images.load(self.collections.verifier, row.image)  # typed errors for a bad file
            result = self.collections.index_faces(self.collection_id, image,
                                                  external_image_id=external_image_id(row.id),
                                                  quality_filter=self.quality_filter)
        except FaceCompareError as exc:
            return {**record, "status": "error", "error": exc.code, "message": exc.message}
        faces = [r.face for r in result.records] + [u.face for u in result.unindexed]
        largest = max(faces, key=lambda f: f.bounding_box.area, default=None)
        kept = next((r for r in result.records if r.face is largest), None)
        others = [r.stored.face_id for r in result.records if r is not kept]
        if others:
            self.collections.delete_faces(self.collection_id, others)
        if largest is None:
            return {**record, "status": "error", "error": "NO_FACE", "message": "No face found in the image."}
        if kept is None:
            reasons = next(u.reasons for u in result.unindexed if u.face is largest)
            return {**record, "status": "error", "error": "FACE_FILTERED",
                    "message": f"The largest face did not pass the quality filter ({', '.join(reasons)})."}
        stored = kept.stored
        b = stored.bounding_box
        return {**record, "status": "indexed", "face_id": stored.face_id, "faces_in_image": len(faces),
                "box": {"width": b[0], "height": b[1], "left": b[2], "top": b[3]},
                "confidence": round(float(stored.confidence), 4)}

    def search(self, face_id: str) -> dict:
        matches = self.collections.search_faces(self.collection_id, face_id, max_faces=self.max_matches,
                                                threshold=self.threshold)
        return {"face_id": face_id,
                "matches": [[m.face.face_id, round(float(m.similarity), 4)] for m in matches]}


def default_store_url(out: Path) -> str:
    return "sqlite:///" + str((out / "collection.db").resolve())


def run_dedupe(rows: Iterable[DedupeRow], out: str | Path, *, threshold: float = DEFAULT_THRESHOLD, store_url: str | None = None,
               collection_id: str | None = None, workers: int | None = None, progress: bool = True,
               total: int | None = None, quality_filter: str = "NONE", max_matches: int = DEFAULT_MAX_MATCHES,
               verifier=None, settings_kwargs: dict | None = None) -> dict:
    """Index every row, search every indexed face, group; write the outputs; return the summary."""
    from tqdm import tqdm

    from .collections.service import Collections
    from .collections.store import open_store
    from .errors import ResourceNotFoundException

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store_url = store_url or default_store_url(out)
    collection_id = collection_id or DEFAULT_COLLECTION
    run = {"store": _redacted(store_url), "collection": collection_id, "threshold": threshold,
           "quality_filter": quality_filter, "max_matches": max_matches}
    run_path = out / "run.json"
    searched_path = out / "searched.jsonl"
    if run_path.exists():
        earlier = json.loads(run_path.read_text())
        if (earlier.get("store"), earlier.get("collection")) != (run["store"], run["collection"]):
            raise InvalidParameterException(
                f"{out} holds a run on collection {quote_input(earlier.get('collection'))} of another store; "
                "use another --out folder, or the same --store and --collection.")
        if {k: earlier.get(k) for k in ("threshold", "quality_filter", "max_matches")} != \
                {k: run[k] for k in ("threshold", "quality_filter", "max_matches")}:
            searched_path.unlink(missing_ok=True)  # the searches depend on these: do them again
            if earlier.get("quality_filter") != quality_filter:
                (out / "rows.jsonl").unlink(missing_ok=True)
    run_path.write_text(json.dumps(run, indent=2) + "\n")

    if verifier is None:
        from .engine import Verifier
        from .settings import Settings

        verifier = Verifier(Settings.from_env(**(settings_kwargs or {})))
    store = open_store(store_url)
    try:
        collections = Collections(verifier, store)
        try:
            info = collections.describe_collection(collection_id)
        except ResourceNotFoundException:
            info = collections.create_collection(collection_id)
        deduper = Deduper(collections, collection_id, threshold=threshold, quality_filter=quality_filter,
                          max_matches=max_matches)
        rows_path = out / "rows.jsonl"
        done = read_journal(rows_path, "id")
        pending = (row for row in rows if row.id not in done)
        workers = max(1, workers or 2)
        bar = tqdm(total=total, initial=len(done), disable=not progress, unit="image", desc="indexing", smoothing=0.1)
        with open_journal(rows_path) as sink, ThreadPoolExecutor(workers) as pool:
            for chunk in _chunks(pending, CHUNK * workers):
                for record in pool.map(deduper.index_row, chunk):
                    append(sink, record)
                    done[record["id"]] = record
                    bar.update(1)
        bar.close()

        indexed = {r["face_id"]: r["id"] for r in done.values() if r["status"] == "indexed"}
        searched = read_journal(searched_path, "face_id")
        to_search = [f for f in sorted(indexed) if f not in searched]
        bar = tqdm(total=len(indexed), initial=len(indexed) - len(to_search), disable=not progress, unit="face",
                   desc="searching", smoothing=0.1)
        with open_journal(searched_path) as sink, ThreadPoolExecutor(workers) as pool:
            for chunk in _chunks(to_search, CHUNK * workers):
                for record in pool.map(deduper.search, chunk):
                    append(sink, record)
                    searched[record["face_id"]] = record
                    bar.update(1)
        bar.close()
        model = info.model
    finally:
        store.close()
    return write_outputs(out, done, searched, threshold=threshold, model=model)


def _redacted(url: str) -> str:
    """A store URL without its password (run.json must not hold credentials)."""
    return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", url)


def find_groups(rows: dict[str, dict], searched: dict[str, dict]) -> list[dict]:
    """Groups of two or more row ids whose faces match (union-find over the matches between rows' faces), each
    with its matching pairs (``a``, ``b``, ``similarity``; the higher of the two searches' figures), largest
    group first."""
    row_of = {r["face_id"]: r["id"] for r in rows.values() if r.get("status") == "indexed"}
    union = UnionFind()
    pairs: dict[tuple[str, str], float] = {}
    for face_id, record in searched.items():
        a = row_of.get(face_id)
        if a is None:
            continue
        for other, similarity in record["matches"]:
            b = row_of.get(other)  # a face of the collection that is not a row of this manifest is left out
            if b is None or b == a:
                continue
            key = (min(a, b), max(a, b))
            pairs[key] = max(similarity, pairs.get(key, 0.0))
            union.union(a, b)
    groups = []
    for members in union.groups():
        if len(members) < 2:
            continue
        inside = set(members)
        edges = sorted(({"a": a, "b": b, "similarity": s} for (a, b), s in pairs.items() if a in inside),
                       key=lambda e: (-e["similarity"], e["a"], e["b"]))
        groups.append({"ids": members, "pairs": edges})
    groups.sort(key=lambda g: (-len(g["ids"]), g["ids"][0]))
    for number, group in enumerate(groups, 1):
        group["group"] = number
    return groups


def write_outputs(out: Path, rows: dict[str, dict], searched: dict[str, dict], *, threshold: float,
                  model: str) -> dict:
    groups = find_groups(rows, searched)
    errors = sorted((r for r in rows.values() if r["status"] != "indexed"), key=lambda r: r["id"])
    by_error: dict[str, int] = {}
    for r in errors:
        by_error[r["error"]] = by_error.get(r["error"], 0) + 1
    summary = {
        "rows": len(rows),
        "indexed": sum(1 for r in rows.values() if r["status"] == "indexed"),
        "errors": len(errors),
        "errors_by_type": dict(sorted(by_error.items())),
        "groups": len(groups),
        "ids_in_groups": sum(len(g["ids"]) for g in groups),
        "matching_pairs": sum(len(g["pairs"]) for g in groups),  # pairs of ids that match directly
        "largest_group": max((len(g["ids"]) for g in groups), default=0),
        "threshold": threshold,
        "model": model,
    }
    with open(out / "groups.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["group", "id", "image", "best_similarity", "best_match"])
        for g in groups:
            for member in g["ids"]:
                edges = [e for e in g["pairs"] if member in (e["a"], e["b"])]
                best = max(edges, key=lambda e: e["similarity"])
                writer.writerow([g["group"], member, rows[member]["image"], f"{best['similarity']:.2f}",
                                 best["b"] if best["a"] == member else best["a"]])
    with open(out / "errors.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "image", "error", "message"])
        for r in errors:
            writer.writerow([r["id"], r["image"], r["error"], r.get("message", "")])
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "groups.json").write_text(json.dumps(groups, indent=2) + "\n")
    from .report import write_dedupe_report

    write_dedupe_report(out, rows, groups, errors, summary)
    return summary
