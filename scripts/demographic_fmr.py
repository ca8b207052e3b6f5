"""FMR of same-sex impostor pairs against all impostor pairs (issue 23's demographic view).

Reads a pair list and the face table that `facecompare evaluate --all-impostors --embeddings FILE.npz` wrote (if the
file is absent, the images are embedded again with the evaluation's code and the table is saved there), and a
labels file (``name,sex[,basis]``; ``#`` lines are comments; sex ``F``, ``M`` or ``unknown``). For every impostor
pair whose two people are both labelled it reports, at the recommended KYC threshold (verify's MATCH bound at
``--threshold 94``) and at Similarity 80 (the default), the FMR over all labelled pairs, over same-sex pairs and over
cross-sex pairs, with counts, exact (Clopper-Pearson) 95 % intervals (the rule of three when nothing matched), the
ratio same-sex / all and a bootstrap over identities of that ratio (pairs of one person are not independent).

    python scripts/demographic_fmr.py PAIRS FACES.npz LABELS.csv [--json OUT.json] [--format lfw|csv]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np

#: verify's recommended KYC threshold (README, "The strict end"); its MATCH bound is one review margin above it
KYC_THRESHOLD = 94.0
DEFAULT_SIMILARITY = 80.0
GROUPS = ("all labelled", "same sex", "cross sex", "female-female", "male-male")


def read_labels(path: str | Path) -> dict[str, str]:
    """name -> "F" / "M"; unknown and unlabelled names are left out."""
    with open(path, newline="") as handle:
        rows = csv.DictReader(line for line in handle if line.strip() and not line.startswith("#"))
        labels = {}
        for row in rows:
            sex = (row.get("sex") or "").strip().upper()
            if sex in ("F", "M"):
                labels[row["name"].strip()] = sex
    if not labels:
        raise SystemExit(f"{path}: no rows with a name and a sex of F or M.")
    return labels


def _log_binom_pmf(i: int, n: int, p: float) -> float:
    return (math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p)
            + (n - i) * math.log1p(-p))


def _binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    logs = [_log_binom_pmf(i, n, p) for i in range(k + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact two-sided interval of a binomial rate (k of n), by bisection on the binomial CDF: the lower bound is
    the p at which P(X >= k) = alpha / 2, the upper the p at which P(X <= k) = alpha / 2."""
    if n == 0:
        return 0.0, 1.0

    def bisect(above, lo: float, hi: float) -> float:  # above(p): p is still below the bound
        for _ in range(100):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if above(mid) else (lo, mid)
        return (lo + hi) / 2

    lower = 0.0 if k == 0 else bisect(lambda p: 1.0 - _binom_cdf(k - 1, n, p) < alpha / 2, 0.0, k / n)
    upper = 1.0 if k == n else bisect(lambda p: _binom_cdf(k, n, p) > alpha / 2, k / n, 1.0)
    return lower, upper


def group_masks(selfie_sex: np.ndarray, document_sex: np.ndarray) -> dict[str, np.ndarray]:
    """Per group, which (selfie, document) cells belong to it; '' (unlabelled) is in none."""
    s, d = np.asarray(selfie_sex)[:, None], np.asarray(document_sex)[None, :]
    labelled = (s != "") & (d != "")
    same = labelled & (s == d)
    return {"all labelled": labelled, "same sex": same, "cross sex": labelled & (s != d),
            "female-female": same & (s == "F"), "male-male": same & (s == "M")}


def split_rates(match: np.ndarray, impostor: np.ndarray, selfie_sex, document_sex, selfie_code=None,
                document_code=None) -> dict:
    """False matches among the impostor pairs of each group: counts, FMR, exact 95 % interval (which treats the
    pairs as independent), and the ratios; with the identity codes, how many pairs of people the false matches are."""
    out = {}
    for name, mask in group_masks(selfie_sex, document_sex).items():
        cells = impostor & mask
        n, k = int(cells.sum()), int((match & cells).sum())
        lo, hi = clopper_pearson(k, n)
        out[name] = {"impostor_pairs": n, "false_matches": k, "fmr": k / n if n else None,
                     "fmr_ci95_clopper_pearson": [lo, hi],
                     "fmr_rule_of_three_upper": (3.0 / n if n else None) if k == 0 else None}
        if selfie_code is not None:
            i, j = np.nonzero(match & cells)
            out[name]["people_pairs"] = len({tuple(sorted(p)) for p in zip(selfie_code[i].tolist(),
                                                                             document_code[j].tolist())})
    all_fmr, same_fmr, cross_fmr = (out[g]["fmr"] for g in ("all labelled", "same sex", "cross sex"))
    out["ratio same / all"] = same_fmr / all_fmr if all_fmr else None
    out["ratio same / cross"] = same_fmr / cross_fmr if cross_fmr else None
    return out


