"""The SQLite collection store and the exact search index at a size: adding faces, rebuilding an index from the
store, asking for changes, deleting (with the truncating checkpoint), and exact top-10 search, on random 128-d
vectors (the cost does not depend on what the vectors are). The approximate index has its own benchmark.

    python benchmarks/bench_collection_store.py [--faces 100000] [--queries 50]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid

import numpy as np

from facecompare.collections.index import ExactIndex
from facecompare.collections.sqlite import SqliteStore
from facecompare.collections.store import CollectionStore, StoredFace


def measure(name: str, store: CollectionStore, ids: list[str], vectors: np.ndarray) -> None:
    n = len(ids)
    store.create_collection("c", "sface", "cosine", 128)
    faces = [StoredFace(ids[i], ids[i], None, (0.1, 0.1, 0.1, 0.1), 99.0, vectors[i], "ab" * 32, 1.0)
             for i in range(n)]
    started = time.perf_counter()
    for i in range(0, n, 1000):
        store.add_faces("c", faces[i:i + 1000])
    print(f"{name} add_faces {n:,} in batches of 1,000: {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    for _ in range(100):
        store.add_faces("c", [StoredFace(str(uuid.uuid4()), "x", None, (0.1, 0.1, 0.1, 0.1), 99.0, vectors[0])])
    print(f"{name} add_faces of one face: {(time.perf_counter() - started) * 10:.2f} ms")
    started = time.perf_counter()
    generation, seq, got, _ = store.all_embeddings("c")
    print(f"{name} all_embeddings of {len(got):,} (an index rebuild's read): {time.perf_counter() - started:.2f} s")
    started = time.perf_counter()
    for _ in range(100):
        store.changes_since("c", generation, seq)
    print(f"{name} changes_since with nothing new (before every search): "
          f"{(time.perf_counter() - started) * 10:.2f} ms")
    store.add_faces("c", [StoredFace(str(uuid.uuid4()), "y", None, (0.1, 0.1, 0.1, 0.1), 99.0, vectors[1])])
    started = time.perf_counter()
    changes = store.changes_since("c", generation, seq)
    print(f"{name} changes_since with one new face: {(time.perf_counter() - started) * 1000:.2f} ms "
          f"({len(changes.added)} added)")
    started = time.perf_counter()
    store.delete_faces("c", ids[:10])
    print(f"{name} delete_faces of 10: {(time.perf_counter() - started) * 1000:.1f} ms")
    started = time.perf_counter()
    store.get_faces("c", ids[10:20])
    print(f"{name} get_faces of 10 (a search's answer): {(time.perf_counter() - started) * 1000:.2f} ms")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    n = args.faces
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, 128)).astype(np.float32)
    ids = [str(uuid.uuid4()) for _ in range(n)]

    index = ExactIndex("cosine", 128)
    started = time.perf_counter()
    index.add(ids, vectors)
    print(f"ExactIndex add {n:,}: {time.perf_counter() - started:.2f} s, {index.memory_bytes() / 2**20:.1f} MiB")
    queries = rng.normal(size=(args.queries, 128)).astype(np.float32)
    started = time.perf_counter()
    for q in queries:
        index.search(q, 10, 0.6)
    print(f"ExactIndex top-10 search over {n:,}: {(time.perf_counter() - started) / len(queries) * 1000:.1f} ms/query")

    with tempfile.TemporaryDirectory() as root:
        measure("SqliteStore", SqliteStore(f"sqlite:///{root}/bench.db"), ids, vectors)
        print(f"file: {os.path.getsize(f'{root}/bench.db') / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
