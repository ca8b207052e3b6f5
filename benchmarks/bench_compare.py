"""Benchmark: compare_faces of a 12 MP selfie against a 12 MP phone photo of an ID card, models warm.

Runs the peer (the face_recognition package: HOG detector + the same dlib ResNet) on the same pair in the
same run and reports both and the ratio; also the engine without the orientation check (its cost), the cold
start (process start to first answer) and peak memory.

    python benchmarks/bench_compare.py [--runs 15] [--out benchmarks/results/compare.json]

The peer needs `pip install --no-deps face_recognition` (it then uses the dlib-bin and
face_recognition_models already installed); without it the peer rows are skipped, with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from facecompare.synth import PhotoConditions, photograph, render_card  # noqa: E402


def make_pair(workdir: Path) -> tuple[Path, Path]:
    """A 3000x4000 selfie (a real portrait upscaled, with sensor-like noise) and a 4000x3000 photo of an ID
    card whose portrait is 4 % of the frame width (about 160 px), tilted, JPEG quality 85."""
    rng = np.random.default_rng(12)
    portrait = Image.open(ROOT / "examples" / "selfie.jpg").convert("RGB")
    selfie = portrait.resize((3000, 4000), Image.Resampling.LANCZOS)
    noisy = np.clip(np.asarray(selfie, dtype=np.int16) + rng.normal(0, 3, (4000, 3000, 3)).astype(np.int16), 0, 255)
    selfie_path = workdir / "selfie_12mp.jpg"
    Image.fromarray(noisy.astype(np.uint8)).save(selfie_path, quality=90)
    face = Image.open(ROOT / "tests" / "fixtures" / "obama.jpg").convert("RGB")
    card, info = render_card(face, rng, width=1200, ghost=True, face_box=(200, 80, 440, 380))
    data, _ = photograph(card, info, rng, PhotoConditions(portrait_fraction=0.04, tilt=0.1, glare=0.2,
                                                          jpeg_quality=85, frame=(4000, 3000)))
    document_path = workdir / "id_photo_12mp.jpg"
    document_path.write_bytes(data)
    return selfie_path, document_path


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def bench_ours(selfie: Path, document: Path, runs: int, tta: str = "flip", orientation_check: bool = True) -> dict:
    import facecompare

    verifier = facecompare.Verifier(facecompare.Settings(tta=tta, orientation_check=orientation_check))
    verifier.warm()
    selfie_bytes, document_bytes = selfie.read_bytes(), document.read_bytes()
    result = facecompare.compare_faces(selfie, document, verifier=verifier)  # also a warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        facecompare.compare_faces(selfie, document, verifier=verifier)
        times.append(time.perf_counter() - started)
    del selfie_bytes, document_bytes
    matches = result["FaceMatches"]
    return {
        "p50_ms": 1000 * statistics.median(times),
        "p95_ms": 1000 * percentile(times, 95),
        "similarity": matches[0]["Similarity"] if matches else None,
        "found_document_face": bool(matches or result["UnmatchedFaces"]),
    }


def bench_peer(selfie: Path, document: Path, runs: int) -> dict | None:
    try:
        import face_recognition
    except Exception as exc:  # not installed, or its pkg_resources import fails
        return {"skipped": f"face_recognition not importable: {exc}"}
    s_img = face_recognition.load_image_file(str(selfie))
    d_img = face_recognition.load_image_file(str(document))

    def once() -> float | None:
        a = face_recognition.load_image_file(str(selfie))
        b = face_recognition.load_image_file(str(document))
        ea = face_recognition.face_encodings(a)
        eb = face_recognition.face_encodings(b)
        if not ea or not eb:
            return None
        return float(face_recognition.face_distance([ea[0]], eb[0])[0])

    del s_img, d_img
    distance = once()
    times = []
    for _ in range(max(3, runs // 3)):  # the peer is slow; fewer runs
        started = time.perf_counter()
        once()
        times.append(time.perf_counter() - started)
    return {
        "p50_ms": 1000 * statistics.median(times),
        "p95_ms": 1000 * percentile(times, 95),
        "distance": distance,
        "found_document_face": distance is not None,
    }


COLD = """
import time, sys
t0 = float(sys.argv[3])
import facecompare
r = facecompare.compare_faces(sys.argv[1], sys.argv[2])
print(time.time() - t0)
"""


def cold_start(selfie: Path, document: Path) -> dict:
    """Process start to first answer, and the child's peak resident memory."""
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", COLD, str(selfie), str(document), str(t0)], capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"cold_start_s": float(out.stdout.strip().splitlines()[-1]), "peak_rss_mib": peak_kib / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "compare.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        selfie, document = make_pair(Path(tmp))
        cold = cold_start(selfie, document)
        ours = bench_ours(selfie, document, args.runs)
        ours_single = bench_ours(selfie, document, args.runs, tta="none")
        ours_unchecked = bench_ours(selfie, document, args.runs, orientation_check=False)
        peer = bench_peer(selfie, document, args.runs)
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "processor": platform.machine()},
        "pair": "3000x4000 selfie JPEG q90 vs 4000x3000 ID-card photo JPEG q85, portrait 4 % of frame width",
        "note": "the card's portrait is the selfie's photograph, so the similarity is 100; timing is what matters",
        "facecompare": {**ours, **cold},
        "facecompare_tta_none": ours_single,
        "facecompare_without_orientation_check": ours_unchecked,
        "face_recognition": peer,
    }
    if peer and "p50_ms" in peer:
        report["speedup_p50"] = peer["p50_ms"] / ours["p50_ms"]
        report["speedup_p50_tta_none"] = peer["p50_ms"] / ours_single["p50_ms"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
