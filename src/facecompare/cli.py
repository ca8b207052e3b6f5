"""The ``facecompare`` command line.

Exit codes of ``facecompare compare``: 0 MATCH, 1 NO_MATCH, 3 REVIEW (a person must look: no face, several
faces in the selfie, a face too small or of low quality, or a similarity inside the review band),
2 error (unreadable or invalid input, bad arguments). ``detect`` exits 0 when it ran (even with no face) and 2
on an error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import __version__
from .errors import FaceCompareError
from .review.cli import add_parsers as add_review_parsers
from .review.cli import add_queue_arguments, batch_reviews, queue_modes, run_review, run_reviewer

EXIT_MATCH, EXIT_NO_MATCH, EXIT_ERROR, EXIT_REVIEW = 0, 1, 2, 3
EXIT_CODES = {"MATCH": EXIT_MATCH, "NO_MATCH": EXIT_NO_MATCH, "REVIEW": EXIT_REVIEW}
LARGE_GROUP = 10  # ids in one dedupe group beyond which the command suggests a higher threshold


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facecompare",
        description="Offline face verification: does a selfie show the same person as an ID-document portrait? "
        "Answers in AWS Rekognition's shapes; no image leaves this machine and none is stored.",
        epilog="Settings can also come from FACECOMPARE_* environment variables (see README).",
    )
    parser.add_argument("--version", action="version", version=f"facecompare {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    compare = sub.add_parser(
        "compare",
        help="compare a selfie with an identity-document photo (MATCH / NO_MATCH / REVIEW)",
        description="Compare the selfie's face with the document's portrait (its largest face). Prints the "
        "decision, similarity and reasons; exit code 0 MATCH, 1 NO_MATCH, 3 REVIEW, 2 error.",
    )
    compare.add_argument("selfie", help="selfie image (JPEG, PNG, HEIC, WebP, AVIF or PDF)")
    compare.add_argument("document", help="photo or scan of the ID card / passport (JPEG, PNG, HEIC, WebP, AVIF, or a PDF: "
                         "its page with the largest face)")
    compare.add_argument("--threshold", type=float, default=80.0,
                         help="Similarity (0-100) at which faces match, as Rekognition's SimilarityThreshold "
                         "(default 80; the README lists the error rates of each threshold)")
    compare.add_argument("--quality-filter", default="NONE", choices=["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"],
                         help="Rekognition QualityFilter for the CompareFaces part of --json (default NONE)")
    compare.add_argument("--calibration", metavar="FILE", help="calibration JSON from `facecompare calibrate` "
                         "(default: the LFW calibration shipped for the recognizer)")
    add_recognizer_argument(compare)
    compare.add_argument("--json", action="store_true", help="print JSON: the decision and Rekognition's "
                         "CompareFaces response for the pair")
    compare.add_argument("--annotate", metavar="OUT.png", help="write the two images side by side with the "
                         "compared faces boxed (green match, red no match, amber review)")
    add_queue_arguments(compare)

    detect = sub.add_parser("detect", help="find faces in an image (Rekognition DetectFaces)",
                            description="List the faces in an image with boxes, landmarks, pose and quality.")
    detect.add_argument("image", help="image (JPEG, PNG, HEIC, WebP, AVIF or PDF)")
    detect.add_argument("--json", action="store_true", help="print Rekognition's DetectFaces response as JSON")
    detect.add_argument("--annotate", metavar="OUT.png", help="write the image with every face boxed")

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

    serve = sub.add_parser(
        "serve", help="run the HTTP service (AWS Rekognition protocol for boto3, and a REST API)",
        description="Serve CompareFaces, DetectFaces and the collection operations over AWS JSON 1.1 at POST / "
        "(point boto3 at it with endpoint_url), the REST API at /v1/verify, /v1/detect and /v1/collections (docs at "
        "/docs), the review console at /console (accounts: `facecompare reviewer add`), /healthz, /readyz and "
        "/metrics. Collections and review cases live in FACECOMPARE_COLLECTIONS (default "
        "sqlite:///facecompare-collections.db). "
        "SigV4 keys: FACECOMPARE_AUTH_KEYS=AKID:SECRET[,...] or FACECOMPARE_AUTH_KEYS_FILE; REST API key hashes: "
        "FACECOMPARE_API_KEYS_FILE (see `facecompare api-key`); S3 images: FACECOMPARE_S3_ENDPOINT_URL and the "
        "AWS_* credential variables.")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes, each with its own models "
                       "(default 1; each uses about two cores at full load)")
    serve.add_argument("--no-auth", action="store_true", help="accept unsigned requests and no API key: local "
                       "development only (loopback addresses only, unless --allow-unauthenticated-network)")
    serve.add_argument("--allow-unauthenticated-network", action="store_true",
                       help="with authentication off (--no-auth or FACECOMPARE_AUTH=off), listen on a --host beyond "
                       "loopback anyway: anyone who can reach the port can use and change every collection")
    add_recognizer_argument(serve)
    add_calibration_argument(serve)

    api_key = sub.add_parser("api-key", help="create a REST API key and print the line for FACECOMPARE_API_KEYS_FILE",
                             description="Prints a new random API key (give it to the client) and its SHA-256 "
                             "hash (append that line to the file named by FACECOMPARE_API_KEYS_FILE). The server "
                             "stores only hashes.")
    api_key.add_argument("--name", default="client", help="a label stored beside the hash")

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

    add_collection_parsers(sub)
    add_review_parsers(sub)

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
    return parser


def add_recognizer_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recognizer", metavar="NAME",
                   help="embedding model: sface (default), dlib (pip install 'facecompare[dlib]'), or "
                   "onnx:/path/model.onnx[?size=112&channels=rgb&mean=127.5&std=127.5] for an ArcFace-style model "
                   "of your own (calibrate it with `facecompare calibrate`); also FACECOMPARE_RECOGNIZER")


def add_calibration_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calibration", metavar="FILE", help="calibration JSON from `facecompare calibrate` (default: "
                   "the LFW one shipped for the recognizer; a recognizer of your own needs one); also "
                   "FACECOMPARE_CALIBRATION")


def add_collection_parsers(sub) -> None:
    """``facecompare collection create|delete|list|describe|index|list-faces|delete-faces|search|user|tag|untag|
    tags``."""
    collection = sub.add_parser(
        "collection", help="face collections (1:N search): create, index faces, search, list, delete",
        description="Rekognition's collection operations on a local store: sqlite:///path.db (default "
        "sqlite:///facecompare-collections.db in the working directory) or postgresql://..., from --store or "
        "FACECOMPARE_COLLECTIONS. Each prints the operation's Rekognition response as JSON; errors print "
        "`error: <Type>: <message>` and exit 2. A collection keeps face embeddings (biometric templates) and "
        "never images: erase them with delete-faces or delete.")
    actions = collection.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", metavar="URL", help="collection store URL (default: FACECOMPARE_COLLECTIONS, "
                        "else sqlite:///facecompare-collections.db)")
    add_recognizer_argument(common)

    def action(name: str, help: str, description: str) -> argparse.ArgumentParser:
        return actions.add_parser(name, parents=[common], help=help, description=description)

    create = action("create", "create a collection (CreateCollection)",
                    "Create an empty collection bound to the recognizer in use (its FaceModelVersion); prints "
                    "StatusCode, CollectionArn and FaceModelVersion.")
    create.add_argument("collection_id", metavar="COLLECTION_ID", help="1-255 characters of [a-zA-Z0-9_.-]")
    create.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="a tag (repeatable)")
    delete = action("delete", "delete a collection and every face in it (DeleteCollection)",
                    "Erase the collection and all its faces (rows deleted, not marked).")
    delete.add_argument("collection_id", metavar="COLLECTION_ID", help="the collection's id")
    listing = action("list", "list the collections (ListCollections)",
                     "Collection ids and their FaceModelVersions, in id order; a page at a time with --max-results, "
                     "the next one with --next-token (the NextToken printed).")
    listing.add_argument("--max-results", type=int, metavar="N", help="page size, 0-4096 (default 1000)")
    listing.add_argument("--next-token", metavar="TOKEN", help="NextToken of the previous page")
    describe = action("describe", "describe a collection (DescribeCollection)",
                      "FaceCount, FaceModelVersion, CollectionARN and CreationTimestamp of a collection.")
    describe.add_argument("collection_id", metavar="COLLECTION_ID", help="the collection's id")
    index = action("index", "index the faces of an image into a collection (IndexFaces)",
                   "Detect the faces of IMAGE (a path or s3://bucket/key), store the embedding of the largest "
                   "(up to --max-faces, at most 100) that pass --quality-filter, and print FaceRecords and "
                   "UnindexedFaces (with reasons). Idempotent: the same image with the same external id gives the "
                   "same face ids and stores nothing new.")
    index.add_argument("collection_id", metavar="COLLECTION_ID", help="the collection's id")
    index.add_argument("image", metavar="IMAGE", help="JPEG, PNG, HEIC, WebP, AVIF or PDF: a path or s3://bucket/key")
    index.add_argument("--external-image-id", metavar="ID", help="your id for the image, kept with each face "
                       "(1-255 characters of [a-zA-Z0-9_.-:])")
    index.add_argument("--max-faces", type=int, metavar="N", help="index at most N faces (the rest are "
                       "UnindexedFaces with EXCEEDS_MAX_FACES)")
    index.add_argument("--quality-filter", default="AUTO", choices=["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"],
                       help="faces below this bar are not indexed (default AUTO, as Rekognition)")
    list_faces = action("list-faces", "list the faces of a collection (ListFaces)",
                        "The stored faces (FaceId, ImageId, ExternalImageId, BoundingBox, Confidence) in FaceId "
                        "order, a page at a time.")
    list_faces.add_argument("collection_id", metavar="COLLECTION_ID", help="the collection's id")
    list_faces.add_argument("--max-results", type=int, metavar="N", help="page size, 0-4096 (default 1000)")
    list_faces.add_argument("--next-token", metavar="TOKEN", help="NextToken of the previous page")
    list_faces.add_argument("--face-id", action="append", metavar="FACE_ID", help="only this face (repeatable)")
    delete_faces = action("delete-faces", "erase faces from a collection (DeleteFaces)",
                          "Erase the faces of the given ids; prints DeletedFaces and UnsuccessfulFaceDeletions: "
                          "FACE_NOT_FOUND for ids not in the collection, ASSOCIATED_TO_AN_EXISTING_USER for faces "
                          "a user holds (disassociate them first).")
    delete_faces.add_argument("collection_id", metavar="COLLECTION_ID", help="the collection's id")
    delete_faces.add_argument("face_ids", nargs="+", metavar="FACE_ID")
    search = action("search", "search a collection with an image's largest face or a stored face "
                    "(SearchFacesByImage / SearchFaces)",
                    "With IMAGE: search with its largest face (SearchFacesByImage; no face is an "
                    "InvalidParameterException). With --face-id: search with a face already in the collection "
                    "(SearchFaces; the face itself is not among the matches). Prints FaceMatches, highest "
                    "Similarity first.")
    search.add_argument("collection_id", metavar="COLLECTION_ID", help="the collection's id")
    search.add_argument("image", nargs="?", metavar="IMAGE", help="JPEG, PNG, HEIC, WebP, AVIF or PDF: a path or s3://bucket/key")
    search.add_argument("--face-id", metavar="FACE_ID", help="search with this stored face instead of an image")
    search.add_argument("--threshold", type=float, default=80.0, help="FaceMatchThreshold: the lowest Similarity "
                        "(0-100) returned (default 80)")
    search.add_argument("--max-faces", type=int, metavar="N", help="at most N matches (1-4096)")
    search.add_argument("--quality-filter", default="NONE", choices=["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"],
                        help="with IMAGE: refuse a searched face below this bar (default NONE)")
    list_faces.add_argument("--user-id", metavar="USER_ID", help="only the faces of this user")
    add_user_parsers(actions, common)
    tag = action("tag", "set tags on a collection (TagResource)", "Set (or overwrite) tags; prints the tags.")
    tag.add_argument("collection_id", metavar="COLLECTION_ID", help="the collection's id")
    tag.add_argument("tags", nargs="+", metavar="KEY=VALUE", help="at most 200 tags per collection")
    untag = action("untag", "remove tags from a collection (UntagResource)", "Remove tags; prints the tags.")
    untag.add_argument("collection_id", metavar="COLLECTION_ID", help="the collection's id")
    untag.add_argument("keys", nargs="+", metavar="KEY")
    tags = action("tags", "a collection's tags (ListTagsForResource)", "Prints Tags.")
    tags.add_argument("collection_id", metavar="COLLECTION_ID", help="the collection's id")


def add_user_parsers(actions, store: argparse.ArgumentParser) -> None:
    """``facecompare collection user create|delete|list|associate|disassociate|search``: Rekognition's Users."""
    user = actions.add_parser("user", help="users: one customer, up to 100 faces (CreateUser ... SearchUsersByImage)",
                              description="A user aggregates up to 100 faces of a collection (an ID portrait, "
                              "earlier selfies); search returns users. Each action prints its Rekognition response "
                              "as JSON.")
    verbs = user.add_subparsers(dest="user_action", required=True, metavar="USER_ACTION")
    common = argparse.ArgumentParser(add_help=False, parents=[store])
    common.add_argument("collection_id", metavar="COLLECTION_ID", help="the collection's id")
    named = argparse.ArgumentParser(add_help=False, parents=[common])
    named.add_argument("user_id", metavar="USER_ID", help="1-128 characters of [a-zA-Z0-9_.-:]")
    token = argparse.ArgumentParser(add_help=False)
    token.add_argument("--client-request-token", metavar="TOKEN",
                       help="makes a retry safe: the same token and parameters again is a replay")
    verbs.add_parser("create", parents=[named, token], help="create a user without faces (CreateUser)",
                     description="Create a user (status CREATED until a face is associated).")
    verbs.add_parser("delete", parents=[named, token], help="delete a user (DeleteUser)",
                     description="Delete a user; its faces stay in the collection, associated to nobody.")
    listing = verbs.add_parser("list", parents=[common], help="list the users (ListUsers)",
                               description="UserId and UserStatus in id order, a page at a time.")
    listing.add_argument("--max-results", type=int, metavar="N", help="page size, 1-500 (default 500)")
    listing.add_argument("--next-token", metavar="TOKEN", help="NextToken of the previous page")
    associate = verbs.add_parser("associate", parents=[named, token], help="associate faces to a user "
                                 "(AssociateFaces)", description="Associate faces (at most 100 per user); a face "
                                 "that does not look like the user's faces is refused with LOW_MATCH_CONFIDENCE.")
    associate.add_argument("face_ids", nargs="+", metavar="FACE_ID")
    associate.add_argument("--threshold", type=float, default=75.0, help="UserMatchThreshold: the Similarity to the "
                           "user's faces a face needs (default 75; checked when the user has faces)")
    disassociate = verbs.add_parser("disassociate", parents=[named, token], help="disassociate faces from a user "
                                    "(DisassociateFaces)", description="The faces stay in the collection.")
    disassociate.add_argument("face_ids", nargs="+", metavar="FACE_ID")
    search = verbs.add_parser("search", parents=[common], help="search the users with an image, a face or a user "
                              "(SearchUsersByImage / SearchUsers)",
                              description="With IMAGE: its largest face (SearchUsersByImage). With --face-id or "
                              "--user-id: a face or a user of the collection (SearchUsers). Prints UserMatches, "
                              "highest Similarity first.")
    search.add_argument("image", nargs="?", metavar="IMAGE", help="JPEG or PNG: a path or s3://bucket/key")
    search.add_argument("--face-id", metavar="FACE_ID", help="search with this stored face")
    search.add_argument("--user-id", metavar="USER_ID", help="search with this user's faces")
    search.add_argument("--threshold", type=float, default=80.0, help="UserMatchThreshold (default 80)")
    search.add_argument("--max-users", type=int, metavar="N", help="at most N users (1-500, default 500)")
    search.add_argument("--quality-filter", default="NONE", choices=["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"],
                        help="with IMAGE: do not search a face below this bar (default NONE)")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "compare":
            return _compare(args)
        if args.command == "detect":
            return _detect(args)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "calibrate":
            return _calibrate(args)
        if args.command == "synth-kyc":
            return _synth(args)
        if args.command == "batch":
            return _batch(args)
        if args.command == "serve":
            return _serve(args)
        if args.command == "api-key":
            return _api_key(args)
        if args.command == "collection":
            return _collection(args)
        if args.command == "dedupe":
            return _dedupe(args)
        if args.command == "reviewer":
            return run_reviewer(args)
        if args.command == "review":
            return run_review(args)
    except FaceCompareError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`facecompare ... | head`): exit as a SIGPIPE'd program does
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return EXIT_ERROR


