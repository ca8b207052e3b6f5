"""Benchmark: the portrait search (``facecompare.engine.finder``) against a baseline checkout, in the same run.

Each checkout runs in its own process with warm models, on the same files: the bench pair of
``bench_compare.py`` (12 MP selfie against a 12 MP photo of an ID card, portrait 4 % of the frame), the same card
photographed turned 90 and 180 degrees (no EXIF tag) with a 3 % portrait, an upright card with a 2 % portrait
(CompareFaces p50 and p95 of each, and whether the portrait was found), and a 10 KB 8000x8000 blank PNG through
DetectFaces (wall time and the process's peak memory after it), a 12 MP photo textured all over with no face
(DetectFaces: the search runs to its last resort), and a 1280x960 photo of a card that fills it.

    git archive <old-commit> src | tar -x -C /tmp/old
    python benchmarks/bench_finder.py --baseline-src /tmp/old/src [--runs 5] [--out benchmarks/results/finder.json]

Or one checkout under two settings (the portrait search's cascade against RetinaFace alone), in alternating
processes (``--rounds``; each row is the median of the rounds' p50s, so a change of load hits both alike):

    python benchmarks/bench_finder.py --baseline-env FACECOMPARE_PORTRAIT_SEARCH=retinaface \\
        --current-env FACECOMPARE_PORTRAIT_SEARCH=cascade --rounds 3 --out benchmarks/results/finder-cascade.json

Or the portrait searches of this checkout in one process, alternating run by run on each file (the fairest
comparison on a machine whose load changes by the second; ``FaceFinder.portrait_search`` switched in place):

    python benchmarks/bench_finder.py --interleave retinaface,cascade --runs 7 --out benchmarks/results/finder-cascade.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))

from bench_compare import make_card_photo, make_card_photo_1mp, make_pair  # noqa: E402

CHILD = r"""
import json, statistics, sys, time
import numpy as np
import facecompare
cases = json.loads(sys.argv[1]); runs = int(sys.argv[2])
v = facecompare.Verifier(); v.warm()
out = {}
for name, (kind, files) in cases.items():
    times, found, similarity = [], False, None
    for i in range(runs + 1):
        t = time.perf_counter()
        try:
            if kind == "compare":
                r = facecompare.compare_faces(files[0], files[1], verifier=v)
                found = bool(r["FaceMatches"] or r["UnmatchedFaces"])
                similarity = r["FaceMatches"][0]["Similarity"] if r["FaceMatches"] else None
            else:
                r = facecompare.detect_faces(open(files[0], "rb").read(), verifier=v)
                found = bool(r["FaceDetails"])
        except facecompare.FaceCompareError as exc:
            found = False
        if i:  # the first is a warm-up
            times.append(time.perf_counter() - t)
    out[name] = {"p50_ms": 1000 * statistics.median(times), "p95_ms": 1000 * float(np.percentile(times, 95)),
                 "found": found, "similarity": similarity}
hwm = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
out["peak_rss_mib"] = hwm / 1024
print(json.dumps(out))
"""


INTERLEAVED = r"""
import json, statistics, sys, time
import numpy as np
import facecompare
cases = json.loads(sys.argv[1]); runs = int(sys.argv[2]); searches = sys.argv[3].split(",")
v = facecompare.Verifier(); v.warm(); v.finder.warm()
out = {}
for name, (kind, files) in cases.items():
    times = {s: [] for s in searches}; seen = {}
    for i in range(runs + 1):
        for search in searches:
            v.finder.portrait_search = search
            t = time.perf_counter()
            try:
                if kind == "compare":
                    r = facecompare.compare_faces(files[0], files[1], verifier=v)
                    seen[search] = (bool(r["FaceMatches"] or r["UnmatchedFaces"]),
                                    r["FaceMatches"][0]["Similarity"] if r["FaceMatches"] else None)
                else:
                    seen[search] = (bool(facecompare.detect_faces(open(files[0], "rb").read(), verifier=v)["FaceDetails"]),
                                    None)
            except facecompare.FaceCompareError:
                seen[search] = (False, None)
            if i:  # the first is a warm-up
                times[search].append(time.perf_counter() - t)
    out[name] = {s: {"p50_ms": 1000 * statistics.median(times[s]), "p95_ms": 1000 * float(np.percentile(times[s], 95)),
                     "found": seen[s][0], "similarity": seen[s][1]} for s in searches}
