"""Batch throughput: `facecompare batch` (worker processes that load the models once) against one
`facecompare compare` process per pair (the models load every time), in the same run, for 1 MP and 12 MP pairs.

    python benchmarks/bench_batch.py [--pairs 40] [--single 6] [--out benchmarks/results/batch.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_compare import make_pair  # noqa: E402

FACECOMPARE = [sys.executable, "-m", "facecompare.cli"]


def variants(tmp: Path) -> dict[str, tuple[Path, Path]]:
    selfie, document = make_pair(tmp)
    small = {}
    for name, path in (("selfie", selfie), ("document", document)):
        im = Image.open(path)
        im.thumbnail((1280, 1280))
        small[name] = tmp / f"{name}_1mp.jpg"
        im.save(small[name], quality=90)
    return {"1MP": (small["selfie"], small["document"]), "12MP": (selfie, document)}


def bench(selfie: Path, document: Path, pairs: int, single: int, tmp: Path) -> dict:
    folder = tmp / f"set_{selfie.stem}"
    folder.mkdir()
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "selfie", "document"])
        for i in range(pairs):  # distinct file names, same content: every row does the full work
            s, d = folder / f"s{i}.jpg", folder / f"d{i}.jpg"
            shutil.copy(selfie, s)
            shutil.copy(document, d)
            writer.writerow([f"r{i}", s.name, d.name])
    started = time.perf_counter()
    subprocess.run([*FACECOMPARE, "batch", str(manifest), "--out", str(folder / "out"), "--no-progress"], check=True,
                   stdout=subprocess.DEVNULL)
    batch_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(single):
        subprocess.run([*FACECOMPARE, "compare", str(selfie), str(document)], stdout=subprocess.DEVNULL)
    single_seconds = time.perf_counter() - started
    batch_rate, single_rate = pairs / batch_seconds, single / single_seconds
    return {"pairs_batch": pairs, "batch_pairs_per_second": batch_rate, "pairs_single": single,
            "one_process_per_pair_pairs_per_second": single_rate, "speedup": batch_rate / single_rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--single", type=int, default=6)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "batch.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = {name: bench(s, d, args.pairs, args.single, Path(tmp))
                  for name, (s, d) in variants(Path(tmp)).items()}
    report["cpus"] = os.cpu_count()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