def _settings(args: argparse.Namespace, **overrides):
    """FACECOMPARE_* settings with the command's --recognizer and --calibration (where it has them) on top."""
    from .settings import Settings

    values = {"recognizer": getattr(args, "recognizer", None), "calibration": getattr(args, "calibration", None)}
    return Settings.from_env(**{**values, **overrides})


def _verifier(args: argparse.Namespace):
    from .engine import Verifier

    return Verifier(_settings(args))


def _require_calibration(settings) -> None:
    """Fail now, before any worker or image work, when ``settings``' recognizer has no calibration to give
    Similarity with (a recognizer of your own before `facecompare calibrate`) or the file given is not its."""
    from .models import create_recognizer
    from .scoring import load_calibration

    load_calibration(settings.calibration or None, model=create_recognizer(settings.recognizer).name)


def _compare(args: argparse.Namespace) -> int:
    from .checks import check_quality_filter, check_threshold
    from .engine import MAX_FACES, other_faces, verification_dict
    from .rekognition import compare_faces_response

    threshold = check_threshold(args.threshold, "--threshold")
    quality_filter = check_quality_filter(args.quality_filter)
    modes = queue_modes(args)
    if modes:
        from .review.service import check_label

        check_label(args.review_batch, "--review-batch")
        check_label(args.review_reference, "--review-reference")
    verifier = _verifier(args)
    _ = verifier.calibration  # a calibration of another recognizer fails here, before any image work
    selfie = verifier.load(args.selfie)
    document = verifier.load(args.document)
    want_all = args.json
    selfie_image, document_image = verifier.analyze_pair(selfie, document, embed_first=1,
                                                         embed_second=MAX_FACES if want_all else 1)
    verification = verifier.decide(selfie_image, document_image, threshold)
    queued = None
    if verification.decision in modes:
        from .review.service import open_queue

        queue = open_queue(args.review_store)
        try:
            queued, _ = queue.queue({**verification_dict(verification), "other_faces": other_faces(verification)},
                                    verifier.recognizer.name,
                                    Path(args.selfie).read_bytes(), Path(args.document).read_bytes(), source="cli",
                                    batch=args.review_batch, reference=args.review_reference)
        finally:
            queue.store.close()
    if args.annotate:
        from .draw import annotate_verification, panel, save_png

        save_png(annotate_verification(panel(selfie, verification.selfie), panel(document, verification.document),
                                        verification), args.annotate)
    if args.json:
        out = {"verification": verification_dict(verification)}
        if queued is not None:
            out["verification"]["review_case_id"] = queued.case_id
        try:
            comparison = verifier.match_faces(selfie_image, document_image, threshold, quality_filter)
            out["CompareFaces"] = compare_faces_response(comparison)
        except FaceCompareError as exc:
            out["CompareFaces"] = {"__type": exc.code, "Message": exc.message}
        print(json.dumps(out, indent=2))
    else:
        _print_summary(verification, args.annotate)
        if queued is not None:
            print(f"Queued:      review case {queued.case_id} (decide it in the console, /console)")
    return EXIT_CODES[verification.decision]


