"""Face collections (1:N search): exact against approximate search at 10k, 100k and 1M faces, and the measurement
behind the choice of the approximate-search library.

    python benchmarks/bench_collections.py search [--sizes 10000,100000] [--out benchmarks/results/collections.json]
    python benchmarks/bench_collections.py libraries [--size 100000] [--settings usearch:16:128:f32,...]
    python benchmarks/bench_collections.py build [--size 20000]
    python benchmarks/bench_collections.py strangers [--sizes 0,10000,100000]
    python benchmarks/bench_collections.py store [--sizes 10000,100000] [--engines sqlite,postgresql] [--images 40]

Data. Real SFace embeddings of LFW faces (``--lfw``, embedded once with ``Verifier.analyze(path, embed=1,
max_faces=1)`` and cached in ``--cache``, outside the repository: they are faces), up to 3 images of each person
with at least 2 (capped at 3,600) plus 400 people with one image. The collection is padded to the size asked with
synthetic vectors drawn from a Gaussian fitted to the real embeddings (their mean and full 128 x 128 covariance,
then L2-normalised): isotropic random unit vectors would sit far apart (cosine distance ~1) and make approximate
search look easier than it is; these sit where faces sit. Queries are real faces left out of the collection: one
image of each person with another image in it ("mated": the true match is in the collection) and the 400 people
with a single image ("unmated": the nearest neighbour is some stranger, the hard case for an approximate index).

recall@1: the approximate top-1 is the exact top-1 (numpy brute force in float32 over the same vectors);
miss_gap_p99 (``search``): the 99th percentile, over the queries, of how much farther (cosine distance) the
approximate top-1 is than the exact one (0 on a hit), i.e. what a miss costs in Similarity.
Latency: one query at a time, one thread per search (BLAS limited to 2 threads for exact), p50/p95 in ms.
Memory: growth of the process's anonymous resident memory (RssAnon) when the index is built, each setting in a fresh
process, and the index's own figure where the library gives one.

``store``: IndexFaces throughput through ``Collections`` on 1 MP images (``bench_index_faces``), and storing a
collection then loading it as a replica does on its first search (``bench_load``: ``all_embeddings`` and the index
build), on SQLite and PostgreSQL (a throwaway cluster unless ``--postgres URL``).
"""

from __future__ import annotations

import os

