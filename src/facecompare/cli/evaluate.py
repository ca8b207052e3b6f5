"""``facecompare evaluate`` (accuracy and error rates on labelled pairs) and ``facecompare calibrate``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..errors import InvalidParameterException
from .common import add_recognizer_argument, settings_of


def add_pairs_arguments(p: argparse.ArgumentParser, optional: bool = False) -> None:
    p.add_argument("pairs", nargs="?" if optional else None,
                   help="pair list: LFW pairs.txt, or CSV with columns selfie,document,same[,fold]")
    p.add_argument("--root", help="folder the image names are relative to (LFW: the folder of person "
                   "folders; CSV: default the CSV's folder)")
    p.add_argument("--format", choices=["lfw", "csv"], help="pair list format (default: from the file name)")
    p.add_argument("--face", choices=["largest", "center"],
                   help="which face of each image to use: largest (the product's rule, default for csv) or "
                   "center (LFW's protocol: the labelled person is centred; default for lfw)")
    p.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    p.add_argument("--fold", type=int, help="use only this fold of the pair list (0-based), e.g. a quick LFW run")
    p.add_argument("--tta", help="embedding test-time augmentation: flip (default), none, or jitter:N (dlib)")
    add_recognizer_argument(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")



def add_evaluate_parser(sub) -> None:
    """``facecompare evaluate``."""
    evaluate = sub.add_parser("evaluate", help="measure accuracy and error rates on labelled pairs",
                              description="Embed every image once (in parallel), score every pair, and report "
                              "LFW 10-fold accuracy (when the list has folds), ROC AUC, EER, TAR at FMR 1e-2/1e-3/"
                              "1e-4, failure to acquire, and FMR/FNMR at Similarity thresholds 80/90/95/99. Writes "
                              "pairs.csv and summary.json to --out.")
    add_pairs_arguments(evaluate)
    evaluate.add_argument("--out", default="evaluation", help="output folder (default: ./evaluation)")
    evaluate.add_argument("--calibration", metavar="FILE", help="calibration JSON (default: the LFW one shipped for "
                          "the recognizer; without one, a recognizer of your own is evaluated without Similarity "
                          "operating points)")
    evaluate.add_argument("--from-results", metavar="PAIRS.csv", help="re-score the distances in a pairs.csv "
                          "written by an earlier run (e.g. with a new calibration) instead of embedding again")
    evaluate.add_argument("--all-impostors", action="store_true", help="the strict end: score every genuine and every "
                          "cross-identity pair of the list's images (CompareFaces' rule: the selfie's largest face "
                          "against each document face; identities from the person folder, a selfie_identity/"
                          "document_identity column or synth-kyc's *_source columns) and report TAR at FMR 1e-2 to "
                          "1e-5 with 95 %% intervals (rule of three, bootstrap over identities), the highest impostors "
                          "and a DET curve: strict.json, det-strict.png")
    evaluate.add_argument("--document-faces", choices=["all", "largest"], default="all",
                          help="with --all-impostors: score the selfie against every document face (CompareFaces, "
                          "default) or only the largest (verify)")
    evaluate.add_argument("--bootstrap", type=int, default=200, metavar="N",
                          help="with --all-impostors: bootstrap replicates over identities (default 200; 0: none)")
    evaluate.add_argument("--embeddings", metavar="FILE.npz", help="with --all-impostors: read every face's embedding "
                          "and measurements from FILE if it exists (images it lacks are embedded and added), else write "
                          "them there (biometric data: keep it private, delete it when done)")
    evaluate.set_defaults(run=run_evaluate)


def add_calibrate_parser(sub) -> None:
    """``facecompare calibrate``."""
    calibrate = sub.add_parser("calibrate", help="fit the distance-to-Similarity mapping on labelled pairs",
                               description="Fit Similarity = 100 / (1 + exp(slope * (distance - midpoint))) on "
                               "labelled pairs and write it, with the measured threshold table (FMR, FNMR), as a "
                               "calibration JSON that --calibration / FACECOMPARE_CALIBRATION load.")
    add_pairs_arguments(calibrate, optional=True)
    calibrate.add_argument("--from-results", metavar="PAIRS.csv",
                           help="reuse the distances in a pairs.csv written by `facecompare evaluate`")
    calibrate.add_argument("--from-reviews", action="store_true",
                           help="fit on the cases your reviewers decided in the console (MATCH = same person, "
                           "NO_MATCH = not; ESCALATED and open cases are left out), alone or added to PAIRS / "
                           "--from-results: your own data. Only cases scored by the recognizer in use count.")
    calibrate.add_argument("--review-store", metavar="URL", help="with --from-reviews: the review cases' database "
                           "(default: FACECOMPARE_COLLECTIONS, else sqlite:///facecompare-collections.db)")
    calibrate.add_argument("--out", default="calibration.json", help="calibration file to write")
    calibrate.set_defaults(run=run_calibrate)


def load_pairs(args: argparse.Namespace):
    from ..evaluation import read_csv_pairs, read_lfw_pairs

    fmt = args.format or ("csv" if args.pairs.lower().endswith(".csv") else "lfw")
    if not Path(args.pairs).is_file():
        raise InvalidParameterException(f"Pair list not found: {args.pairs}.")
    if fmt == "lfw":
        root = args.root or str(Path(args.pairs).parent / "lfw-deepfunneled")
        pairs = read_lfw_pairs(args.pairs, root)
    else:
        pairs = read_csv_pairs(args.pairs, args.root)
    face = args.face or ("center" if fmt == "lfw" else "largest")
    return [pairs[i] for i in in_fold(pairs, args.fold, args.pairs)], face


def in_fold(pairs: list, fold: int | None, source: str) -> list[int]:
    """Indices of the pairs in ``fold`` (all of them when it is None); a fold without pairs is an error."""
    if fold is None:
        return list(range(len(pairs)))
    keep = [i for i, p in enumerate(pairs) if p.fold == fold]
    if not keep:
        raise InvalidParameterException(f"No pairs in fold {fold} of {source}: folds are numbered from 0.")
    return keep


def read_results(args: argparse.Namespace):
    """(pairs, distances, recognizer name) from a pairs.csv of an earlier run, limited to ``--fold`` when given."""
    from ..evaluation import read_pair_rows

    pairs, distances, model = read_pair_rows(args.from_results)
    keep = in_fold(pairs, args.fold, args.from_results)
    if args.recognizer or args.tta:
        raise InvalidParameterException("--from-results reuses the distances of the earlier run; --recognizer and "
                                        "--tta apply only when images are embedded.")
    return [pairs[i] for i in keep], distances[keep], model


def embed_pairs(args: argparse.Namespace):
    """(pairs, embeddings, distances, seconds, recognizer name), every image embedded once in worker processes."""
    from ..evaluation import embed_images, pair_distances
    from ..models import create_recognizer

    settings = settings_of(args, tta=args.tta)  # checks the values before any worker starts; the workers get all
    model = create_recognizer(settings.recognizer).name
    pairs, face = load_pairs(args)
    paths = [p.first for p in pairs] + [p.second for p in pairs]
    started = time.perf_counter()
    embeddings = embed_images(paths, choose=face, workers=args.workers, progress=not args.no_progress,
                              settings=settings)
    elapsed = time.perf_counter() - started
    return pairs, embeddings, pair_distances(pairs, embeddings), elapsed, model


def calibration_for(model: str, path: str | None):
    """The calibration to score ``model``'s distances with; None when none ships for it and none was given (the
    evaluation then reports the threshold-free figures and says that Similarity needs `facecompare calibrate`)."""
    from ..scoring import load_calibration

    try:
        return load_calibration(path, model=model)
    except InvalidParameterException:
        if path:
            raise
        return None


def run_evaluate(args: argparse.Namespace) -> int:
    from ..evaluation import save_json, summarize, write_pair_rows

    if args.all_impostors:
        from .strict import evaluate_all_impostors

        return evaluate_all_impostors(args, settings_of(args, tta=args.tta), load_pairs, calibration_for)
    out = Path(args.out)
    if args.from_results:
        pairs, distances, model = read_results(args)
        calibration = calibration_for(model, args.calibration)
        embeddings = None
        summary = summarize(pairs, distances, None, calibration, model=model)
        summary.update(image_figures_of_earlier_run(out / "summary.json", args.pairs, model, len(pairs)))
    else:
        if args.calibration:  # a wrong file fails now, not after the embedding
            from ..models import create_recognizer

            calibration_for(create_recognizer(settings_of(args).recognizer).name, args.calibration)
        pairs, embeddings, distances, elapsed, model = embed_pairs(args)
        calibration = calibration_for(model, args.calibration)
        summary = summarize(pairs, distances, embeddings, calibration, model=model)
        summary["wall_seconds"] = round(elapsed, 1)
    out.mkdir(parents=True, exist_ok=True)
    summary["pairs_file"] = args.pairs
    if embeddings is not None:
        write_pair_rows(out / "pairs.csv", pairs, distances, embeddings, calibration, model=model)
    save_json(out / "summary.json", summary)
    import numpy as np

    from ..plots import write_plots

    plots = write_plots(out, distances, np.array([p.same for p in pairs]), calibration,
                        title=f"({Path(args.pairs).name})")
    print_evaluation(summary)
    written = ([out / "pairs.csv"] if embeddings is not None else []) + [out / "summary.json", *plots]
    print(f"Wrote {', '.join(str(p) for p in written)}")
    return 0


IMAGE_FIGURES = ("images", "failure_to_acquire_images", "failure_to_acquire_rate", "seconds_per_image_mean",
                 "wall_seconds", "by_condition")


def image_figures_of_earlier_run(path: Path, pairs_file: str, model: str, n_pairs: int) -> dict:
    """What the run that embedded the images measured (failure to acquire, time per image, the breakdown), kept
    when its distances are re-scored into the same folder: it holds for the same pairs and recognizer."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if (earlier.get("pairs_file"), earlier.get("model"), earlier.get("pairs")) != (pairs_file, model, n_pairs):
        return {}
    return {k: earlier[k] for k in IMAGE_FIGURES if k in earlier}