def _print_summary(v, annotate: str | None) -> None:
    lo, hi = v.review_band
    print(f"Decision:    {v.decision}")
    if v.similarity is None:
        print("Similarity:  -  (no comparison possible)")
    else:
        print(f"Similarity:  {v.similarity:.2f}  (threshold {v.threshold:g}; REVIEW between {lo:.1f} and {hi:.1f})")
    print(f"Reasons:     {', '.join(v.reasons) if v.reasons else 'none'}")
    for label, analyzed in (("Selfie", v.selfie), ("Document", v.document)):
        face = analyzed.largest if analyzed else None
        count = len(analyzed.faces) if analyzed else 0
        if face is None:
            print(f"{label + ':':<12} no face found")
            continue
        turned = f", found after turning the image {analyzed.rotation} degrees" if analyzed.rotation else ""
        print(f"{label + ':':<12} {count} face{'s' if count != 1 else ''}; compared face {face.width_px:.0f} px wide, "
              f"detector confidence {face.confidence:.1f}{turned}")
    if v.notes:
        print(f"Notes:       {', '.join(v.notes)}")
    if annotate:
        print(f"Annotated:   {annotate}")


def _detect(args: argparse.Namespace) -> int:
    from .rekognition import detect_faces_response

    verifier = _verifier(args)
    decoded = verifier.load(args.image)
    analyzed = verifier.analyze(decoded, embed=0)
    if args.annotate:
        from .draw import annotate_detection, panel, save_png

        save_png(annotate_detection(panel(decoded, analyzed), analyzed), args.annotate)
    if args.json:
        print(json.dumps(detect_faces_response(analyzed), indent=2))
    else:
        print(f"{len(analyzed.faces)} face{'s' if len(analyzed.faces) != 1 else ''} in {Path(args.image).name} "
              f"({analyzed.width}x{analyzed.height})"
              + (f", found after turning it {analyzed.rotation} degrees" if analyzed.rotation else ""))
        for i, face in enumerate(analyzed.faces, 1):
            b = face.bounding_box
            print(f"  {i}. box left={b.left:.3f} top={b.top:.3f} width={b.width:.3f} height={b.height:.3f} "
                  f"({face.width_px:.0f} px wide), confidence {face.confidence:.1f}, "
                  f"pose roll/yaw/pitch {face.pose.roll:.0f}/{face.pose.yaw:.0f}/{face.pose.pitch:.0f}, "
                  f"brightness {face.quality.brightness:.0f}, sharpness {face.quality.sharpness:.0f}")
        if args.annotate:
            print(f"Annotated: {args.annotate}")
    return 0


