"""`facecompare evaluate --all-impostors`: the command's steps and its printout (see evaluation_strict)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from ..errors import InvalidParameterException


def evaluate_all_impostors(args, settings, load_pairs, calibration_for) -> int:
    from ..evaluation_strict import (
        FaceTable,
        embed_all_faces,
        image_set_from_pairs,
        score_set,
        strict_summary,
        worst_impostors,
        write_det,
    )
    from ..models import create_recognizer

    if args.from_results:
        raise InvalidParameterException("--all-impostors embeds the images' faces; it cannot reuse a pairs.csv "
                                        "(--from-results). Use --embeddings FILE.npz to embed only once.")
    if args.bootstrap < 0:
        raise InvalidParameterException("--bootstrap must be 0 or more.")
    recognizer = create_recognizer(settings.recognizer)
    model, metric = recognizer.name, recognizer.metric
    calibration = calibration_for(model, args.calibration)  # a wrong file fails before the embedding
    pairs, _ = load_pairs(args)
    fmt = args.format or ("csv" if args.pairs.lower().endswith(".csv") else "lfw")
    images = image_set_from_pairs(pairs, fmt=fmt)
    face = args.face or "largest"
    started = time.perf_counter()
    table = None
    cache = Path(args.embeddings) if args.embeddings else None
    overrides = {k: v for k, v in (("tta", args.tta), ("recognizer", args.recognizer)) if v}
    if cache is not None and cache.is_file():
        table = FaceTable.load(cache)
        if table.model != model:
            raise InvalidParameterException(f"{cache} holds embeddings of {table.model}, not of {model}.")
        missing = sorted(set(images.images) - set(table.paths))
        if missing:  # embed only the images the file does not hold yet, and add them to it
            table = table.merged(embed_all_faces(missing, workers=args.workers, settings_kwargs=overrides,
                                                 progress=not args.no_progress, model=model, metric=metric))
            table.save(cache)
    if table is None:
        table = embed_all_faces(images.images, workers=args.workers, settings_kwargs=overrides,
                                progress=not args.no_progress, model=model, metric=metric)
        if cache is not None:
            table.save(cache)
    embed_seconds = time.perf_counter() - started
    wanted = set(images.images)
    scores = score_set(images, table, face=face, document_faces=args.document_faces)
    summary = {"model": model, "pairs_file": args.pairs, "rule": _rule(face, args.document_faces),
               "single_role": images.single_role, "selfies": len(images.selfies), "documents": len(images.documents),
               "images": len(images.images),
               "images_without_face": sum(1 for p, r in zip(table.paths, table.reasons) if r and p in wanted),
               "embedding_seconds": round(embed_seconds, 1)}
    summary.update(strict_summary(scores, calibration, bootstrap=args.bootstrap))
    summary["highest_impostors"] = worst_impostors(scores, images, table, calibration)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "strict.json").write_text(json.dumps(_finite(summary), indent=2, default=float) + "\n")
    det = write_det(out / "det-strict.png", scores, title=f"({Path(args.pairs).name})")
    print_strict(summary)
    print(f"Wrote {out / 'strict.json'}, {det}" + (f"; embeddings in {cache}" if cache else ""))
    return 0


def _rule(face: str, document_faces: str) -> str:
    if face == "center":
        return "the face nearest each image's centre, in both roles (LFW's protocol)"
    if document_faces == "largest":
        return "the selfie's largest face against the document's largest face (verify)"
    return "the selfie's largest face against each face of the document, best match (CompareFaces)"


def _finite(value):
    """JSON has no infinity: an unbounded threshold (every pair matches) is written as null."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _pct(x) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{100 * x:.3g} %"


def _ci(ci) -> str:
    return "" if not ci else f" [95 % CI {_pct(ci[0])} to {_pct(ci[1])}]"


def print_strict(s: dict) -> None:
    print(f"Recognizer: {s['model']}; rule: {s['rule']}")
    print(f"Images: {s['images']} ({s['images_without_face']} without a face); identities: {s['identities']}; "
          f"genuine pairs: {s['genuine_pairs']:,}; impostor pairs: {s['impostor_pairs']:,}")
    for row in s["tar_at_fmr"]:
        note = "" if row["supported"] else (f" (not supported: {s['impostor_pairs']:,} impostor pairs, the rule of "
                                            f"three needs {math.ceil(3 / row['fmr_target']):,})")
        sim = f", Similarity above {row['similarity_above']:.2f}" if "similarity_above" in row else ""
        print(f"TAR at FMR {row['fmr_target']:g}: {_pct(row['tar'])}{_ci(row.get('tar_ci95'))} "
              f"({row['false_matches']} false matches allowed{sim}){note}")
    for p in s["operating_points"]:
        upper = p.get("fmr_rule_of_three_upper")
        fmr = (f"FMR 0 of {s['impostor_pairs']:,} (rule of three: below {_pct(upper)})" if upper is not None
               else f"FMR {_pct(p['fmr'])} ({p['false_matches']} pairs){_ci(p.get('fmr_ci95'))}")
        print(f"Similarity >= {p['similarity_threshold']:g}: {fmr}; FNMR {_pct(p['fnmr'])}{_ci(p.get('fnmr_ci95'))}")
    for w in s["highest_impostors"][:5]:
        sim = f"Similarity {w['similarity']:.2f}" if "similarity" in w else f"distance {w['distance']:.4f}"
        print(f"  impostor {sim}: {w['selfie']} vs {w['document']}")
