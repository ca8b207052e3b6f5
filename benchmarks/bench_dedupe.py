"""The duplicate-identity sweep on LFW: `facecompare dedupe` over N images of people photographed up to K times
each (ids from the file names, identities from the folders), indexed once and searched at several thresholds.
Prints, per threshold, the precision and recall of the pairs that match directly and of the pairs the groups
imply (union-find), the number of groups and the largest; and the wall time of the indexing run.

    python benchmarks/bench_dedupe.py [--images 1000] [--per-person 4] [--seed 5] [--thresholds 80,90,95,99]
                                      [--out benchmarks/results/dedupe.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LFW = Path(os.environ.get("FACECOMPARE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "lfw" / "lfw-deepfunneled"
FACECOMPARE = [sys.executable, "-m", "facecompare.cli"]


def manifest(path: Path, images: int, per_person: int, seed: int) -> dict[str, str]:
    """Rows id,image: LFW's people in a seeded shuffle, up to ``per_person`` images each, until ``images`` rows.
    Returns id -> person."""
    people = sorted(p.name for p in LFW.iterdir() if p.is_dir())
    random.Random(seed).shuffle(people)
    rows = []
    for person in people:
        for image in sorted((LFW / person).glob("*.jpg"))[:per_person]:
            rows.append((image.stem, str(image), person))
        if len(rows) >= images:
            break
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "image"])
        writer.writerows((i, image) for i, image, _ in rows)
    return {i: person for i, _, person in rows}


def scores(found: set, true: set) -> dict:
    hits = len(found & true)
    return {"pairs": len(found), "precision": round(hits / max(1, len(found)), 4),
            "recall": round(hits / max(1, len(true)), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--per-person", type=int, default=4)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--thresholds", default="80,90,95,99")
    parser.add_argument("--out", help="write the figures as JSON here too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        person_of = manifest(tmp / "lfw.csv", args.images, args.per_person, args.seed)
        true = {(a, b) for a, b in combinations(sorted(person_of), 2) if person_of[a] == person_of[b]}
        figures = {"images": len(person_of), "people": len(set(person_of.values())), "true_pairs": len(true),
                   "thresholds": {}}
        for n, threshold in enumerate(float(t) for t in args.thresholds.split(",")):
            started = time.perf_counter()
            subprocess.run([*FACECOMPARE, "dedupe", str(tmp / "lfw.csv"), "--out", str(tmp / "run"), "--no-progress",
                            "--threshold", f"{threshold:g}"], check=True, stdout=subprocess.DEVNULL)
            seconds = time.perf_counter() - started
            if n == 0:
                figures["index_and_search_seconds"] = round(seconds, 1)
            groups = json.loads((tmp / "run" / "groups.json").read_text())
            direct = {(e["a"], e["b"]) for g in groups for e in g["pairs"]}
            implied = {pair for g in groups for pair in combinations(sorted(g["ids"]), 2)}
            row = {"direct": scores(direct, true), "groups": scores(implied, true), "group_count": len(groups),
                   "largest_group": max((len(g["ids"]) for g in groups), default=0), "seconds": round(seconds, 1)}
            figures["thresholds"][f"{threshold:g}"] = row
            print(f"threshold {threshold:g}: direct pairs {row['direct']}, group pairs {row['groups']}, "
                  f"{row['group_count']} groups, largest {row['largest_group']}, {seconds:.1f} s", flush=True)
    print(json.dumps(figures, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
