"""The PostgreSQL collection store at a size, the same steps as bench_collection_store.py measures for SQLite
(and SQLite again in the same run, as the peer): adding faces, rebuilding an index from the store, asking for
changes, deleting; on random 128-d vectors (the cost does not depend on what the vectors are).

    python benchmarks/bench_collection_store_postgres.py [--faces 100000] [--url postgresql://...]

Without ``--url`` it starts a throwaway cluster on a Unix socket, as the tests do (PostgreSQL must be installed);
that cluster runs with fsync off, so its write figures are an upper bound for a real, durable server.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np

from facecompare.collections.postgres import PostgresStore
from facecompare.collections.sqlite import SqliteStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_collection_store import measure  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--url", help="an empty PostgreSQL database (default: a throwaway cluster)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(args.faces, 128)).astype(np.float32)
    ids = [str(uuid.uuid4()) for _ in range(args.faces)]

    cluster = None
    url = args.url
    if url is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from conftest import PostgresCluster, _postgres_binaries

        bindir = _postgres_binaries()
        if bindir is None:
            sys.exit("PostgreSQL is not installed (apt-get install postgresql), and no --url was given")
        cluster = PostgresCluster(bindir)
        url = cluster.new_database()
    try:
        measure("PostgresStore", PostgresStore(url), ids, vectors)
    finally:
        if cluster is not None:
            cluster.stop()
    with tempfile.TemporaryDirectory() as root:
        measure("SqliteStore", SqliteStore(f"sqlite:///{root}/bench.db"), ids, vectors)


if __name__ == "__main__":
    main()
