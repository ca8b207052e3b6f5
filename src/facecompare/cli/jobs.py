"""The long runs over many images: ``facecompare batch`` (verify a manifest), ``facecompare dedupe`` (duplicate
identities) and ``facecompare synth-kyc`` (a synthetic benchmark)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..checks import check_quality_filter, check_threshold
from ..errors import InvalidParameterException
from ..review.cli import add_queue_arguments, batch_reviews
from .common import add_calibration_argument, add_recognizer_argument, require_calibration, settings_of, verifier_of

LARGE_GROUP = 10  # ids in one dedupe group beyond which the command suggests a higher threshold


def add_batch_parser(sub) -> None:
    """``facecompare batch``."""
    batch = sub.add_parser(
        "batch", help="verify a whole manifest, or one selfie against a folder / S3 prefix; resumable; HTML report",
        description="Verify every row of MANIFEST.csv (columns id,selfie,document[,expected]; images are paths or "
        "s3://bucket/key on FACECOMPARE_S3_ENDPOINT_URL), or --selfie against every image in --documents. Rows run "
        "in parallel worker processes (or on a Dask cluster with --engine dask); results are appended to "
        "OUT/results.jsonl as they finish, so running the same command again after an interruption skips the "
        "finished rows. Writes results.csv, results.jsonl, summary.json and a self-contained report.html.")
    batch.add_argument("manifest", nargs="?", help="CSV with columns id,selfie,document and optionally expected")
    batch.add_argument("--selfie", help="one selfie to compare with every image in --documents")
    batch.add_argument("--documents", help="folder or s3://bucket/prefix of document images (with --selfie)")
    batch.add_argument("--out", required=True, help="output folder (also where an interrupted run resumes)")
    batch.add_argument("--threshold", type=float, default=80.0, help="Similarity threshold (default 80)")
    batch.add_argument("--workers", type=int, help="worker processes, each loading the models once "
                       "(default: one per core)")
    batch.add_argument("--engine", choices=["local", "dask"], default="local",
                       help="local worker processes (default) or a Dask cluster")
    batch.add_argument("--scheduler", help="with --engine dask: the scheduler address (default: start a local "
                       "cluster of --workers processes)")
    batch.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_recognizer_argument(batch)
    add_calibration_argument(batch)
    add_queue_arguments(batch, batch=True)
    batch.set_defaults(run=run_batch_command)


def add_dedupe_parser(sub) -> None:
    """``facecompare dedupe``."""
    dedupe = sub.add_parser(
        "dedupe", help="find ids of a manifest that show the same person (duplicate identities); resumable; HTML report",
        description="Index the largest face of every row of MANIFEST.csv (columns id,image; images are paths "
        "relative to the manifest or s3://bucket/key on FACECOMPARE_S3_ENDPOINT_URL) into a collection (a fresh "
        "SQLite file OUT/collection.db unless --store is given), search the collection with each face, and join "
        "the ids whose faces match at --threshold or above into groups (union-find over the matches). Rows are "
        "appended to OUT/rows.jsonl and searches to OUT/searched.jsonl as they finish, so running the same command "
        "again after an interruption skips the finished ones. Rows without a usable face or with an unreadable "
        "image are recorded with their error and the run goes on. Writes summary.json, groups.csv, groups.json, "
        "errors.csv and a self-contained report.html showing each group's faces side by side.")
    dedupe.add_argument("manifest", help="CSV with columns id,image")
    dedupe.add_argument("--out", required=True, help="output folder (also where an interrupted run resumes)")
    dedupe.add_argument("--threshold", type=float, default=99.0,
                        help="Similarity (0-100) from which two faces count as the same person (default 99, "
                        "stricter than compare's 80: a sweep of N faces makes N(N-1)/2 comparisons, and one "
                        "false match joins two groups; see the README's measured table)")
    dedupe.add_argument("--store", metavar="URL", help="collection store (sqlite:///path.db or postgresql://...; "
                        "default: a fresh OUT/collection.db)")
    dedupe.add_argument("--collection", metavar="ID", help="collection to index into (default: dedupe; created "
                        "when missing)")
    dedupe.add_argument("--quality-filter", default="NONE", choices=["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"],
                        help="IndexFaces QualityFilter: faces below it are not indexed and their rows reported "
                        "(default NONE: every face counts)")
    dedupe.add_argument("--max-matches", type=int, default=100, metavar="N",
                        help="matches kept per searched face (default 100)")
    dedupe.add_argument("--workers", type=int, help="threads analysing images at once (default 2)")
    dedupe.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_recognizer_argument(dedupe)
    add_calibration_argument(dedupe)
    dedupe.set_defaults(run=run_dedupe_command)


def add_synth_parser(sub) -> None:
    """``facecompare synth-kyc``."""
    synth = sub.add_parser("synth-kyc", help="generate a reproducible synthetic selfie-versus-ID benchmark",
                           description="Print a face photo on a synthetic ID card and photograph it (portrait 2-10 %% "
                           "of a 12 MP frame, tilt, rotation 0/90/180/270 with or without EXIF, blur, glare, "
                           "JPEG 60-90, grayscale and ghost portraits); the selfie is another photo of the same "
                           "person, or of someone else for impostor pairs. Writes images/ and pairs.csv "
                           "(selfie,document,same + condition columns) for `facecompare evaluate`, and "
                           "source-pairs.csv: the same pairs on the original photos (evaluate it with --root "
                           "FACES) as the baseline that shows what the card and the camera cost.")
    synth.add_argument("--faces", required=True, help="folder with one sub-folder of photos per person (LFW layout)")
    synth.add_argument("--n", type=int, default=2000, help="number of pairs (default 2000)")
    synth.add_argument("--seed", type=int, default=1, help="random seed (default 1); same seed, same files")
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--impostors-per-document", type=int, default=10, metavar="K",
                       help="also pair each document with K selfies of other people, reusing the rendered images "
                       "(default 10: about 10*n impostor pairs, enough to measure a false-match rate of 1e-3; "
                       "0 for the rendered pairs only)")
    synth.add_argument("--specimens", metavar="DIR",
                       help="specimen mode: paste each face into the portrait box of a real document specimen "
                       "listed in DIR/labels.csv (e.g. ../shared/data/id_specimens; at the printed face's size, "
                       "grayscale where the printed portrait is, its ghost portrait too) instead of drawing a card, "
                       "then photograph it the same way; pairs.csv gains a specimen column")
    synth.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    synth.add_argument("--no-progress", action="store_true", help="no progress bar")
    synth.set_defaults(run=run_synth)


def run_batch_command(args: argparse.Namespace) -> int:
    from ..batch import read_manifest, rows_for_folder, run_batch

    threshold = check_threshold(args.threshold, "--threshold")
    if args.manifest and (args.selfie or args.documents):
        raise InvalidParameterException("Give either MANIFEST.csv or --selfie with --documents, not both.")
    if args.manifest:
        if not Path(args.manifest).is_file():
            raise InvalidParameterException(f"Manifest not found: {args.manifest}.")
        with open(args.manifest, newline="") as handle:
            total = max(0, sum(1 for _ in handle) - 1)
        list(read_manifest(args.manifest))  # validate columns and ids before any work starts
        rows = read_manifest(args.manifest)
    elif args.selfie and args.documents:
        found = list(rows_for_folder(args.selfie, args.documents))
        total, rows = len(found), iter(found)
    else:
        raise InvalidParameterException("Give MANIFEST.csv, or --selfie IMAGE with --documents FOLDER_OR_S3_PREFIX.")
    settings = settings_of(args)  # checks the values before any worker starts; the workers get all of them
    require_calibration(settings)
    reviews = batch_reviews(args)
    try:
        if reviews is not None:  # rows finished by an earlier run whose case is not stored yet
            reviews.catch_up(Path(args.out) / "results.jsonl")
        out = run_batch(rows, args.out, threshold=threshold, workers=args.workers, engine=args.engine,
                        scheduler=args.scheduler, progress=not args.no_progress, total=total,
                        settings=settings,
                        on_result=reviews)
    finally:
        if reviews is not None:
            reviews.close()
    summary = json.loads((out / "summary.json").read_text())
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary["by_decision"].items()))
    print(f"{summary['rows']} rows: {counts}")
    if reviews is not None:
        print(f"Queued for review: {reviews.queued} new case{'s' if reviews.queued != 1 else ''} in batch "
              f"{reviews.label!r}" + (f"; {len(reviews.failed)} could not be queued ({', '.join(reviews.failed[:5])})"
                                      if reviews.failed else ""))
    if "with_expected" in summary and summary["with_expected"]["accuracy_of_decided"] is not None:
        print(f"Accuracy of decided rows against expected: {100 * summary['with_expected']['accuracy_of_decided']:.2f} %")
    print(f"Wrote {out / 'results.csv'}, {out / 'results.jsonl'}, {out / 'summary.json'} and {out / 'report.html'}")
    return 0



def run_dedupe_command(args: argparse.Namespace) -> int:
    from ..dedupe import read_dedupe_manifest, run_dedupe

    threshold = check_threshold(args.threshold, "--threshold")
    quality_filter = check_quality_filter(args.quality_filter)
    if not 1 <= args.max_matches <= 4096:
        raise InvalidParameterException("--max-matches must be from 1 to 4096.")
    if args.workers is not None and args.workers < 1:
        raise InvalidParameterException("--workers must be at least 1.")
    if not Path(args.manifest).is_file():
        raise InvalidParameterException(f"Manifest not found: {args.manifest}.")
    total = sum(1 for _ in read_dedupe_manifest(args.manifest))  # validates columns and ids before any work
    require_calibration(settings_of(args))
    summary = run_dedupe(read_dedupe_manifest(args.manifest), args.out, threshold=threshold, store_url=args.store,
                         collection_id=args.collection, workers=args.workers, progress=not args.no_progress,
                         total=total, quality_filter=quality_filter, max_matches=args.max_matches,
                         verifier=verifier_of(args))
    out = Path(args.out)
    print(f"{summary['rows']} rows: {summary['indexed']} indexed, {summary['errors']} not indexed"
          + (f" ({', '.join(f'{k} {v}' for k, v in summary['errors_by_type'].items())})" if summary["errors"] else ""))
    print(f"{summary['groups']} groups of ids whose faces match at Similarity {summary['threshold']:g} or above "
          f"({summary['ids_in_groups']} ids in groups)")
    if summary["largest_group"] > LARGE_GROUP:
        print(f"note: the largest group has {summary['largest_group']} ids: a group joins ids that match only "
              "through others, so one false match merges two groups; a higher --threshold (95, 99) splits them "
              "(the run reuses the indexed faces)", file=sys.stderr)
    print(f"Wrote {out / 'summary.json'}, {out / 'groups.csv'}, {out / 'errors.csv'} and {out / 'report.html'}")
    return 0



def run_synth(args: argparse.Namespace) -> int:
    from ..synth import generate_kyc_set

    if not Path(args.faces).is_dir():
        raise InvalidParameterException(f"--faces {args.faces} is not a folder.")
    if args.n < 1:
        raise InvalidParameterException("--n must be at least 1.")
    if args.impostors_per_document < 0:
        raise InvalidParameterException("--impostors-per-document must be 0 or more.")
    if args.specimens is not None and not Path(args.specimens).is_dir():
        raise InvalidParameterException(f"--specimens {args.specimens} is not a folder.")
    try:
        path = generate_kyc_set(args.faces, args.n, args.seed, args.out, workers=args.workers or os.cpu_count() or 1,
                                progress=not args.no_progress, impostors_per_document=args.impostors_per_document,
                                specimens_dir=args.specimens)
    except ValueError as exc:
        raise InvalidParameterException(str(exc)) from None
    with open(path) as handle:
        rows = sum(1 for _ in handle) - 1
    print(f"Wrote {args.n} rendered pairs ({rows} rows with the extra impostor pairs) to {path}; "
          f"evaluate them with: facecompare evaluate {path}\n"
          f"The same pairs on the original photos (the baseline without card and camera): "
          f"facecompare evaluate {path.parent / 'source-pairs.csv'} --root {args.faces}")
    return 0