print(json.dumps(out))
"""


def interleaved(cases: dict, runs: int, searches: str) -> dict:
    """Every portrait search of this checkout in one process, alternating run by run."""
    out = subprocess.run([sys.executable, "-c", INTERLEAVED, json.dumps(cases), str(runs), searches],
                         capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    first, *others = searches.split(",")
    for row in rows.values():
        for other in others:
            row[f"ratio_p50_{first}_over_{other}"] = row[first]["p50_ms"] / row[other]["p50_ms"]
    return rows


def make_cases(workdir: Path) -> dict:
    selfie, document = make_pair(workdir)
    blank = workdir / "blank_8000.png"
    buffer = io.BytesIO()
    Image.new("RGB", (8000, 8000), (255, 255, 255)).save(buffer, "PNG", optimize=True)
    blank.write_bytes(buffer.getvalue())
    # no face, textured all over (so the search runs to its last resort): the worst case of an ordinary photo
    textured = workdir / "textured_12mp.jpg"
    noise = np.random.default_rng(0).integers(88, 168, (750, 1000, 3), dtype=np.uint8)
    Image.fromarray(noise).resize((4000, 3000), Image.Resampling.BILINEAR).save(textured, quality=85)
    return {
        "bench_pair_4pct": ("compare", [str(selfie), str(document)]),
        "turned_90_3pct": ("compare", [str(selfie), str(make_card_photo(workdir, "t90.jpg", rotation=90, fraction=0.03))]),
        "turned_180_3pct": ("compare", [str(selfie), str(make_card_photo(workdir, "t180.jpg", rotation=180, fraction=0.03))]),
        "upright_2pct": ("compare", [str(selfie), str(make_card_photo(workdir, "u2.jpg", rotation=0, fraction=0.02))]),
        "blank_png_8000_detect": ("detect", [str(blank)]),
        "textured_12mp_no_face_detect": ("detect", [str(textured)]),
        "card_1mp": ("compare", [str(selfie), str(make_card_photo_1mp(workdir))]),
    }


def run(src: Path, cases: dict, runs: int, env: dict[str, str] | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cases), str(runs)], capture_output=True, text=True,
                         check=True, env={**os.environ, **(env or {}), "PYTHONPATH": str(src)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def settings_env(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` arguments as an environment."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.startswith("FACECOMPARE_"):
            raise SystemExit(f"bench_finder: {pair!r}: use FACECOMPARE_NAME=VALUE")
        out[key] = value
    return out


def median_of_rounds(rounds: list[dict]) -> dict:
    """One row per case: the median over the rounds of p50 and p95, found and similarity of the last round, the
    largest peak memory."""
    out: dict = {}
    for name, last in rounds[-1].items():
        if name == "peak_rss_mib":
            out[name] = max(r[name] for r in rounds)
            continue
        out[name] = {**last, "p50_ms": statistics.median(r[name]["p50_ms"] for r in rounds),
                     "p95_ms": statistics.median(r[name]["p95_ms"] for r in rounds),
                     "p50_ms_per_round": [r[name]["p50_ms"] for r in rounds],
                     "found_in_every_round": all(r[name]["found"] for r in rounds)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-src", type=Path, default=ROOT / "src",
                        help="the baseline checkout's src (default: this checkout's)")
    parser.add_argument("--current-src", type=Path, default=ROOT / "src", help="default: this checkout's src")
    parser.add_argument("--baseline-env", action="append", default=[], metavar="FACECOMPARE_X=V",
                        help="a setting for the baseline's process (repeatable)")
    parser.add_argument("--current-env", action="append", default=[], metavar="FACECOMPARE_X=V",
                        help="a setting for the current process (repeatable)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating baseline/current processes (default 1)")
    parser.add_argument("--interleave", metavar="SEARCH,SEARCH",
                        help="compare portrait searches of this checkout in one process instead (e.g. retinaface,cascade)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "finder.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cases = make_cases(Path(tmp))
        if args.interleave:
            report = {"machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()}, "runs": args.runs,
                      "interleaved": args.interleave, "cases": interleaved(cases, args.runs, args.interleave),
                      "load_average_at_end": os.getloadavg()}
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
            print(json.dumps(report, indent=2))
            return
        envs = {"baseline": settings_env(args.baseline_env), "current": settings_env(args.current_env)}
        srcs = {"baseline": args.baseline_src.resolve(), "current": args.current_src.resolve()}
        report = {"machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()}, "runs": args.runs,
                  "rounds": args.rounds, "baseline_src": str(srcs["baseline"]), "current_src": str(srcs["current"]),
                  "baseline_env": envs["baseline"], "current_env": envs["current"]}
        rounds: dict[str, list[dict]] = {"baseline": [], "current": []}
        for _ in range(max(1, args.rounds)):
            for side in rounds:
                rounds[side].append(run(srcs[side], cases, args.runs, envs[side]))
        for side, results in rounds.items():
            report[side] = results[0] if len(results) == 1 else median_of_rounds(results)
        report["load_average_at_end"] = os.getloadavg()
    report["ratio_p50_baseline_over_current"] = {
        name: report["baseline"][name]["p50_ms"] / report["current"][name]["p50_ms"] for name in cases}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
