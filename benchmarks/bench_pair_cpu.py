"""Benchmark: CPU seconds per comparison of the service's 1 MP pairs, this checkout against a baseline checkout,
in the same run (each in its own process, models warm).

The service's throughput on 2 cores is bounded by the engine's CPU per pair (``time.process_time`` around
``Verifier.analyze_pair``, both images, all threads), so this says whether a throughput figure moved because of
the code or because of the machine. The pairs are those of ``bench_server.py``'s 1 MP rows: the 1 MP selfie
against a card that fills a 1280x960 frame, a 12 MP card photo shrunk to 1 MP (face about 70 px) upright and
turned 90 without EXIF, and the bench pair's 12 MP document shrunk to 1 MP (a 19 px portrait).

    python benchmarks/bench_pair_cpu.py --baseline-src /tmp/old/src [--runs 9] [--out benchmarks/results/pair-cpu.json]

Extra environment for the current checkout only: ``--current-env FACECOMPARE_PORTRAIT_SEARCH=cascade``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
from pathlib import Path
import facecompare
from facecompare.engine import Verifier
sys.path.insert(1, sys.argv[1])
from bench_compare import make_card_photo, make_card_photo_1mp, make_pair
from bench_server import one_megapixel
tmp, runs = Path(sys.argv[2]), int(sys.argv[3])
selfie, document = make_pair(tmp)
selfie_1mp = one_megapixel(selfie, tmp / "s1.jpg").read_bytes()
cases = {"card that fills the frame": make_card_photo_1mp(tmp),
         "12 MP card photo shrunk (face about 70 px)": one_megapixel(
             make_card_photo(tmp, "c0.jpg", rotation=0, fraction=0.15), tmp / "c0_1mp.jpg"),
         "the same card turned 90, no EXIF": one_megapixel(
             make_card_photo(tmp, "c90.jpg", rotation=90, fraction=0.15), tmp / "c90_1mp.jpg"),
         "12 MP document shrunk (19 px portrait)": one_megapixel(document, tmp / "d1.jpg")}
verifier = Verifier()
verifier.warm()
out = {"source": facecompare.__file__, "cases": {}}
for name, path in cases.items():
    data = path.read_bytes()
    cpu = []
    for _ in range(runs):
        started = time.process_time()
        _, analysed = verifier.analyze_pair(selfie_1mp, data, embed_first=1, embed_second=1)
        cpu.append(time.process_time() - started)
    out["cases"][name] = {"cpu_s": cpu, "document_faces_px": [round(f.width_px) for f in analysed.faces]}
print(json.dumps(out))
"""


def run(src: Path, runs: int, extra_env: dict[str, str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), **extra_env}
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run([sys.executable, "-c", CHILD, str(ROOT / "benchmarks"), tmp, str(runs)], env=env,
                                capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-src", required=True, type=Path, help="the baseline's src folder")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--current-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pair-cpu.json"))
    args = parser.parse_args()
    current_env = dict(item.split("=", 1) for item in args.current_env)
    results = {"baseline": run(args.baseline_src.resolve(), args.runs, {}),
               "current": run(ROOT / "src", args.runs, current_env)}
    report = {"cpus": os.cpu_count(), "load_average": os.getloadavg(), "runs": args.runs, "current_env": current_env,
              "cases": {}}
    for name in results["current"]["cases"]:
        row = {}
        for which in ("baseline", "current"):
            case = results[which]["cases"][name]
            row[which] = {"cpu_ms_p50": 1000 * statistics.median(case["cpu_s"]),
                          "document_faces_px": case["document_faces_px"]}
        row["ratio_baseline_over_current"] = row["baseline"]["cpu_ms_p50"] / row["current"]["cpu_ms_p50"]
        report["cases"][name] = row
    report["sources"] = {which: results[which]["source"] for which in results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