def _load_pairs(args: argparse.Namespace):
    from .evaluation import read_csv_pairs, read_lfw_pairs

    fmt = args.format or ("csv" if args.pairs.lower().endswith(".csv") else "lfw")
    if not Path(args.pairs).is_file():
        from .errors import InvalidParameterException

        raise InvalidParameterException(f"Pair list not found: {args.pairs}.")
    if fmt == "lfw":
        root = args.root or str(Path(args.pairs).parent / "lfw-deepfunneled")
        pairs = read_lfw_pairs(args.pairs, root)
    else:
        pairs = read_csv_pairs(args.pairs, args.root)
    face = args.face or ("center" if fmt == "lfw" else "largest")
    return [pairs[i] for i in _in_fold(pairs, args.fold, args.pairs)], face


def _in_fold(pairs: list, fold: int | None, source: str) -> list[int]:
    """Indices of the pairs in ``fold`` (all of them when it is None); a fold without pairs is an error."""
    if fold is None:
        return list(range(len(pairs)))
    keep = [i for i, p in enumerate(pairs) if p.fold == fold]
    if not keep:
        from .errors import InvalidParameterException

        raise InvalidParameterException(f"No pairs in fold {fold} of {source}: folds are numbered from 0.")
    return keep


def _read_results(args: argparse.Namespace):
    """(pairs, distances, recognizer name) from a pairs.csv of an earlier run, limited to ``--fold`` when given."""
    from .evaluation import read_pair_rows

    pairs, distances, model = read_pair_rows(args.from_results)
    keep = _in_fold(pairs, args.fold, args.from_results)
    if args.recognizer or args.tta:
        from .errors import InvalidParameterException

        raise InvalidParameterException("--from-results reuses the distances of the earlier run; --recognizer and "
                                        "--tta apply only when images are embedded.")
    return [pairs[i] for i in keep], distances[keep], model