def bootstrap_ratio(match, impostor, selfie_sex, document_sex, selfie_code, document_code, n_ids: int,
                    replicates: int = 200, seed: int = 0) -> dict:
    """95 % percentile intervals of each group's FMR and of the same / all and same / cross ratios, resampling
    identities (a pair of identities (a, b) counts m_a * m_b times, m: how often each was drawn)."""
    rng = np.random.default_rng(seed)
    masks = group_masks(selfie_sex, document_sex)
    imp = {g: (impostor & masks[g]).astype(np.float32) for g in GROUPS}
    hit_i, hit_j = np.nonzero(match & impostor & masks["all labelled"])
    hit_group = {g: masks[g][hit_i, hit_j] for g in GROUPS}
    draws = {g: [] for g in GROUPS}
    same_all, same_cross = [], []
    for _ in range(replicates):
        m = np.bincount(rng.integers(0, n_ids, n_ids), minlength=n_ids).astype(np.float64)
        ms, md = m[selfie_code], m[document_code]
        w = ms[hit_i] * md[hit_j]
        fmr = {}
        for g, mat in imp.items():
            total = float(ms @ (mat @ md.astype(np.float32)))
            fmr[g] = float(w[hit_group[g]].sum()) / total if total else math.nan
            draws[g].append(fmr[g])
        if fmr["all labelled"] > 0:
            same_all.append(fmr["same sex"] / fmr["all labelled"])
        if fmr["cross sex"] > 0:
            same_cross.append(fmr["same sex"] / fmr["cross sex"])

    def ci(v):
        v = [x for x in v if math.isfinite(x)]
        return [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if v else None

    return {"replicates": replicates, "over": "identities", "seed": seed,
            "fmr_ci95": {g: ci(v) for g, v in draws.items()}, "ratio same / all": ci(same_all),
            "ratio same / cross": ci(same_cross),
            "replicates_with_no_cross_sex_false_match": replicates - len(same_cross)}


def load_table(images, faces: str):
    from facecompare.evaluation_strict import FaceTable, embed_all_faces

    if Path(faces).is_file():
        return FaceTable.load(faces)
    from facecompare.models import create_recognizer
    from facecompare.settings import Settings

    recognizer = create_recognizer(Settings.from_env().recognizer)
    print(f"No face table at {faces}: embedding the {len(images.images):,} images again with `evaluate "
          f"--all-impostors`' code (minutes to hours; the table is saved to {faces} for the next run).",
          file=sys.stderr)
    table = embed_all_faces(images.images, model=recognizer.name, metric=recognizer.metric)
    table.save(faces)
    return table


def _fmt(r: dict) -> str:
    if not r["impostor_pairs"]:
        return "no pairs"
    lo, hi = r["fmr_ci95_clopper_pearson"]
    if r["false_matches"] == 0:
        return f"0 of {r['impostor_pairs']:,} (rule of three: below {r['fmr_rule_of_three_upper']:.2e})"
    return f"{r['fmr']:.2e} ({r['false_matches']:,} of {r['impostor_pairs']:,}) [{lo:.2e}, {hi:.2e}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pairs")
    ap.add_argument("faces", help="the face table of `evaluate --all-impostors --embeddings` (made if absent)")
    ap.add_argument("labels", help="name,sex[,basis] (evaluation/demographics/lfw-sex.csv)")
    ap.add_argument("--format", choices=["lfw", "csv"])
    ap.add_argument("--root")
    ap.add_argument("--fold", type=int)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    args.face = None
    from facecompare.cli import load_pairs as _load_pairs  # the same pair reading as `evaluate`
    from facecompare.evaluation_strict import image_set_from_pairs, score_set
    from facecompare.scoring import load_calibration
    from facecompare.settings import Settings

    pairs, _ = _load_pairs(args)
    fmt = args.format or ("csv" if args.pairs.lower().endswith(".csv") else "lfw")
    images = image_set_from_pairs(pairs, fmt=fmt)
    table = load_table(images, args.faces)
    cal = load_calibration(model=table.model)
    labels = read_labels(args.labels)
    s_sex = np.array([labels.get(who, "") for who in images.selfie_ids])
    d_sex = np.array([labels.get(who, "") for who in images.document_ids])
    people = sorted(set(images.selfie_ids) | set(images.document_ids))
    margin = Settings.from_env().review_margin
    kyc_bound = cal.similarity(cal.distance_at(KYC_THRESHOLD) - margin / cal.slope)
    result = {"pairs_file": args.pairs, "faces": args.faces, "labels": args.labels, "model": table.model,
              "identities": len(people), "identities_labelled": {s: sum(labels.get(p) == s for p in people)
                                                                  for s in ("F", "M")},
              "identities_unlabelled": sum(p not in labels for p in people),
              "recommended_kyc_threshold": KYC_THRESHOLD, "kyc_match_above_similarity": kyc_bound,
              "rules": {}}
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from strict_levers import _low, selfie_features  # verify's FACE_TOO_SMALL / LOW_QUALITY rules, as measured there

    rules = {"CompareFaces (the selfie's largest face against every document face; strict.json's rule)": "all",
             "verify (the document's largest face; FACE_TOO_SMALL / LOW_QUALITY pairs are REVIEW, not MATCH)":
             "largest"}
    for rule, document_faces in rules.items():
        scores = score_set(images, table, document_faces=document_faces)
        gated = np.zeros_like(scores.impostor)
        if document_faces == "largest":
            gated = (_low(selfie_features(images, table))[:, None]
                     | _low(selfie_features(images, table, "documents"))[None, :])
        n_imp = int(scores.impostor.sum())
        block = {"impostor_pairs_all": n_imp}
        print(f"{rule}: {n_imp:,} impostor pairs, {int((scores.impostor & group_masks(s_sex, d_sex)['all labelled']).sum()):,}"
              f" with both people labelled ({result['identities_labelled']['F']} women, "
              f"{result['identities_labelled']['M']} men, {result['identities_unlabelled']} unknown of {len(people)})")
        for key, similarity in ((f"Similarity above {kyc_bound:.2f} (verify --threshold {KYC_THRESHOLD:g}'s MATCH)",
                                 kyc_bound), (f"Similarity {DEFAULT_SIMILARITY:g} (the default)", DEFAULT_SIMILARITY)):
            match = (scores.distance <= cal.distance_at(similarity)) & ~gated
            rates = split_rates(match, scores.impostor, s_sex, d_sex, scores.selfie_code, scores.document_code)
            if args.bootstrap:
                rates["bootstrap"] = bootstrap_ratio(match, scores.impostor, s_sex, d_sex, scores.selfie_code,
                                                     scores.document_code, len(scores.identities), args.bootstrap)
            block[key] = rates
            ratio = rates["ratio same / all"]
            boot = rates.get("bootstrap", {}).get("ratio same / all")
            print(f"  {key}:")
            for g in GROUPS:
                b = rates.get("bootstrap", {}).get("fmr_ci95", {}).get(g)
                n_people = rates[g].get("people_pairs")
                print(f"    {g}: {_fmt(rates[g])}" + (f", {n_people} pairs of people" if n_people is not None else "")
                      + (f"; bootstrap [{b[0]:.2e}, {b[1]:.2e}]" if b else ""))
            cross, boot_cross = rates["ratio same / cross"], rates.get("bootstrap", {}).get("ratio same / cross")
            print(f"    same / all: {'-' if ratio is None else f'{ratio:.2f}'}"
                  + (f" [{boot[0]:.2f}, {boot[1]:.2f}]" if boot else "")
                  + f"; same / cross: {'-' if cross is None else f'{cross:.2f}'}"
                  + (f" [{boot_cross[0]:.2f}, {boot_cross[1]:.2f}]" if boot_cross else "")
                  + (" (bootstrap over identities)" if boot else ""))
        result["rules"][rule] = block
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
