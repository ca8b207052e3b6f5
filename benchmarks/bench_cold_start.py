"""Benchmark: a fresh process's first answer, this checkout against a baseline checkout, in the same run.

Two measures, each in a new process, alternating baseline and current so that a busy machine weighs on both:

- cold start: process start to the first ``compare_faces`` answer on the bench pair of ``bench_compare.py`` (a
  12 MP selfie against a 12 MP photo of an ID card, portrait 4 % of the frame), models loading included;
- ``facecompare compare examples/selfie.jpg examples/id_card.jpg``: the CLI's wall time, as a user runs it.

    git archive <old-commit> src | tar -x -C /tmp/old      # the baseline's source tree
    python benchmarks/bench_cold_start.py --baseline-src /tmp/old/src [--runs 5] [--out benchmarks/results/cold-start.json]

Each child also reports whether it imported ``onnx`` and how long its model loading took (``Verifier.warm``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_compare import make_pair  # noqa: E402

COLD = """
import sys, time
t0 = float(sys.argv[3])
import facecompare
imported = time.time() - t0
facecompare.compare_faces(sys.argv[1], sys.argv[2])
elapsed = time.time() - t0
hwm_kib = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
print(elapsed, imported, int("onnx" in sys.modules), hwm_kib)
"""


def cold_start(src: Path, selfie: Path, document: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", COLD, str(selfie), str(document), str(t0)], capture_output=True,
                         text=True, check=True, env=env)
    elapsed, imported, onnx, hwm = out.stdout.split()[-4:]
    return {"s": float(elapsed), "import_s": float(imported), "onnx_imported": bool(int(onnx)),
            "peak_rss_mib": int(hwm) / 1024}


def cli_compare(src: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "facecompare.cli", "compare", str(ROOT / "examples" / "selfie.jpg"),
                    str(ROOT / "examples" / "id_card.jpg")], capture_output=True, check=True, env=env)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-src", required=True, type=Path, help="the baseline's src folder")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cold-start.json"))
    args = parser.parse_args()
    sources = {"baseline": args.baseline_src.resolve(), "current": (ROOT / "src").resolve()}
    results: dict = {name: {"cold": [], "cli_s": []} for name in sources}
    with tempfile.TemporaryDirectory() as tmp:
        selfie, document = make_pair(Path(tmp))
        for _ in range(args.runs):
            for name, src in sources.items():
                results[name]["cold"].append(cold_start(src, selfie, document))
                results[name]["cli_s"].append(cli_compare(src))
    report: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average": os.getloadavg()},
        "runs": args.runs,
        "sources": {k: str(v) for k, v in sources.items()},
    }
    for name, r in results.items():
        report[name] = {
            "cold_start_p50_s": statistics.median(c["s"] for c in r["cold"]),
            "import_p50_s": statistics.median(c["import_s"] for c in r["cold"]),
            "onnx_imported": any(c["onnx_imported"] for c in r["cold"]),
            "peak_rss_mib_max": max(c["peak_rss_mib"] for c in r["cold"]),
            "cli_compare_p50_s": statistics.median(r["cli_s"]),
            "cold_start_s": [c["s"] for c in r["cold"]],
            "cli_compare_s": r["cli_s"],
        }
    report["ratio_cold_start_baseline_over_current"] = (report["baseline"]["cold_start_p50_s"]
                                                        / report["current"]["cold_start_p50_s"])
    report["ratio_cli_baseline_over_current"] = (report["baseline"]["cli_compare_p50_s"]
                                                 / report["current"]["cli_compare_p50_s"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("baseline", "current")}, indent=2))
    for name in sources:
        print(name, {k: v for k, v in report[name].items() if not isinstance(v, list)})


if __name__ == "__main__":
    main()
