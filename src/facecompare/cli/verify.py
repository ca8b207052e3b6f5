"""``facecompare compare`` (a selfie against a document: MATCH / NO_MATCH / REVIEW) and ``facecompare detect``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..checks import check_quality_filter, check_threshold
from ..engine import MAX_FACES
from ..errors import FaceCompareError
from ..native import verification_dict
from ..rekognition import compare_faces_response, detect_faces_response
from ..review.cli import add_queue_arguments, queue_modes
from .common import EXIT_CODES, add_recognizer_argument, verifier_of


def add_compare_parser(sub) -> None:
    """``facecompare compare``."""
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
    compare.set_defaults(run=run_compare)


def add_detect_parser(sub) -> None:
    """``facecompare detect``."""
    detect = sub.add_parser("detect", help="find faces in an image (Rekognition DetectFaces)",
                            description="List the faces in an image with boxes, landmarks, pose and quality.")
    detect.add_argument("image", help="image (JPEG, PNG, HEIC, WebP, AVIF or PDF)")
    detect.add_argument("--json", action="store_true", help="print Rekognition's DetectFaces response as JSON")
    detect.add_argument("--annotate", metavar="OUT.png", help="write the image with every face boxed")
    detect.set_defaults(run=run_detect)


def run_compare(args: argparse.Namespace) -> int:
    threshold = check_threshold(args.threshold, "--threshold")
    quality_filter = check_quality_filter(args.quality_filter)
    modes = queue_modes(args)
    if modes:
        from ..extras import require_extra
        from ..review.service import check_label

        require_extra("console", "--queue-review")
        check_label(args.review_batch, "--review-batch")
        check_label(args.review_reference, "--review-reference")
    verifier = verifier_of(args)
    _ = verifier.calibration  # a calibration of another recognizer fails here, before any image work
    selfie = verifier.load(args.selfie)
    document = verifier.load(args.document)
    want_all = args.json
    from ..review.service import open_queue, verify_and_queue

    verified = verify_and_queue(verifier, selfie, document, threshold, modes, lambda: open_queue(args.review_store),
                                lambda: (Path(args.selfie).read_bytes(), Path(args.document).read_bytes()),
                                source="cli", batch=args.review_batch, reference=args.review_reference,
                                embed_second=MAX_FACES if want_all else 1, close_queue=True)
    verification, queued = verified.verification, verified.case
    selfie_image, document_image = verified.selfie, verified.document
    if args.annotate:
        from ..draw import annotate_verification, panel, save_png

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
        print_summary(verification, args.annotate)
        if queued is not None:
            print(f"Queued:      review case {queued.case_id} (decide it in the console, /console)")
    return EXIT_CODES[verification.decision]


def print_summary(v, annotate: str | None) -> None:
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


def run_detect(args: argparse.Namespace) -> int:
    verifier = verifier_of(args)
    decoded = verifier.load(args.image)
    analyzed = verifier.analyze(decoded, embed=0)
    if args.annotate:
        from ..draw import annotate_detection, panel, save_png

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