def _embed_pairs(args: argparse.Namespace):
    """(pairs, embeddings, distances, seconds, recognizer name), every image embedded once in worker processes."""
    from .evaluation import embed_images, pair_distances
    from .models import create_recognizer

    settings = _settings(args, tta=args.tta)  # checks the values before any worker starts; the workers get all
    model = create_recognizer(settings.recognizer).name
    pairs, face = _load_pairs(args)
    paths = [p.first for p in pairs] + [p.second for p in pairs]
    started = time.perf_counter()
    embeddings = embed_images(paths, choose=face, workers=args.workers, progress=not args.no_progress,
                              settings=settings)
    elapsed = time.perf_counter() - started
    return pairs, embeddings, pair_distances(pairs, embeddings), elapsed, model


def _calibration_for(model: str, path: str | None):
    """The calibration to score ``model``'s distances with; None when none ships for it and none was given (the
    evaluation then reports the threshold-free figures and says that Similarity needs `facecompare calibrate`)."""
    from .errors import InvalidParameterException
    from .scoring import load_calibration

    try:
        return load_calibration(path, model=model)
    except InvalidParameterException:
        if path:
            raise
        return None


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluation import save_json, summarize, write_pair_rows

    if args.all_impostors:
        from .evaluate_strict_cli import evaluate_all_impostors

        return evaluate_all_impostors(args, _settings(args, tta=args.tta), _load_pairs, _calibration_for)
    out = Path(args.out)
    if args.from_results:
        pairs, distances, model = _read_results(args)
        calibration = _calibration_for(model, args.calibration)
        embeddings = None
        summary = summarize(pairs, distances, None, calibration, model=model)
        summary.update(_image_figures_of_earlier_run(out / "summary.json", args.pairs, model, len(pairs)))
    else:
        if args.calibration:  # a wrong file fails now, not after the embedding
            from .models import create_recognizer

            _calibration_for(create_recognizer(_settings(args).recognizer).name, args.calibration)
        pairs, embeddings, distances, elapsed, model = _embed_pairs(args)
        calibration = _calibration_for(model, args.calibration)
        summary = summarize(pairs, distances, embeddings, calibration, model=model)
        summary["wall_seconds"] = round(elapsed, 1)
    out.mkdir(parents=True, exist_ok=True)
    summary["pairs_file"] = args.pairs
    if embeddings is not None:
        write_pair_rows(out / "pairs.csv", pairs, distances, embeddings, calibration, model=model)
    save_json(out / "summary.json", summary)
    import numpy as np

    from .plots import write_plots

    plots = write_plots(out, distances, np.array([p.same for p in pairs]), calibration,
                        title=f"({Path(args.pairs).name})")
    _print_evaluation(summary)
    written = ([out / "pairs.csv"] if embeddings is not None else []) + [out / "summary.json", *plots]
    print(f"Wrote {', '.join(str(p) for p in written)}")
    return 0


