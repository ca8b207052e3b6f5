"""Benchmark: one detector call on one onnxruntime thread against two, by input size (models warm, one process).

This is the measurement behind ``models/onnx_graph.SPARE_CORE_MIN_PIXELS``: with automatic model threads a
detector input takes a second thread while a core is spare only where two threads are faster. Each size is a
random square input, both sessions with the options every model here uses (no spinning, no arena).

    python benchmarks/bench_model_threads.py [--runs 15] [--out benchmarks/results/model-threads.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from facecompare.models.onnx_graph import SPARE_CORE_MIN_PIXELS, session  # noqa: E402
from facecompare.models.weights import read_weights  # noqa: E402

SIZES = (96, 160, 224, 320, 480, 640, 960, 1280)
MODELS = {"retinaface": "retinaface-mobilenet0.25", "yunet": "yunet-2023mar-int8bq-prepared"}


def p50_ms(run, runs: int) -> float:
    for _ in range(3):
        run()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows: dict[str, list[dict]] = {}
    for name, key in MODELS.items():
        data = read_weights(key)
        one, two = session(data, 1), session(data, 2)
        input_name = one.get_inputs()[0].name
        rows[name] = []
        for side in SIZES:
            x = (rng.random((1, 3, side, side)) * 100).astype(np.float32)
            t1 = p50_ms(lambda s=one, x=x, n=input_name: s.run(None, {n: x}), args.runs)
            t2 = p50_ms(lambda s=two, x=x, n=input_name: s.run(None, {n: x}), args.runs)
            rows[name].append({"side": side, "pixels": side * side, "one_thread_ms": round(t1, 2),
                               "two_threads_ms": round(t2, 2), "speedup_two_over_one": round(t1 / t2, 2)})
            print(f"{name:10s} {side:5d} px  one {t1:7.1f} ms  two {t2:7.1f} ms  {t1 / t2:.2f}x", flush=True)
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_average": os.getloadavg()},
              "runs": args.runs, "spare_core_min_pixels": SPARE_CORE_MIN_PIXELS, "models": rows}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
