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
of all users), TAR at FMR 1e-3 and 1e-4 (genuine: probe vs own user; impostor: probe vs every other user), the
separation d' of the genuine and impostor scores, and at the product's default UserMatchThreshold (Similarity
80 of the recognizer's calibration) the TAR and the FMR.

Probes come twice: as LFW has them ("clean"), and "degraded" as a document portrait often is (shrunk to a
quarter of its size, blurred back up and saved as a JPEG of quality 30), the harder case that tells the ways of
scoring apart.

The embeddings are cached (``--cache``, a .npz outside the repository: they are biometric templates) so that the
analysis can be rerun without embedding again.

    python benchmarks/bench_user_scoring.py [--people 300] [--min-images 6] [--seed 24] [--workers 2]
                                            [--cache /tmp/facecompare-user-scoring.npz]
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


def measure(scores: np.ndarray, product_distance: float) -> dict:
    """Metrics of a probes x users cosine-similarity matrix whose diagonal is the genuine pairs."""
    n = len(scores)
    genuine = np.diag(scores)
    impostor = scores[~np.eye(n, dtype=bool)]
    out = {"rank1": round(float(np.mean(scores.argmax(axis=1) == np.arange(n))), 4)}
    for fmr in (1e-3, 1e-4):
        threshold = float(np.quantile(impostor, 1 - fmr, method="higher"))  # similarity at FMR <= fmr
        out[f"tar_at_fmr_{fmr:.0e}"] = round(float(np.mean(genuine > threshold)), 4)
        out[f"cosine_distance_at_fmr_{fmr:.0e}"] = round(1 - threshold, 4)
    out["d_prime"] = round(float((genuine.mean() - impostor.mean())
                                 / np.sqrt((genuine.var() + impostor.var()) / 2)), 3)
    at = 1 - product_distance  # Similarity 80 as a cosine similarity
    out["tar_at_similarity_80"] = round(float(np.mean(genuine >= at)), 4)
    out["fmr_at_similarity_80"] = float(f"{np.mean(impostor >= at):.2e}")
    out["impostor_pairs"] = int(impostor.size)
    return out


def degraded(paths: list[str], folder: Path) -> dict[str, str]:
    """{original path: path of its degraded copy} (written once into ``folder``)."""
    from PIL import Image, ImageFilter

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for path in paths:
        target = folder / ("degraded-" + Path(path).name)
        if not target.exists():
            with Image.open(path) as image:
                small = image.convert("RGB").resize((image.width // 4, image.height // 4), Image.BILINEAR)
                small.resize(image.size, Image.BICUBIC).filter(ImageFilter.GaussianBlur(1)).save(target, quality=30)
        out[path] = str(target)
    return out


def embeddings(paths: list[str], workers: int, cache: Path) -> tuple[dict[str, np.ndarray], str, float]:
    """{path: unit vector} (images without a face left out), the model, and the seconds embedding took (0 when
    all came from the cache)."""
    cached: dict[str, np.ndarray] = {}
    model = ""
    if cache.exists():
        with np.load(cache, allow_pickle=False) as data:
            model = str(data["model"])
            cached = dict(zip(data["paths"].tolist(), data["vectors"]))
    missing = [p for p in paths if p not in cached]
    seconds = 0.0
    if missing:
        from facecompare.evaluation import embed_images

        started = time.perf_counter()
        embedded = embed_images(missing, workers=workers, progress=False)
        seconds = time.perf_counter() - started
        for path, (embedding, _, _) in embedded.items():
            if embedding is not None:
                cached[path] = unit(np.asarray(embedding.vector, dtype=np.float64))
                model = embedding.model
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, paths=np.array(list(cached)), vectors=np.stack(list(cached.values())), model=model)
    return {p: cached[p] for p in paths if p in cached}, model, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=300)
    parser.add_argument("--min-images", type=int, default=6)
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", default="/tmp/facecompare-user-scoring.npz",
                        help="embeddings cache (.npz; outside the repository)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "user-scoring.json"))
    args = parser.parse_args(argv)
    if not LFW.is_dir():
        print(f"LFW not found at {LFW}", file=sys.stderr)
        return 2
    from facecompare.scoring import load_calibration

    chosen = choose(args.people, args.min_images, args.seed)
    copies = degraded([probe for _, probe, _ in chosen], Path(args.cache).with_suffix(".degraded"))
    paths = [p for _, probe, enrol in chosen for p in (probe, *enrol)] + list(copies.values())
    vector, model, seconds = embeddings(paths, args.workers, Path(args.cache))
    product_distance = load_calibration(model=model).distance_at(80.0)
    people = [(name, probe, [p for p in enrol if p in vector]) for name, probe, enrol in chosen
              if probe in vector and copies[probe] in vector and len([p for p in enrol if p in vector]) >= max(SIZES)]
    probe_sets = {"clean": np.stack([vector[probe] for _, probe, _ in people]),
                  "degraded": np.stack([vector[copies[probe]] for _, probe, _ in people])}
    results: dict = {"people": len(people), "images": len(paths), "embedding_seconds": round(seconds, 1),
                     "seed": args.seed, "model": model,
                     "cosine_distance_at_similarity_80": round(product_distance, 4)}
    print(f"{len(people)} people, {len(paths)} images ({seconds:.0f} s embedding); {model}")
    print(f"{'probes':<9} {'strategy':<11} {'enrolled':>8} {'rank-1':>7} {'TAR@1e-3':>9} {'TAR@1e-4':>9} "
          f"{'d-prime':>8} {'TAR@S80':>8} {'FMR@S80':>9}")
    for kind, probes in probe_sets.items():
        for strategy in STRATEGIES:
            for size in SIZES:
                users = [np.stack([vector[p] for p in enrol[:size]]) for _, _, enrol in people]
                row = measure(user_scores(probes, users, strategy), product_distance)
                results.setdefault(kind, {}).setdefault(strategy, {})[str(size)] = row
                print(f"{kind:<9} {strategy:<11} {size:>8} {row['rank1']:>7.3f} {row['tar_at_fmr_1e-03']:>9.3f} "
                      f"{row['tar_at_fmr_1e-04']:>9.3f} {row['d_prime']:>8.2f} {row['tar_at_similarity_80']:>8.3f} "
                      f"{row['fmr_at_similarity_80']:>9.1e}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
