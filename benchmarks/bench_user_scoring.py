"""How a Rekognition User's faces should combine into one score (SearchUsers, SearchUsersByImage, AssociateFaces).

LFW people with at least ``--min-images`` photos, in a seeded shuffle, ``--people`` of them: per person one photo
is held back as the probe and up to 5 others are enrolled as the person's user. Every probe is scored against
every user (the gallery is all the users), for users of 1, 2, 3 and 5 enrolled photos and for each way of
scoring a user:

* ``best``: the best single face (the highest cosine similarity of the probe to any of the user's faces);
* ``mean``: the cosine similarity to the mean of the user's L2-normalised embeddings (a centroid, renormalised);
* ``mean-score``: the mean of the per-face similarities;
* ``both``: the average of ``best`` and ``mean``.

Printed and saved, per strategy and enrolment size: rank-1 identification (the probe's own user scores highest
of all users) and TAR at FMR 1e-3 (genuine: probe vs own user; impostor: probe vs every other user), with the
threshold at FMR 1e-3 in cosine distance, so that a calibrated Similarity threshold can be compared.

    python benchmarks/bench_user_scoring.py [--people 300] [--min-images 6] [--seed 24] [--workers 2]
                                            [--out benchmarks/results/user-scoring.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
LFW = Path(os.environ.get("FACECOMPARE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "lfw" / "lfw-deepfunneled"
SIZES = (1, 2, 3, 5)
STRATEGIES = ("best", "mean", "mean-score", "both")


def choose(people: int, min_images: int, seed: int) -> list[tuple[str, str, list[str]]]:
    """(person, probe path, enrolment paths in order) for ``people`` LFW people with >= ``min_images`` photos."""
    rng = random.Random(seed)
    names = sorted(p.name for p in LFW.iterdir() if p.is_dir() and len(list(p.glob("*.jpg"))) >= min_images)
    rng.shuffle(names)
    chosen = []
    for name in names[:people]:
        photos = sorted(str(p) for p in (LFW / name).glob("*.jpg"))
        rng.shuffle(photos)
        chosen.append((name, photos[0], photos[1:1 + max(SIZES)]))
    return chosen


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def user_scores(probes: np.ndarray, users: list[np.ndarray], strategy: str) -> np.ndarray:
    """Cosine similarity of every probe (rows) to every user (columns) under ``strategy``."""
    out = np.empty((len(probes), len(users)), dtype=np.float64)
    for j, faces in enumerate(users):
        sims = probes @ faces.T  # (probes, faces of user j)
        best = sims.max(axis=1)
        mean = probes @ unit(faces.mean(axis=0))
        out[:, j] = {"best": best, "mean": mean, "mean-score": sims.mean(axis=1),
                     "both": (best + mean) / 2}[strategy]
    return out


def measure(scores: np.ndarray, fmr: float = 1e-3) -> dict:
    n = len(scores)
    genuine = np.diag(scores)
    impostor = scores[~np.eye(n, dtype=bool)]
    threshold = float(np.quantile(impostor, 1 - fmr, method="higher"))  # similarity at FMR <= fmr
    rank1 = float(np.mean(scores.argmax(axis=1) == np.arange(n)))
    return {"rank1": round(rank1, 4), "tar_at_fmr_1e-3": round(float(np.mean(genuine > threshold)), 4),
            "cosine_distance_at_fmr_1e-3": round(1 - threshold, 4), "impostor_pairs": int(impostor.size)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=300)
    parser.add_argument("--min-images", type=int, default=6)
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "user-scoring.json"))
    args = parser.parse_args(argv)
    if not LFW.is_dir():
        print(f"LFW not found at {LFW}", file=sys.stderr)
        return 2
    from facecompare.evaluation import embed_images

    chosen = choose(args.people, args.min_images, args.seed)
    paths = [p for _, probe, enrol in chosen for p in (probe, *enrol)]
    started = time.perf_counter()
    embedded = embed_images(paths, workers=args.workers, progress=False)
    seconds = time.perf_counter() - started
    vector = {p: unit(np.asarray(e.vector, dtype=np.float64)) for p, (e, _, _) in embedded.items() if e is not None}
    people = [(name, probe, [p for p in enrol if p in vector]) for name, probe, enrol in chosen
              if probe in vector and len([p for p in enrol if p in vector]) >= max(SIZES)]
    probes = np.stack([vector[probe] for _, probe, _ in people])
    results: dict = {"people": len(people), "images": len(paths), "embedding_seconds": round(seconds, 1),
                     "seed": args.seed, "model": next(e.model for e, _, _ in embedded.values() if e is not None),
                     "by_strategy": {}}
    print(f"{len(people)} people, {len(paths)} images embedded in {seconds:.0f} s")
    print(f"{'strategy':<11} {'enrolled':>8} {'rank-1':>7} {'TAR@FMR1e-3':>12} {'dist@FMR1e-3':>13}")
    for strategy in STRATEGIES:
        for size in SIZES:
            users = [np.stack([vector[p] for p in enrol[:size]]) for _, _, enrol in people]
            row = measure(user_scores(probes, users, strategy))
            results["by_strategy"].setdefault(strategy, {})[str(size)] = row
            print(f"{strategy:<11} {size:>8} {row['rank1']:>7.3f} {row['tar_at_fmr_1e-3']:>12.3f} "
                  f"{row['cosine_distance_at_fmr_1e-3']:>13.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
