"""Levers against false matches at the strict end, measured without a new model.

Reads a pair list and the face table that `facecompare evaluate --all-impostors --embeddings FILE.npz` wrote, then
measures, for each lever, TAR at FMR 1e-3 / 1e-4, FMR at the default threshold (Similarity 80) and at the
MATCH bound of `verify` (the top of the review band, 91.6), and how many genuine pairs a gate sends to REVIEW.
A gated pair is never a MATCH (REVIEW), so it counts as a non-match for both TAR and FMR.

    python scripts/strict_levers.py PAIRS FACES.npz [--format lfw|csv] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from facecompare.cli import _load_pairs  # the same pair reading as `evaluate`
from facecompare.evaluation_strict import FEATURES, FaceTable, image_set_from_pairs, score_set, tar_at_fmr
from facecompare.scoring import load_calibration

F = {name: i for i, name in enumerate(FEATURES)}
EDGE = 0.01  # a face box within 1 % of the image border is cut off by it


def selfie_features(images, table, roles: str = "selfies") -> np.ndarray:
    index = {p: i for i, p in enumerate(table.paths)}
    first = table.first_face()
    paths = images.selfies if roles == "selfies" else images.documents
    rows = np.full((len(paths), len(FEATURES)), np.nan, dtype=np.float64)
    for k, p in enumerate(paths):
        j = first[index[p]]
        if j >= 0:
            rows[k] = table.features[j]
    return rows


def gates(f: np.ndarray) -> dict[str, np.ndarray]:
    """Candidate selfie gates on what the engine measures (True: the selfie goes to REVIEW)."""
    left, top, w, h = f[:, F["left"]], f[:, F["top"]], f[:, F["box_width"]], f[:, F["box_height"]]
    cut = (left < EDGE) | (top < EDGE) | (left + w > 1 - EDGE) | (top + h > 1 - EDGE)
    yaw, pitch = np.abs(f[:, F["yaw"]]), np.abs(f[:, F["pitch"]])
    sharp, bright = f[:, F["sharpness"]], f[:, F["brightness"]]
    return {
        "face cut off by the image edge (box within 1 % of the border)": cut,
        "|yaw| > 30": yaw > 30,
        "|pitch| > 25": pitch > 25,
        "|yaw| > 30 or |pitch| > 25": (yaw > 30) | (pitch > 25),
        "sharpness < 15 (MEDIUM bar)": sharp < 15,
        "brightness outside 10-95 (MEDIUM bar)": (bright < 10) | (bright > 95),
        "face < 80 px wide": f[:, F["width_px"]] < 80,
        "all of the above but size": cut | (yaw > 30) | (pitch > 25) | (sharp < 15) | (bright < 10) | (bright > 95),
    }


def measure(dist: np.ndarray, genuine: np.ndarray, impostor: np.ndarray, cal) -> dict:
    g = dist[genuine].astype(np.float64)
    imp = np.sort(dist[impostor].astype(np.float64))
    out = {"genuine": int(len(g)), "impostor": int(len(imp))}
    for f in (1e-3, 1e-4):
        tar, limit, _ = tar_at_fmr(g, imp, f)
        out[f"tar@{f:g}"] = tar
        out[f"supported@{f:g}"] = len(imp) >= 3 / f
    for s in (80, 91.6):
        d = cal.distance_at(s)
        out[f"fm@{s:g}"] = int(np.sum(imp <= d))
        out[f"fmr@{s:g}"] = float(np.mean(imp <= d))
        out[f"fnmr@{s:g}"] = float(np.mean(g > d))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pairs")
    ap.add_argument("faces")
    ap.add_argument("--format", choices=["lfw", "csv"])
    ap.add_argument("--root")
    ap.add_argument("--fold", type=int)
    ap.add_argument("--json")
    args = ap.parse_args()
    args.face = None
    pairs, _ = _load_pairs(args)
    fmt = args.format or ("csv" if args.pairs.lower().endswith(".csv") else "lfw")
    images = image_set_from_pairs(pairs, fmt=fmt)
    table = FaceTable.load(args.faces)
    cal = load_calibration(model=table.model)
    results = {}
    base_all = score_set(images, table)
    base = score_set(images, table, document_faces="largest")
    results["CompareFaces (every document face)"] = measure(base_all.distance, base_all.genuine, base_all.impostor, cal)
    results["verify (the document's largest face): the baseline below"] = measure(base.distance, base.genuine,
                                                                                  base.impostor, cal)
    sf = selfie_features(images, table)
    for name, gated in gates(sf).items():
        d = base.distance.copy()
        d[gated, :] = np.inf
        r = measure(d, base.genuine, base.impostor, cal)
        r["selfies gated"] = float(np.mean(gated))
        r["genuine pairs sent to review"] = float(base.genuine[gated].sum() / max(1, base.genuine.sum()))
        results[f"gate: {name}"] = r
    print(f"{len(images.selfies)} selfies, {len(images.documents)} documents")
    print("| lever | TAR@1e-3 | TAR@1e-4 | FMR@80 (pairs) | FMR@91.6 (pairs) | FNMR@91.6 | genuine to review |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        t4 = f"{100 * r['tar@0.0001']:.2f} %" + ("" if r["supported@0.0001"] else " (unsupported)")
        review = f"{100 * r['genuine pairs sent to review']:.1f} %" if "selfies gated" in r else ""
        print(f"| {name} | {100 * r['tar@0.001']:.2f} % | {t4} | {r['fmr@80']:.2e} ({r['fm@80']}) | "
              f"{r['fmr@91.6']:.2e} ({r['fm@91.6']}) | {100 * r['fnmr@91.6']:.2f} % | {review} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({k: {a: (None if isinstance(b, float) and not math.isfinite(b) else b) for a, b in v.items()}
                       for k, v in results.items()}, handle, indent=2)


if __name__ == "__main__":
    main()