def print_evaluation(s: dict) -> None:
    print(f"Recognizer: {s['model']}")
    print(f"Pairs: {s['pairs']} ({s['genuine_pairs']} genuine, {s['impostor_pairs']} impostor)"
          + (f"; images: {s['images']}, no usable face in {s['failure_to_acquire_images']} "
             f"({100 * s['failure_to_acquire_rate']:.2f} %)" if "images" in s else "")
          + f"; pairs without a comparison: {s['pairs_with_failure']}")
    if "kfold_accuracy" in s:
        k = s["kfold_accuracy"]
        print(f"{len(k['folds'])}-fold accuracy: {100 * k['mean']:.2f} % +- {100 * k['std']:.2f}")
    print(f"ROC AUC: {s['roc_auc']:.5f}   EER: {100 * s['eer']:.2f} %")
    for row in s["tar_at_fmr"]:
        note = "" if row["supported"] else " (too few impostor pairs to measure this rate)"
        print(f"TAR at FMR {row['fmr_target']:g}: {100 * row['tar']:.2f} %  "
              f"[{row['impostor_pairs']} impostor pairs]{note}")
    for row in s["operating_points"]:
        print(f"Similarity >= {row['similarity_threshold']:g} (distance <= {row['distance']:.3f}): "
              f"FMR {100 * row['fmr']:.2f} %, FNMR {100 * row['fnmr']:.2f} %, accuracy {100 * row['accuracy']:.2f} %")
    if not s["operating_points"]:
        print(f"Similarity operating points: none, since no calibration ships for {s['model']}: fit one with "
              "`facecompare calibrate PAIRS --recognizer ... --out calibration.json` (the figures above need none), "
              "then pass --calibration calibration.json here and to compare, batch, dedupe and serve")
    if "seconds_per_image_mean" in s:
        print(f"Time per image: {1000 * s['seconds_per_image_mean']:.0f} ms (one worker)")
    if "by_condition" in s:
        b = s["by_condition"]
        print(f"By condition (TAR at the FMR {b['fmr_target']:g} threshold, distance <= "
              f"{b['distance_threshold']:.3f}; document failure to acquire):")
        for name, groups in b["conditions"].items():
            cells = []
            for value, g in groups.items():
                tar = "-" if g["tar"] is None else f"{100 * g['tar']:.1f} %"
                cells.append(f"{value}: {tar}, FTA {100 * g['document_failure_to_acquire']:.1f} % ({g['pairs']})")
            print(f"  {name:<10} " + "; ".join(cells))