IMAGE_FIGURES = ("images", "failure_to_acquire_images", "failure_to_acquire_rate", "seconds_per_image_mean",
                 "wall_seconds", "by_condition")


def _image_figures_of_earlier_run(path: Path, pairs_file: str, model: str, n_pairs: int) -> dict:
    """What the run that embedded the images measured (failure to acquire, time per image, the breakdown), kept
    when its distances are re-scored into the same folder: it holds for the same pairs and recognizer."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if (earlier.get("pairs_file"), earlier.get("model"), earlier.get("pairs")) != (pairs_file, model, n_pairs):
        return {}
    return {k: earlier[k] for k in IMAGE_FIGURES if k in earlier}


def _print_evaluation(s: dict) -> None:
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


def _calibrate(args: argparse.Namespace) -> int:
    import numpy as np

    from .errors import InvalidParameterException
    from .scoring import Calibration, fit_logistic, operating_points

    if not (args.pairs or args.from_results or args.from_reviews):
        raise InvalidParameterException("Give a pair list (PAIRS), --from-results PAIRS.csv, or --from-reviews.")
    distances, same, sources, model = np.zeros(0), np.zeros(0, dtype=bool), [], None
    if args.from_results:
        pairs, distances, model = _read_results(args)
        same = np.array([p.same for p in pairs], dtype=bool)
        sources.append(f"{Path(args.from_results).name}: {len(pairs)} pairs")
    elif args.pairs:
        pairs, _, distances, _, model = _embed_pairs(args)
        same = np.array([p.same for p in pairs], dtype=bool)
        sources.append(f"{Path(args.pairs).name}: {len(pairs)} pairs")
    if args.from_reviews:
        from .models import create_recognizer
        from .review.service import open_queue

        model = model or create_recognizer(_settings(args).recognizer).name
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


def _batch(args: argparse.Namespace) -> int:
    from .batch import read_manifest, rows_for_folder, run_batch
    from .checks import check_threshold
    from .errors import InvalidParameterException

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
    settings = _settings(args)  # checks the values before any worker starts; the workers get all of them
    _require_calibration(settings)
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


def _collections(args: argparse.Namespace):
    """The Collections service on the store of --store or FACECOMPARE_COLLECTIONS."""
    import os

    from .collections.service import Collections
    from .collections.store import open_store
    from .server.limits import env_number

    cap = env_number(os.environ, "FACECOMPARE_COLLECTION_MAX_FACES", 20_000_000, int, minimum=1)
    approximate_above = env_number(os.environ, "FACECOMPARE_COLLECTION_APPROXIMATE_ABOVE", None, int, minimum=0,
                                   allow_none=True)
    return Collections(_verifier(args), open_store(args.store or os.environ.get("FACECOMPARE_COLLECTIONS")),
                       max_faces_per_collection=cap, approximate_above=approximate_above)


def _collection(args: argparse.Namespace) -> int:
    """One collection operation; prints its Rekognition response as JSON."""
    import os

    from . import rekognition as shapes
    from .checks import check_threshold
    from .errors import InvalidParameterException
    from .server.sigv4 import DEFAULT_REGION

    region = (os.environ.get("FACECOMPARE_REGION") or "").strip() or DEFAULT_REGION
    action = args.action
    if action == "search":  # argument errors before any store is opened
        if (args.image is None) == (args.face_id is None):
            raise InvalidParameterException("Give IMAGE or --face-id (one of them) to search with.")
        check_threshold(args.threshold, "--threshold")
    if action == "user" and args.user_action == "search":
        if sum(x is not None for x in (args.image, args.face_id, args.user_id)) != 1:
            raise InvalidParameterException("Give IMAGE, --face-id or --user-id (one of them) to search with.")
        check_threshold(args.threshold, "--threshold")
    tags = None
    if action in ("create", "tag"):
        tags = {}
        for tag in (args.tag if action == "create" else args.tags):
            key, sep, value = tag.partition("=")
            if not sep:
                raise InvalidParameterException(f"--tag {tag!r}: write KEY=VALUE.")
            tags[key] = value
    collections = _collections(args)
    try:
        cid = getattr(args, "collection_id", None)
        if action == "user":
            out = _user_action(args, collections, shapes)
        elif action == "tag":
            out = shapes.list_tags_response(collections.tag_collection(cid, tags))
        elif action == "untag":
            out = shapes.list_tags_response(collections.untag_collection(cid, args.keys))
        elif action == "tags":
            out = shapes.list_tags_response(collections.collection_tags(cid))
        elif action == "create":
            out = shapes.create_collection_response(collections.create_collection(cid, tags), region)
        elif action == "delete":
            collections.delete_collection(cid)
            out = shapes.delete_collection_response()
        elif action == "list":
            out = shapes.list_collections_response(*collections.list_collections(args.next_token, args.max_results))
        elif action == "describe":
            out = shapes.describe_collection_response(collections.describe_collection(cid), region)
        elif action == "index":
            image = collections.verifier.load(_read_image(args.image))
            result = collections.index_faces(cid, image, external_image_id=args.external_image_id,
                                             max_faces=args.max_faces, quality_filter=args.quality_filter)
            out = shapes.index_faces_response(result, collections.model_version)
        elif action == "list-faces":
            faces, token = collections.list_faces(cid, args.next_token, args.max_results, args.face_id,
                                                  user_id=args.user_id)
            out = shapes.list_faces_response(faces, token, collections.model_version)
        elif action == "delete-faces":
            out = shapes.delete_faces_response(*collections.delete_faces_with_reasons(cid, args.face_ids))
        elif args.face_id is not None:
            matches = collections.search_faces(cid, args.face_id, max_faces=args.max_faces, threshold=args.threshold)
            out = shapes.search_faces_response(args.face_id, matches, collections.model_version)
        else:
            image = collections.verifier.load(_read_image(args.image))
            result = collections.search_faces_by_image(cid, image, max_faces=args.max_faces,
                                                       threshold=args.threshold, quality_filter=args.quality_filter)
            out = shapes.search_faces_by_image_response(result, collections.model_version)
    finally:
        collections.store.close()
    print(json.dumps(out, indent=2))
    return 0


def _user_action(args: argparse.Namespace, collections, shapes) -> dict:
    """One ``collection user`` action's Rekognition response."""
    cid, verb = args.collection_id, args.user_action
    if verb == "create":
        collections.create_user(cid, args.user_id, args.client_request_token)
        return {}
    if verb == "delete":
        collections.delete_user(cid, args.user_id, args.client_request_token)
        return {}
    if verb == "list":
        return shapes.list_users_response(*collections.list_users(cid, args.next_token, args.max_results))
    if verb == "associate":
        return shapes.associate_faces_response(collections.associate_faces(
            cid, args.user_id, args.face_ids, user_match_threshold=args.threshold,
            client_request_token=args.client_request_token))
    if verb == "disassociate":
        return shapes.disassociate_faces_response(collections.disassociate_faces(
            cid, args.user_id, args.face_ids, client_request_token=args.client_request_token))
    if args.image is not None:
        image = collections.verifier.load(_read_image(args.image))
        result = collections.search_users_by_image(cid, image, user_match_threshold=args.threshold,
                                                   max_users=args.max_users, quality_filter=args.quality_filter)
        return shapes.search_users_by_image_response(result, collections.model_version)
    matches = collections.search_users(cid, user_id=args.user_id, face_id=args.face_id,
                                       user_match_threshold=args.threshold, max_users=args.max_users)
    return shapes.search_users_response(matches, collections.model_version, face_id=args.face_id,
                                        user_id=args.user_id)


