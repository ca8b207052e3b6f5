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

from facecompare.cli import load_pairs as _load_pairs  # the same pair reading as `evaluate`
from facecompare.evaluation_strict import FEATURES, FaceTable, image_set_from_pairs, score_set, tar_at_fmr
from facecompare.quality import QUALITY_BARS
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


def _low(f: np.ndarray) -> np.ndarray:
    """Below verify's LOW quality bar or its 40 px minimum (FACE_TOO_SMALL / LOW_QUALITY: REVIEW today)."""
    conf, px, sharp, (lo, hi), yaw, pitch = QUALITY_BARS["LOW"]
    return ((f[:, F["confidence"]] < conf) | (f[:, F["width_px"]] < max(px, 40)) | (f[:, F["sharpness"]] < sharp)
            | (f[:, F["brightness"]] < lo) | (f[:, F["brightness"]] > hi) | (np.abs(f[:, F["yaw"]]) > yaw)
            | (np.abs(f[:, F["pitch"]]) > pitch))


def gates(f: np.ndarray, g: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Candidate gates on what the engine measures: (selfies sent to REVIEW, documents sent to REVIEW), on top of
    verify's current rules (FACE_TOO_SMALL, LOW_QUALITY)."""
    left, top, w, h = f[:, F["left"]], f[:, F["top"]], f[:, F["box_width"]], f[:, F["box_height"]]
    cut = (left < EDGE) | (top < EDGE) | (left + w > 1 - EDGE) | (top + h > 1 - EDGE)
    yaw, pitch = np.abs(f[:, F["yaw"]]), np.abs(f[:, F["pitch"]])
    sharp, bright = f[:, F["sharpness"]], f[:, F["brightness"]]
    base_s, base_d = _low(f), _low(g)
    selfie = {
        "selfie face cut off by the image edge (box within 1 % of the border)": cut,
        "selfie |yaw| > 30": yaw > 30,
        "selfie |pitch| > 25": pitch > 25,
        "selfie sharpness < 15 (MEDIUM bar)": sharp < 15,
        "selfie brightness outside 10-95 (MEDIUM bar)": (bright < 10) | (bright > 95),
        "selfie face < 80 px wide": f[:, F["width_px"]] < 80,
        "all selfie gates above but size": cut | (yaw > 30) | (pitch > 25) | (sharp < 15) | (bright < 10) | (bright > 95),
    }
    out = {"verify's current rules (FACE_TOO_SMALL < 40 px, LOW_QUALITY): the baseline below": (base_s, base_d)}
    out.update({k: (v | base_s, base_d) for k, v in selfie.items()})
    out["document sharpness < 15"] = (base_s, base_d | (g[:, F["sharpness"]] < 15))
    out["document face < 60 px wide"] = (base_s, base_d | (g[:, F["width_px"]] < 60))
    return out


QUALITY = ("sharpness", "yaw", "pitch", "width_px")


def quality_terms(f: np.ndarray) -> np.ndarray:
    """Per face: sharpness / 100, |yaw| / 45, |pitch| / 45, log2 of the width in pixels (missing faces: zeros)."""
    q = np.stack([f[:, F["sharpness"]] / 100, np.abs(f[:, F["yaw"]]) / 45, np.abs(f[:, F["pitch"]]) / 45,
                  np.log2(np.maximum(f[:, F["width_px"]], 1.0))], axis=1)
    return np.nan_to_num(q)


def fit_quality_score(scores, sf: np.ndarray, df: np.ndarray, seed: int = 0, impostors: int = 50_000) -> np.ndarray:
    """Logistic regression of same-person on [distance, selfie quality, document quality] (balanced classes,
    Newton steps): a quality-aware Similarity. Returns the weights (bias first)."""
    rng = np.random.default_rng(seed)
    gi, gj = np.nonzero(scores.genuine & np.isfinite(scores.distance))
    ii, ij = np.nonzero(scores.impostor & np.isfinite(scores.distance))
    pick = rng.choice(len(ii), size=min(impostors, len(ii)), replace=False)
    ii, ij = ii[pick], ij[pick]
    rows_i, rows_j = np.concatenate([gi, ii]), np.concatenate([gj, ij])
    x = np.column_stack([np.ones(len(rows_i)), scores.distance[rows_i, rows_j], quality_terms(sf)[rows_i],
                         quality_terms(df)[rows_j]])
    y = np.concatenate([np.ones(len(gi)), np.zeros(len(ii))])
    weight = np.where(y == 1, 0.5 / len(gi), 0.5 / len(ii))
    w = np.zeros(x.shape[1])
    for _ in range(30):
        p = 1 / (1 + np.exp(-x @ w))
        grad = x.T @ (weight * (p - y)) + 1e-4 * w
        hess = (x * (weight * p * (1 - p))[:, None]).T @ x + 1e-4 * np.eye(len(w))
        w -= np.linalg.solve(hess, grad)
    return w


def quality_score_distance(scores, sf: np.ndarray, df: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Minus the fitted log-odds, as a distance (smaller: more likely the same person); failures stay inf."""
    k = len(QUALITY)
    z = w[0] + w[1] * scores.distance + (quality_terms(sf) @ w[2:2 + k])[:, None] + (quality_terms(df) @ w[2 + k:])[None, :]
    return np.where(np.isfinite(scores.distance), -z, np.inf)


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


def decisions(scores, cal, threshold: float, gated_s: np.ndarray, gated_d: np.ndarray, margin: float = 1.0) -> dict:
    """verify's decisions at ``threshold``: MATCH below the band (distance), REVIEW inside it or when gated."""
    d_t = cal.distance_at(threshold)
    lo, hi = d_t - margin / cal.slope, d_t + margin / cal.slope
    gated = gated_s[:, None] | gated_d[None, :]
    match = (scores.distance <= lo) & ~gated
    review = ~match & ((scores.distance <= hi) | gated) & np.isfinite(scores.distance)
    g, i = scores.genuine, scores.impostor
    return {"match_above": cal.similarity(lo), "impostor_matches": int(match[i].sum()),
            "impostor_match_rate": float(match[i].mean()), "genuine_match": float(match[g].mean()),
            "genuine_review": float(review[g].mean()), "genuine_no_match": float((~match & ~review)[g].mean())}


def snorm_distance(images, table, scores, cohort: FaceTable, k: int = 100) -> np.ndarray:
    """Adaptive S-norm (top-k cohort statistics of each side) as a distance: minus the normalised score. The
    cohort's people (LFW folder names) that appear in the evaluated set are left out of it."""
    from pathlib import Path

    present = set(images.selfie_ids) | set(images.document_ids)
    first = cohort.first_face()
    keep = [first[i] for i, p in enumerate(cohort.paths) if first[i] >= 0 and Path(p).parent.name not in present]
    c = cohort.vectors[keep].astype(np.float64)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    index = {p: i for i, p in enumerate(table.paths)}
    firsts = table.first_face()

    def side(paths):
        rows = np.array([firsts[index[p]] for p in paths])
        v = table.vectors[np.maximum(rows, 0)].astype(np.float64)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        top = -np.sort(-(v @ c.T), axis=1)[:, :k]
        return top.mean(1), top.std(1) + 1e-6

    mu_s, sd_s = side(images.selfies)
    mu_d, sd_d = side(images.documents)
    sim = 1.0 - scores.distance
    z = ((sim - mu_s[:, None]) / sd_s[:, None] + (sim - mu_d[None, :]) / sd_d[None, :]) / 2
    return np.where(np.isfinite(scores.distance), -z, np.inf), len(keep)


def by_document_condition(pairs, images, scores, cal, similarity: float = 80.0) -> None:
    """FMR at ``similarity`` of the impostor pairs, by each condition column of the document (synth-kyc's)."""
    conditions = {p.second: dict(p.conditions) for p in pairs}
    names = sorted({k for c in conditions.values() for k in c if not k.endswith(("_source", "_identity"))})
    hit = scores.distance <= cal.distance_at(similarity)
    for name in names:
        values = np.array([conditions.get(d, {}).get(name, "") for d in images.documents])
        if len(set(values)) > 12:
            continue
        cells = []
        for v in sorted(set(values)):
            cols = values == v
            imp = scores.impostor[:, cols]
            cells.append(f"{v}: {hit[:, cols][imp].sum()} of {imp.sum():,} ({hit[:, cols][imp].mean():.1e})")
        print(f"FMR at {similarity:g} by document {name}: " + "; ".join(cells))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pairs")
    ap.add_argument("faces")
    ap.add_argument("--format", choices=["lfw", "csv"])
    ap.add_argument("--root")
    ap.add_argument("--fold", type=int)
    ap.add_argument("--json")
    ap.add_argument("--fit-on", nargs=2, metavar=("PAIRS", "FACES"), help="fit the quality-aware score on another "
                    "set (its pair list and face table; LFW lists use --fit-fold)")
    ap.add_argument("--fit-fold", type=int)
    ap.add_argument("--cohort", metavar="FACES", help="a face table of LFW images for an S-norm cohort (measurement "
                    "only: LFW's terms do not make it a cohort to ship)")
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
    sf, df = selfie_features(images, table), selfie_features(images, table, "documents")
    for name, (gated_s, gated_d) in gates(sf, df).items():
        d = base.distance.copy()
        d[gated_s, :] = np.inf
        d[:, gated_d] = np.inf
        r = measure(d, base.genuine, base.impostor, cal)
        review = base.genuine & (gated_s[:, None] | gated_d[None, :])
        r["selfies gated"] = float(np.mean(gated_s))
        r["genuine pairs sent to review"] = float(review.sum() / max(1, base.genuine.sum()))
        results[f"gate: {name}"] = r
    print(f"{len(images.selfies)} selfies, {len(images.documents)} documents")
    print("| lever | TAR@1e-3 | TAR@1e-4 | FMR@80 (pairs) | FMR@91.6 (pairs) | FNMR@91.6 | genuine to review |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        t4 = f"{100 * r['tar@0.0001']:.2f} %" + ("" if r["supported@0.0001"] else " (unsupported)")
        review = f"{100 * r['genuine pairs sent to review']:.1f} %" if "selfies gated" in r else ""
        print(f"| {name} | {100 * r['tar@0.001']:.2f} % | {t4} | {r['fmr@80']:.2e} ({r['fm@80']}) | "
              f"{r['fmr@91.6']:.2e} ({r['fm@91.6']}) | {100 * r['fnmr@91.6']:.2f} % | {review} |")
    print("\n| verify --threshold | MATCH above | impostor MATCH rate (pairs) | genuine MATCH | genuine REVIEW | "
          "genuine NO_MATCH |")
    print("|---|---|---|---|---|---|")
    gated_s, gated_d = next(iter(gates(sf, df).values()))  # verify's current FACE_TOO_SMALL / LOW_QUALITY
    for t in (80, 90, 94, 95, 97, 99):
        row = decisions(base, cal, t, gated_s, gated_d)
        results[f"verify --threshold {t}"] = row
        print(f"| {t} | {row['match_above']:.2f} | {row['impostor_match_rate']:.2e} ({row['impostor_matches']}) | "
              f"{100 * row['genuine_match']:.2f} % | {100 * row['genuine_review']:.2f} % | "
              f"{100 * row['genuine_no_match']:.2f} % |")
    if args.fit_on:
        fit_args = argparse.Namespace(pairs=args.fit_on[0], format=None, root=None, fold=args.fit_fold, face=None)
        fit_pairs, _ = _load_pairs(fit_args)
        fit_images = image_set_from_pairs(fit_pairs, fmt="csv" if args.fit_on[0].lower().endswith(".csv") else "lfw")
        fit_table = FaceTable.load(args.fit_on[1])
        fit_scores = score_set(fit_images, fit_table, document_faces="largest")
        w = fit_quality_score(fit_scores, selfie_features(fit_images, fit_table),
                              selfie_features(fit_images, fit_table, "documents"))
        d = quality_score_distance(base, sf, df, w)
        g = d[base.genuine]
        imp = np.sort(d[base.impostor])
        name = f"quality-aware score fitted on {args.fit_on[0]} (weights {np.round(w, 2).tolist()})"
        r = {f"tar@{f:g}": tar_at_fmr(g, imp, f)[0] for f in (1e-3, 1e-4)}
        results[name] = r
        print(f"| {name} | {100 * r['tar@0.001']:.2f} % | {100 * r['tar@0.0001']:.2f} % | | | | |")
    if args.cohort:
        d, size = snorm_distance(images, table, base, FaceTable.load(args.cohort))
        g, imp = d[base.genuine], np.sort(d[base.impostor])
        name = f"adaptive S-norm, top-100 of a cohort of {size} LFW faces"
        r = {f"tar@{f:g}": tar_at_fmr(g, imp, f)[0] for f in (1e-3, 1e-4)}
        results[name] = r
        print(f"| {name} | {100 * r['tar@0.001']:.2f} % | {100 * r['tar@0.0001']:.2f} % | | | | |")
    by_document_condition(pairs, images, base, cal)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({k: {a: (None if isinstance(b, float) and not math.isfinite(b) else b) for a, b in v.items()}
                       for k, v in results.items()}, handle, indent=2)


if __name__ == "__main__":
    main()