#: decided review cases of each kind that --from-reviews needs at least, alone
MIN_REVIEWED_PER_CLASS = 5


def run_calibrate(args: argparse.Namespace) -> int:
    import numpy as np

    from ..scoring import Calibration, fit_logistic, operating_points

    if not (args.pairs or args.from_results or args.from_reviews):
        raise InvalidParameterException("Give a pair list (PAIRS), --from-results PAIRS.csv, or --from-reviews.")
    distances, same, sources, model = np.zeros(0), np.zeros(0, dtype=bool), [], None
    if args.from_results:
        pairs, distances, model = read_results(args)
        same = np.array([p.same for p in pairs], dtype=bool)
        sources.append(f"{Path(args.from_results).name}: {len(pairs)} pairs")
    elif args.pairs:
        pairs, _, distances, _, model = embed_pairs(args)
        same = np.array([p.same for p in pairs], dtype=bool)
        sources.append(f"{Path(args.pairs).name}: {len(pairs)} pairs")
    if args.from_reviews:
        from ..models import create_recognizer
        from ..review.service import open_queue

        model = model or create_recognizer(settings_of(args).recognizer).name
        queue = open_queue(args.review_store)
        try:
            reviewed, labels = queue.store.reviewed_distances(model)
        finally:
            queue.store.close()
        matches, non_matches = sum(labels), len(labels) - sum(labels)
        print(f"Reviewed cases of {model}: {matches} MATCH, {non_matches} NO_MATCH")
        if not sources and min(matches, non_matches) < MIN_REVIEWED_PER_CLASS:
            raise InvalidParameterException(
                f"Too few reviewed cases of {model} to fit on alone: {matches} MATCH and {non_matches} NO_MATCH; at "
                f"least {MIN_REVIEWED_PER_CLASS} of each are needed. Add a pair list, or review more cases.")
        distances = np.concatenate([distances, np.asarray(reviewed, dtype=float)])
        same = np.concatenate([same, np.asarray(labels, dtype=bool)])
        sources.append(f"reviewed cases: {matches} MATCH, {non_matches} NO_MATCH")
        if len(sources) == 1:
            print("Note: reviewed cases are the hard ones (near the threshold, or flagged): the error rates below are "
                  "those of such cases, not of all traffic. Fitting them together with a pair list gives both.")
    finite = np.isfinite(distances)
    slope, midpoint = fit_logistic(distances[finite], same[finite])
    source = "; ".join(sources)
    calibration = Calibration(slope=slope, midpoint=midpoint, model=model, source=source)
    table = operating_points(calibration, distances, same)
    calibration = Calibration(slope=slope, midpoint=midpoint, model=model, source=source, operating_points=table)
    calibration.save(args.out)
    print(f"Recognizer: {model}")
    print(f"Similarity = 100 / (1 + exp({slope:.3f} * (distance - {midpoint:.4f})))")
    for row in table:
        print(f"  Similarity >= {row['similarity_threshold']:>4g}: distance <= {row['distance']:.4f}, "
              f"FMR {100 * row['fmr']:.3f} %, FNMR {100 * row['fnmr']:.3f} %")
    print(f"Wrote {args.out}")
    return 0