def _read_image(location: str) -> bytes | str:
    """A path as it is (the engine reads it), or the bytes of an ``s3://bucket/key`` object."""
    if location.startswith("s3://"):
        from .storage import S3Reader, parse_s3_url

        return S3Reader().read(*parse_s3_url(location))
    return location


def _dedupe(args: argparse.Namespace) -> int:
    from .checks import check_quality_filter, check_threshold
    from .dedupe import read_dedupe_manifest, run_dedupe
    from .errors import InvalidParameterException

    threshold = check_threshold(args.threshold, "--threshold")
    quality_filter = check_quality_filter(args.quality_filter)
    if not 1 <= args.max_matches <= 4096:
        raise InvalidParameterException("--max-matches must be from 1 to 4096.")
    if args.workers is not None and args.workers < 1:
        raise InvalidParameterException("--workers must be at least 1.")
    if not Path(args.manifest).is_file():
        raise InvalidParameterException(f"Manifest not found: {args.manifest}.")
    total = sum(1 for _ in read_dedupe_manifest(args.manifest))  # validates columns and ids before any work
    _require_calibration(_settings(args))
    summary = run_dedupe(read_dedupe_manifest(args.manifest), args.out, threshold=threshold, store_url=args.store,
                         collection_id=args.collection, workers=args.workers, progress=not args.no_progress,
                         total=total, quality_filter=quality_filter, max_matches=args.max_matches,
                         verifier=_verifier(args))
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