# one query at a time on a 2-core machine: cap every thread pool before numpy / faiss load
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from multiprocessing import get_context  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LFW = Path(os.environ.get("FACECOMPARE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "lfw" / "lfw-deepfunneled"
CACHE = Path(tempfile.gettempdir()) / "facecompare-bench-lfw-sface.npz"
LATENCY_QUERIES = 400


# ----------------------------------------------------------------------------------------------------------- data
def embed_lfw(lfw: Path, cache: Path, multi_cap: int = 3600, singles: int = 400) -> None:
    """Embed LFW once (about 0.1 s per image) into ``cache``: names, files and a float32 matrix."""
    from facecompare.engine import Verifier

    multi, single = [], []
    for person in sorted(p for p in lfw.iterdir() if p.is_dir()):
        images = sorted(person.glob("*.jpg"))
        (multi if len(images) >= 2 else single).append((person.name, images))
    paths = [(name, f) for name, images in multi for f in images[:3]][:multi_cap]
    pick = np.random.default_rng(0).choice(len(single), min(singles, len(single)), replace=False)
    paths += [(single[i][0], single[i][1][0]) for i in sorted(pick)]
    verifier = Verifier()
    names, files, vectors = [], [], []
    for name, f in paths:
        faces = verifier.analyze(str(f), embed=1, max_faces=1).faces
        if faces and faces[0].embedding is not None:
            vectors.append(np.asarray(faces[0].embedding.vector, dtype=np.float32))
            names.append(name)
            files.append(f.name)
    np.savez(cache, X=np.array(vectors, dtype=np.float32), names=np.array(names), files=np.array(files))


def load_real(cache: Path, lfw: Path) -> tuple[np.ndarray, np.ndarray]:
    if not cache.exists():
        print(f"embedding LFW from {lfw} into {cache} (once; a few minutes)", file=sys.stderr)
        embed_lfw(lfw, cache)
    data = np.load(cache)
    return data["X"].astype(np.float32), data["names"]


def synthetic(real: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    """``n`` unit vectors from a Gaussian fitted to ``real`` (mean and full covariance), L2-normalised."""
    rng = np.random.default_rng(seed)
    mean = real.mean(axis=0).astype(np.float64)
    factor = np.linalg.cholesky(np.cov(real, rowvar=False) + 1e-9 * np.eye(real.shape[1]))
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        z = mean + rng.standard_normal((stop - start, real.shape[1])) @ factor.T
        out[start:stop] = z / np.linalg.norm(z, axis=1, keepdims=True)
    return out


def split(real: np.ndarray, names: np.ndarray, size: int, queries: int = 0) -> dict:
    """The collection (real faces not used as queries, then synthetic ones up to ``size``) and the queries (all, or
    about ``queries`` of them in the same mated / unmated proportion; the faces not asked stay out of the collection)."""
    first: dict[str, int] = {}
    counts: dict[str, int] = {}
    for i, name in enumerate(names):
        counts[name] = counts.get(name, 0) + 1
        first.setdefault(name, i)
    mated = [first[n] for n in first if counts[n] >= 2]  # their other images stay in the collection
    unmated = [first[n] for n in first if counts[n] == 1]
    held = set(mated) | set(unmated)
    if 0 < queries < len(held):
        share = queries / len(held)
        mated, unmated = mated[:round(len(mated) * share)], unmated[:round(len(unmated) * share)]
    indexed = np.array([i for i in range(len(real)) if i not in held])
    base = real[indexed]
    size = size or len(base)  # 0: the real faces only
    if size > len(base):
        base = np.vstack([base, synthetic(real, size - len(base))])
    return {"X": np.ascontiguousarray(base[:size]), "Q": real[mated + unmated], "mated": len(mated),
            "unmated": len(unmated), "real_indexed": int(min(size, len(indexed)))}


def exact_top(X: np.ndarray, Q: np.ndarray, k: int = 1, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Reference: brute-force cosine distance (1 - cos) in float32; rows of indices and distances, nearest first."""
    ids = np.empty((len(Q), k), dtype=np.int64)
    dist = np.empty((len(Q), k), dtype=np.float32)
    for start in range(0, len(Q), chunk):
        d = 1.0 - Q[start:start + chunk] @ X.T
        part = np.argpartition(d, k - 1, axis=1)[:, :k] if k < X.shape[0] else np.tile(np.arange(X.shape[0]), (len(d), 1))
        pd = np.take_along_axis(d, part, axis=1)
        order = np.argsort(pd, axis=1)
        ids[start:start + chunk] = np.take_along_axis(part, order, axis=1)
        dist[start:start + chunk] = np.take_along_axis(pd, order, axis=1)
    return ids, dist


def rss_anon() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def percentiles(samples: list[float]) -> tuple[float, float]:
    a = np.array(samples) * 1000
    return round(float(np.percentile(a, 50)), 3), round(float(np.percentile(a, 95)), 3)


def search_latency(search, queries: np.ndarray, ef: int) -> tuple[float, float]:
    """p50 and p95 in ms of a top-10 search at ``ef`` over the first LATENCY_QUERIES queries."""
    times = []
    for q in queries[:LATENCY_QUERIES]:
        t = time.perf_counter()
        search(q, 10, ef)
        times.append(time.perf_counter() - t)
    return percentiles(times)


# ------------------------------------------------------------------------------------------------------ libraries
def _build(lib: str, X: np.ndarray, m: int, ef_construction: int, dtype: str, threads: int = 2):
    """(index, search(q, k, ef) -> ids, own bytes or None), built with ``threads`` threads."""
    n, d = X.shape
    if lib == "usearch":
        from usearch.index import Index

        index = Index(ndim=d, metric="cos", dtype=dtype, connectivity=m, expansion_add=ef_construction)
        index.add(np.arange(n, dtype=np.uint64), X, threads=threads)

        def search(q, k, ef):
            index.expansion_search = ef
            return index.search(q, k, threads=1).keys

        return index, search, lambda: int(index.memory_usage)
    if lib == "faiss":
        import faiss

        faiss.omp_set_num_threads(threads)
        if dtype == "f32":
            index = faiss.IndexHNSWFlat(d, m, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_fp16 if dtype == "f16" else faiss.ScalarQuantizer.QT_8bit,
                                      m, faiss.METRIC_INNER_PRODUCT)
            index.train(X[: min(n, 50_000)])
        index.hnsw.efConstruction = ef_construction
        index.add(X)

        def search(q, k, ef):
            faiss.omp_set_num_threads(1)
            index.hnsw.efSearch = ef
            return index.search(q.reshape(1, -1) if q.ndim == 1 else q, k)[1]

        return index, search, lambda: int(faiss.serialize_index(index).nbytes) if n <= 200_000 else None
    if lib == "hnswlib":
        import hnswlib

        index = hnswlib.Index(space="cosine", dim=d)
        index.init_index(max_elements=n, M=m, ef_construction=ef_construction)
        index.set_num_threads(threads)
        index.add_items(X, np.arange(n))

        def search(q, k, ef):
            index.set_num_threads(1)
            index.set_ef(max(ef, k))
            return index.knn_query(q, k)[0]

        def own():
            with tempfile.NamedTemporaryFile() as f:
                index.save_index(f.name)
                return os.path.getsize(f.name)

        return index, search, own
    raise ValueError(lib)


def run_library(lib: str, data_path: str, m: int, ef_construction: int, dtype: str, efs: list[int]) -> list[dict]:
    """One build, in a fresh process; recall@1 and latency for each ef_search."""
    data = np.load(data_path)
    X, Q, top1, mated = data["X"], data["Q"], data["top1"], int(data["mated"])
    gc.collect()
    before = rss_anon()
    started = time.perf_counter()
    index, search, own = _build(lib, X, m, ef_construction, dtype)
    build = time.perf_counter() - started
    gc.collect()
    grown = rss_anon() - before
    own_bytes = own()
    rows = []
    for ef in efs:
        found = np.array([int(np.asarray(search(q, 1, ef)).reshape(-1)[0]) for q in Q])
        hit = found == top1
        p50, p95 = search_latency(search, Q, ef)
        rows.append({"library": lib, "dtype": dtype, "M": m, "ef_construction": ef_construction, "ef_search": ef,
                     "n": len(X), "recall_at_1": round(float(hit.mean()), 4),
                     "recall_at_1_mated": round(float(hit[:mated].mean()), 4),
                     "recall_at_1_unmated": round(float(hit[mated:].mean()), 4), "p50_ms": p50, "p95_ms": p95,
                     "build_s": round(build, 2), "add_per_s": round(len(X) / build),
                     "rss_growth_mb": round(grown / 2**20, 1),
                     "index_mb": None if own_bytes is None else round(own_bytes / 2**20, 1)})
    return rows


LIBRARY_SETTINGS = [  # (library, M / connectivity, ef_construction, dtype)
    ("usearch", 16, 128, "f32"), ("usearch", 32, 128, "f32"), ("usearch", 16, 128, "f16"),
    ("usearch", 16, 128, "i8"), ("usearch", 32, 128, "i8"),
    ("faiss", 16, 128, "f32"), ("faiss", 32, 128, "f32"), ("faiss", 16, 128, "f16"),
    ("hnswlib", 16, 128, "f32"), ("hnswlib", 32, 128, "f32"),
]


def libraries(real: np.ndarray, names: np.ndarray, size: int, efs: list[int], settings: list[tuple],
              save=lambda report: None) -> dict:
    data = split(real, names, size)
    top1 = exact_top(data["X"], data["Q"])[0][:, 0]
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "data.npz")
        np.savez(path, X=data["X"], Q=data["Q"], top1=top1, mated=data["mated"])
        rows = []
        for lib, m, efc, dtype in settings:
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                got = pool.submit(run_library, lib, path, m, efc, dtype, efs).result()
            for row in got:
                print(_line(row), flush=True)
            rows += got
            report = {"n": size, "queries": {"mated": data["mated"], "unmated": data["unmated"]},
                      "real_indexed": data["real_indexed"], "rows": rows}
            save(report)  # after each setting: a long run leaves what it measured
    return report


def run_build(lib: str, data_path: str) -> float:
    X = np.load(data_path)["X"]
    started = time.perf_counter()
    _build(lib, X, 16, 128, "f32", threads=1)
    return time.perf_counter() - started


def build_section(real: np.ndarray, size: int) -> list[dict]:
    """Graph build time of each library side by side: one thread, M 16, ef_construction 128, float32, ``size``
    vectors, each in a fresh process, one after the other (on a shared machine, the fairest comparison)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "data.npz")
        np.savez(path, X=synthetic(real, size))
        for lib in ("usearch", "hnswlib", "faiss"):
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                seconds = pool.submit(run_build, lib, path).result()
            rows.append({"library": lib, "n": size, "threads": 1, "build_s": round(seconds, 2),
                         "add_per_s": round(size / seconds)})
            print(rows[-1], flush=True)
    return rows


# --------------------------------------------------------------------------------------------------------- search
class NumpyExact:
    """Exact search over a float32 matrix (a stand-in for ``collections.index.ExactIndex`` where it is absent)."""

    def __init__(self, metric: str, dimension: int) -> None:
        self.matrix = np.empty((0, dimension), dtype=np.float32)
        self.ids: list[str] = []

    def add(self, face_ids, vectors) -> None:
        self.matrix = np.vstack([self.matrix, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)])
        self.ids += list(face_ids)

    def search(self, q, k, max_distance=float("inf"), exclude=None):
        d = 1.0 - self.matrix @ q
        part = np.argpartition(d, k)[:k]
        return [(self.ids[i], float(d[i])) for i in part[np.argsort(d[part])]]

    def memory_bytes(self) -> int:
        return self.matrix.nbytes + 100 * len(self.ids)


def run_search(kind: str, data_path: str, efs: list[int]) -> list[dict]:
    """Exact (numpy over a float32 matrix, as an exact index holds it) or the project's ApproximateIndex, fed string
    face ids as a collection would be, in a fresh process."""
    data = np.load(data_path)
    X, Q, top1, mated = data["X"], data["Q"], data["top1"], int(data["mated"])
    ids = [f"{i:08d}-0000-4000-8000-000000000000" for i in range(len(X))]  # UUID-shaped face ids
    gc.collect()
    before = rss_anon()
    started = time.perf_counter()
    if kind == "exact":
        try:
            from facecompare.collections.index import ExactIndex
        except ImportError:  # before coll-core: the same thing in a few lines
            ExactIndex = NumpyExact  # noqa: N806
        index = ExactIndex("cosine", X.shape[1])
        settings = [None]
    else:
        from facecompare.collections.ann import ApproximateIndex

        index = ApproximateIndex("cosine", X.shape[1], threads=2)
        settings = efs
    for start in range(0, len(X), 50_000):  # in batches, as a collection is loaded
        index.add(ids[start:start + 50_000], X[start:start + 50_000])

    def search(q, k, ef):
        if ef is not None:
            index.ef_search = ef
        return index.search(q, k)

    own = index.memory_bytes
    build = time.perf_counter() - started
    gc.collect()
    grown = rss_anon() - before
    rows = []
    for ef in settings:
        answers = [search(q, 1, ef)[0] for q in Q]
        found = np.array([int(face_id[:8]) for face_id, _ in answers])
        hit = found == top1
        # how much farther the approximate top-1 is than the exact one (0 on a hit): what a miss costs
        gap = np.array([d for _, d in answers]) - data["top1_distance"]
        p50, p95 = search_latency(search, Q, ef)
        graph = getattr(index, "_index", None)  # ApproximateIndex's usearch graph: its M and ef_construction
        rows.append({"library": kind, "dtype": "f32", "M": getattr(graph, "connectivity", None),
                     "ef_construction": getattr(graph, "expansion_add", None), "ef_search": ef, "n": len(X),
                     "recall_at_1": round(float(hit.mean()), 4),
                     "recall_at_1_mated": round(float(hit[:mated].mean()), 4),
                     "recall_at_1_unmated": round(float(hit[mated:].mean()), 4), "p50_ms": p50, "p95_ms": p95,
                     "build_s": round(build, 2), "add_per_s": round(len(X) / build),
                     "rss_growth_mb": round(grown / 2**20, 1), "index_mb": round(own() / 2**20, 1),
                     "miss_gap_max": round(float(gap.max()), 5), "miss_gap_p99": round(float(np.percentile(gap, 99)), 5)})
    return rows


def search_section(real: np.ndarray, names: np.ndarray, sizes: list[int], efs: list[int],
                   save=lambda report: None, queries: int = 0,
                   kinds: tuple[str, ...] = ("exact", "approximate")) -> list[dict]:
    out = []
    for size in sizes:
        data = split(real, names, size, queries)
        top1, top1_distance = (a[:, 0] for a in exact_top(data["X"], data["Q"]))
        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / "data.npz")
            np.savez(path, X=data["X"], Q=data["Q"], top1=top1, top1_distance=top1_distance, mated=data["mated"])
            del data["X"]
            for kind in kinds:
                load = round(os.getloadavg()[0], 1)
                with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                    got = pool.submit(run_search, kind, path, efs).result()
                for row in got:
                    row["load_average_at_start"] = load
                for row in got:
                    print(_line(row), flush=True)
                out += got
                save({"rows": out})
    return out


# ------------------------------------------------------------------------------------------------------ strangers
def strangers(real: np.ndarray, names: np.ndarray, sizes: list[int]) -> list[dict]:
    """How often a stranger's nearest face (exact) scores at least 80 / 90 / 99 on the calibrated Similarity: the
    false-match side of 1:N at the default FaceMatchThreshold (80). ``size`` 0: the real faces only."""
    from facecompare.engine import Verifier

    calibration = Verifier().calibration
    rows = []
    for size in sizes:
        data = split(real, names, size)
        distance = exact_top(data["X"], data["Q"][data["mated"]:])[1][:, 0]
        row = {"n": len(data["X"]), "real_indexed": data["real_indexed"], "strangers": int(len(distance))}
        for similarity in (80, 90, 95, 99):
            row[f"nearest_at_least_{similarity}"] = round(float((distance <= calibration.distance_at(similarity)).mean()), 4)
        print(row, flush=True)
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------------------- store
def _store(engine: str, postgres_url: str | None, tmp: Path):
    """(store URL, cleanup): a SQLite file in ``tmp``, or PostgreSQL at ``postgres_url``, else a throwaway cluster
    (tests/conftest.py's PostgresCluster: initdb in a temporary directory, socket only, fsync off)."""
    if engine == "sqlite":
        return f"sqlite:///{tmp}/bench.db", lambda: None
    if postgres_url:
        return postgres_url, lambda: None
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import PostgresCluster, _postgres_binaries

    bindir = _postgres_binaries()
    if bindir is None:
        raise SystemExit("PostgreSQL is not installed (initdb/pg_ctl); pass --postgres URL")
    cluster = PostgresCluster(bindir)
    return cluster.new_database(), cluster.stop


def bench_load(engine: str, size: int, real: np.ndarray, postgres_url: str | None = None) -> dict:
    """Store ``size`` faces (batches of 1,000, as IndexFaces would over time), then what a replica does when it
    first searches the collection: read every embedding back (``all_embeddings``) and build the index the service
    would build at that size (exact up to 50,000, approximate above), each in this process; seconds and RssAnon."""
    import uuid

    from facecompare.collections import open_store
    from facecompare.collections.ann import ApproximateIndex
    from facecompare.collections.index import ExactIndex
    from facecompare.collections.store import StoredFace

    vectors = np.vstack([real, synthetic(real, max(0, size - len(real)))])[:size]
    with tempfile.TemporaryDirectory() as tmp:
        url, cleanup = _store(engine, postgres_url, Path(tmp))
        try:
            store = open_store(url)
            store.create_collection("bench", "sface", "cosine", vectors.shape[1])
            started = time.perf_counter()
            now = time.time()
            for first in range(0, size, 1000):
                store.add_faces("bench", [
                    StoredFace(str(uuid.uuid4()), str(uuid.uuid4()), None, (0.3, 0.4, 0.2, 0.1), 99.9, v,
                               f"{first + i:064x}", now) for i, v in enumerate(vectors[first:first + 1000])])
            stored = time.perf_counter() - started
            del vectors
            gc.collect()
            before = rss_anon()
            started = time.perf_counter()
            _, _, ids, matrix = store.all_embeddings("bench")
            read = time.perf_counter() - started
            after_read = rss_anon()
            started = time.perf_counter()
            index = (ApproximateIndex if size > 50_000 else ExactIndex)("cosine", matrix.shape[1])
            index.add(ids, matrix)
            built = time.perf_counter() - started
            row = {"section": "load", "engine": engine, "n": size, "store_s": round(stored, 2),
                   "faces_stored_per_s": round(size / stored), "all_embeddings_s": round(read, 2),
                   "read_rss_mb": round((after_read - before) / 2**20, 1), "index": type(index).__name__,
                   "index_build_s": round(built, 2), "rss_growth_mb": round((rss_anon() - before) / 2**20, 1)}
            store.close()
        finally:
            cleanup()
    print(row, flush=True)
    return row


def bench_index_faces(engine: str, images: int, lfw: Path, postgres_url: str | None = None) -> dict:
    """IndexFaces through ``Collections`` on 1 MP images (LFW portraits, each a different image, enlarged to
    1152 x 864 with the face in the middle third): images per second, the models warm."""
    from PIL import Image

    from facecompare.collections import open_store
    from facecompare.collections.service import Collections
    from facecompare.engine import Verifier

    paths = sorted(lfw.glob("*/*_0001.jpg"))[:images]
    with tempfile.TemporaryDirectory() as tmp:
        jpegs = []
        for i, path in enumerate(paths):
            canvas = Image.new("RGB", (1152, 864), (200, 200, 190))
            canvas.paste(Image.open(path).convert("RGB").resize((432, 432)), (360, 216))
            canvas.save(Path(tmp) / f"{i}.jpg", quality=90)
            jpegs.append((Path(tmp) / f"{i}.jpg").read_bytes())
        url, cleanup = _store(engine, postgres_url, Path(tmp))
        try:
            verifier = Verifier()
            verifier.warm()
            service = Collections(verifier, open_store(url))
            service.create_collection("bench")
            service.index_faces("bench", jpegs[0])  # first call: connections, schema
            started = time.perf_counter()
            faces = sum(len(service.index_faces("bench", jpeg, max_faces=1, quality_filter="NONE").records)
                        for jpeg in jpegs[1:])
            seconds = time.perf_counter() - started
            service.store.close()
        finally:
            cleanup()
    row = {"section": "index_faces", "engine": engine, "images": len(jpegs) - 1, "faces": faces,
           "images_per_s": round((len(jpegs) - 1) / seconds, 2), "ms_per_image": round(1000 * seconds / (len(jpegs) - 1), 1)}
    print(row, flush=True)
    return row


# ------------------------------------------------------------------------------------------------------- report
COLUMNS = ("library", "dtype", "M", "ef_construction", "ef_search", "n", "recall_at_1", "recall_at_1_mated",
           "recall_at_1_unmated", "p50_ms", "p95_ms", "build_s", "add_per_s", "rss_growth_mb", "index_mb",
           "miss_gap_p99")


def _line(row: dict) -> str:
    return " ".join(f"{str(row.get(c, '')):>{max(len(c), 8) if c != 'library' else 11}}" for c in COLUMNS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("section", choices=("search", "libraries", "build", "strangers", "store"))
    parser.add_argument("--engines", default="sqlite,postgresql", help="for `store`")
    parser.add_argument("--postgres", default=None, help="for `store`: a postgresql:// URL (default: a throwaway "
                        "cluster, as the tests start one)")
    parser.add_argument("--images", type=int, default=40, help="for `store`: 1 MP images to index")
    parser.add_argument("--sizes", default="10000,100000", help="collection sizes for `search`")
    parser.add_argument("--kinds", default="exact,approximate",
                        help="for `search`: exact, approximate or both (the graph takes about 30 min to build at 1M)")
    parser.add_argument("--size", type=int, default=100_000, help="collection size for `libraries`")
    parser.add_argument("--ef", default="32,64,128,256", help="ef_search / expansion values")
    parser.add_argument("--settings", default="", help="for `libraries`: library:M:ef_construction:dtype,... "
                        "(default: every one of LIBRARY_SETTINGS)")
    parser.add_argument("--queries", type=int, default=0, help="about this many queries (default: all real faces "
                        "left out of the collection)")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--lfw", type=Path, default=LFW)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    real, names = load_real(args.cache, args.lfw)
    efs = [int(e) for e in args.ef.split(",")]
    if args.section in ("search", "libraries"):
        print(" ".join(f"{c:>{max(len(c), 8) if c != 'library' else 11}}" for c in COLUMNS))
    started = time.time()
    if args.section == "libraries":
        settings = [(lib, int(m), int(efc), dtype) for lib, m, efc, dtype in
                    (s.split(":") for s in args.settings.split(",") if s)] or LIBRARY_SETTINGS
        out = args.out or ROOT / "benchmarks" / "results" / f"collections-libraries-{args.size}.json"
        report = libraries(real, names, args.size, efs, settings,
                           save=lambda partial: Path(out).write_text(json.dumps(partial, indent=2) + "\n"))
    elif args.section == "build":
        out = args.out or ROOT / "benchmarks" / "results" / f"collections-build-{args.size}.json"
        report = {"rows": build_section(real, args.size)}
    elif args.section == "store":
        out = args.out or ROOT / "benchmarks" / "results" / "collections-store.json"
        rows = []
        for engine in [e for e in args.engines.split(",") if e]:
            rows.append(bench_index_faces(engine, args.images + 1, args.lfw, args.postgres))
            rows += [bench_load(engine, int(size), real, args.postgres) for size in args.sizes.split(",")]
            Path(out).write_text(json.dumps({"rows": rows}, indent=2) + "\n")
        report = {"rows": rows}
    elif args.section == "strangers":
        out = args.out or ROOT / "benchmarks" / "results" / "collections-strangers.json"
        report = {"rows": strangers(real, names, [int(s) for s in args.sizes.split(",")])}
    else:
        out = args.out or ROOT / "benchmarks" / "results" / "collections.json"
        report = {"rows": search_section(real, names, [int(s) for s in args.sizes.split(",")], efs,
                                         save=lambda partial: Path(out).write_text(json.dumps(partial, indent=2) + "\n"),
                                         queries=args.queries,
                                         kinds=tuple(k for k in args.kinds.split(",") if k))}
    report.update({"real_embeddings": len(real), "identities": len(set(names.tolist())), "cpus": os.cpu_count(),
                   "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
                   "seconds": round(time.time() - started), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    Path(out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
