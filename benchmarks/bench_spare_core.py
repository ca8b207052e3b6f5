"""Benchmark: the spare-core rule (``models/cpu.py``) on and off in one process, alternating run by run.

With automatic model threads (``FACECOMPARE_MODEL_THREADS=0``, the default) a model call takes a second core while
fewer images are analysed than there are cores. Switched off here (``spare_core`` answering no, which is the
engine before the rule: one thread, two for detector inputs of 1.5 MP or more), on the same files in the same
process, the two settings alternating on every run so that a change of the machine's load hits both alike. Wall
time (p50, p95) and CPU (``time.process_time``, all threads) per call, models warm, on ``bench_finder.py``'s
12 MP cases and ``bench_pair_cpu.py``'s 1 MP pairs.

    python benchmarks/bench_spare_core.py [--runs 15] [--out benchmarks/results/spare-core.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))

from bench_compare import make_card_photo, make_card_photo_1mp, make_pair  # noqa: E402
from bench_server import one_megapixel  # noqa: E402

import facecompare  # noqa: E402
from facecompare.models import cpu, onnx_graph  # noqa: E402


def switch(on: bool) -> None:
    """The rule on (as shipped) or off (``spare_core`` answers no everywhere it is asked)."""
    rule = SPARE_CORE if on else (lambda: False)
    cpu.spare_core = rule
    onnx_graph.spare_core = rule


SPARE_CORE = cpu.spare_core


def cases(tmp: Path) -> dict[str, tuple[str, str]]:
    selfie, document = make_pair(tmp)
    selfie_1mp = one_megapixel(selfie, tmp / "s1.jpg")
    return {
        "bench pair (12 MP, portrait 4 %)": (str(selfie), str(document)),
        "card turned 90, portrait 3 %": (str(selfie), str(make_card_photo(tmp, "t90.jpg", rotation=90, fraction=0.03))),
        "card turned 180, portrait 3 %": (str(selfie), str(make_card_photo(tmp, "t180.jpg", rotation=180, fraction=0.03))),
        "card upright, portrait 2 %": (str(selfie), str(make_card_photo(tmp, "u2.jpg", rotation=0, fraction=0.02))),
        "1 MP: card that fills the frame": (str(selfie_1mp), str(make_card_photo_1mp(tmp))),
        "1 MP: 12 MP card photo shrunk (face about 70 px)": (str(selfie_1mp), str(one_megapixel(
            make_card_photo(tmp, "c0.jpg", rotation=0, fraction=0.15), tmp / "c0_1mp.jpg"))),
        "1 MP: the same card turned 90, no EXIF": (str(selfie_1mp), str(one_megapixel(
            make_card_photo(tmp, "c90.jpg", rotation=90, fraction=0.15), tmp / "c90_1mp.jpg"))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    verifier = facecompare.Verifier()
    verifier.warm()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (first, second) in cases(Path(tmp)).items():
            wall: dict[str, list[float]] = {"off": [], "on": []}
            cpu_s: dict[str, list[float]] = {"off": [], "on": []}
            similarity = {}
            for i in range(args.runs + 1):
                for mode in ("off", "on") if i % 2 else ("on", "off"):
                    switch(mode == "on")
                    t, c = time.perf_counter(), time.process_time()
                    result = verifier.compare(first, second)
                    if i:  # the first round warms both
                        wall[mode].append(time.perf_counter() - t)
                        cpu_s[mode].append(time.process_time() - c)
                    similarity[mode] = round(max((m.similarity for m in result.matches), default=0.0), 2)
            switch(True)
            row = {mode: {"p50_ms": round(1000 * statistics.median(wall[mode]), 1),
                          "p95_ms": round(1000 * float(np.percentile(wall[mode], 95)), 1),
                          "cpu_ms_p50": round(1000 * statistics.median(cpu_s[mode]), 1),
                          "similarity": similarity[mode]} for mode in wall}
            row["ratio_p50_off_over_on"] = round(row["off"]["p50_ms"] / row["on"]["p50_ms"], 3)
            row["ratio_cpu_on_over_off"] = round(row["on"]["cpu_ms_p50"] / row["off"]["cpu_ms_p50"], 3)
            rows[name] = row
            print(f"{name:50s} off {row['off']['p50_ms']:7.1f} ms  on {row['on']['p50_ms']:7.1f} ms  "
                  f"{row['ratio_p50_off_over_on']:.2f}x;  CPU {row['off']['cpu_ms_p50']:.0f} -> "
                  f"{row['on']['cpu_ms_p50']:.0f} ms", flush=True)
    report = {"machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()}, "runs": args.runs,
              "cores": cpu.CORES, "cases": rows}
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
