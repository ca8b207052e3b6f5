"""Benchmark: SFace with its PRelu activations as shipped before (one PRelu kernel each) against the split graph
that ships now (``Relu(x) + Min(x, 0) * slope``, ``models/onnx_graph.split_prelu``), in one process, interleaved.

Both graphs are made here from the shipped original by ``onnx_graph.prepare`` (``split=False`` gives the graph
that shipped before: the int8 weights folded, PRelu kept). Each run embeds one real, aligned face (the
fixtures' LFW faces, chips cut by the engine), on one onnxruntime thread and on two, with the options every
model here uses. Reports the p50 wall time and CPU per face, the ratio, and whether the embeddings are equal.
Needs the ``onnx`` package (``facecompare[onnx]``), as ``scripts/prepare_weights.py`` does.

    python benchmarks/bench_prelu.py [--runs 60] [--out benchmarks/results/prelu.json]
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

from facecompare import Settings, Verifier  # noqa: E402
from facecompare.models import alignment  # noqa: E402
from facecompare.models.onnx_graph import prepare, session  # noqa: E402
from facecompare.models.weights import read_weights  # noqa: E402

FACES = ["Colin_Powell_0001", "Colin_Powell_0002", "Serena_Williams_0001", "Serena_Williams_0002", "Tony_Blair_0001"]


def chips() -> np.ndarray:
    from PIL import Image

    verifier = Verifier(Settings())
    out = []
    for name in FACES:
        image = np.asarray(Image.open(ROOT / "tests" / "fixtures" / f"{name}.jpg").convert("RGB"))
        det = max(verifier.detector.detect(image), key=lambda d: d.width)
        out.append(alignment.align(image, det.landmarks, 112).astype(np.float32).transpose(2, 0, 1)[None])
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=60, help="faces embedded per graph and thread count")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "prelu.json"))
    args = parser.parse_args()
    original = read_weights("sface-2021dec-int8bq")
    graphs = {"prelu (before)": prepare(original, split=False), "split (now)": read_weights("sface-2021dec-int8bq-folded")}
    assert graphs["split (now)"] == prepare(original), "the shipped prepared file is not what prepare() makes"
    faces = chips()
    report: dict = {"python": platform.python_version(), "cpus": os.cpu_count(), "runs": args.runs, "threads": {}}
    embeddings = {}
    for threads in (1, 2):
        sessions = {name: session(graph, threads) for name, graph in graphs.items()}
        inputs = {name: s.get_inputs()[0].name for name, s in sessions.items()}
        wall: dict[str, list[float]] = {name: [] for name in graphs}
        cpu: dict[str, list[float]] = {name: [] for name in graphs}
        for name, s in sessions.items():  # warm
            embeddings[name] = np.concatenate([s.run(None, {inputs[name]: face[None]})[0] for face in faces])
        for i in range(args.runs):
            face = faces[i % len(faces)][None]
            for name, s in (sessions.items() if i % 2 == 0 else reversed(sessions.items())):
                t, c = time.perf_counter(), time.process_time()
                s.run(None, {inputs[name]: face})
                wall[name].append(time.perf_counter() - t)
                cpu[name].append(time.process_time() - c)
        row = {name: {"wall_p50_ms": round(statistics.median(wall[name]) * 1000, 2),
                      "cpu_p50_ms": round(statistics.median(cpu[name]) * 1000, 2)} for name in graphs}
        before, now = row["prelu (before)"], row["split (now)"]
        row["speedup_wall"] = round(before["wall_p50_ms"] / now["wall_p50_ms"], 2)
        row["speedup_cpu"] = round(before["cpu_p50_ms"] / now["cpu_p50_ms"], 2)
        report["threads"][str(threads)] = row
        print(f"{threads} thread(s): " + ", ".join(f"{n} {r['wall_p50_ms']} ms ({r['cpu_p50_ms']} ms CPU)"
                                                  for n, r in row.items() if isinstance(r, dict))
              + f"; {row['speedup_wall']}x wall, {row['speedup_cpu']}x CPU")
    a, b = embeddings["prelu (before)"], embeddings["split (now)"]
    report["embeddings_equal"] = bool(np.array_equal(a, b))
    report["embeddings_max_abs_difference"] = float(np.abs(a - b).max())
    print(f"embeddings of the {len(faces)} faces equal: {report['embeddings_equal']} "
          f"(largest difference {report['embeddings_max_abs_difference']:.1e})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