def _serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    settings = _settings(args)
    _require_calibration(settings)  # one clear error now, not a traceback from each worker's start-up
    # the workers read their settings from the environment
    if args.recognizer:
        os.environ["FACECOMPARE_RECOGNIZER"] = settings.recognizer
    if args.calibration:
        os.environ["FACECOMPARE_CALIBRATION"] = str(Path(args.calibration).resolve())
    if args.no_auth:
        os.environ["FACECOMPARE_AUTH"] = "off"
        print("warning: authentication is off (--no-auth): any client can call this service", file=sys.stderr)
    from .server.app import UVICORN_LOG_CONFIG, ServerConfig

    config = ServerConfig.from_env()
    if not config.auth and not loopback_host(args.host):
        if not args.allow_unauthenticated_network:
            print(f"error: authentication is off and --host {args.host[:80]} is reachable beyond this machine: anyone "
                  "on the network could read, change and delete every collection. Listen on 127.0.0.1, turn "
                  "authentication on, or say so twice with --allow-unauthenticated-network", file=sys.stderr)
            return EXIT_ERROR
        print("WARNING " + "!" * 60 + "\nWARNING: authentication is OFF and the service listens on "
              f"{args.host[:80]}: anyone who can reach port {args.port} can compare faces, read, change and delete "
              "every collection and queue reviews. Clients reaching it by a name other than localhost need that name in "
              "FACECOMPARE_ALLOWED_HOSTS (IP addresses always work).\nWARNING " + "!" * 60, file=sys.stderr)
    if config.auth and not config.access_keys and not config.api_key_hashes:
        print("error: authentication is on but no keys are configured: set FACECOMPARE_AUTH_KEYS=AKID:SECRET "
              "and/or FACECOMPARE_API_KEYS_FILE, or pass --no-auth for local development", file=sys.stderr)
        return EXIT_ERROR
    # Connection limits (README, "Operating the service"): uvicorn's h11 protocol with header and send timeouts
    # and the connection cap answered in the surface's error shape (server/protocol.py); the keep-alive timeout
    # and the cap are uvicorn's own settings, per worker. Header size is h11's limit (16 KiB).
    uvicorn.run("facecompare.server.app:app_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level="warning", log_config=UVICORN_LOG_CONFIG,
                http="facecompare.server.protocol:FaceCompareH11Protocol",
                timeout_graceful_shutdown=30, limit_concurrency=config.max_connections,
                timeout_keep_alive=config.keepalive_timeout)
    return 0


def loopback_host(host: str) -> bool:
    """Whether ``--host`` listens on this machine only (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def _api_key(args: argparse.Namespace) -> int:
    import secrets

    from .server.app import hash_api_key

    key = secrets.token_urlsafe(32)
    print(f"API key (give to the client; it is not stored): {key}")
    print(f"Line for FACECOMPARE_API_KEYS_FILE: {args.name}:{hash_api_key(key)}")
    return 0


def _synth(args: argparse.Namespace) -> int:
    import os

    from .errors import InvalidParameterException
    from .synth import generate_kyc_set

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


if __name__ == "__main__":
    sys.exit(main())
