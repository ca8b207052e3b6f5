"""The ``facecompare`` command line: :func:`main` and its parser, one ``add_*_parser`` per command, each in the
module of its command (:mod:`.verify`: compare, detect; :mod:`.evaluate`: evaluate, calibrate, and :mod:`.strict`
for ``--all-impostors``; :mod:`.jobs`: batch, dedupe, synth-kyc; :mod:`.serve`: serve, api-key;
:mod:`facecompare.aws.cli`: collection; :mod:`facecompare.review.cli`: reviewer, review), which also runs it.
:mod:`.common` holds what they share and the environment variables the CLI reads.

The server, the stores, uvicorn and the evaluation code are imported inside the functions that run a command,
never at the top of these modules: ``facecompare --help`` and argument errors stay fast and need no server.

Exit codes of ``facecompare compare``: 0 MATCH, 1 NO_MATCH, 3 REVIEW (a person must look: no face, several
faces in the selfie, a face too small or of low quality, or a similarity inside the review band),
2 error (unreadable or invalid input, bad arguments). ``detect`` exits 0 when it ran (even with no face) and 2
on an error. Every command exits 2 on a setting that is not valid (an environment variable), printing
``facecompare <command>: <message>``.
"""


from __future__ import annotations

import argparse
import sys

import facecompare

from ..aws.cli import add_collection_parser, run_collection
from ..errors import ConfigurationError, FaceCompareError
from ..review.cli import add_parsers as add_review_parsers
from ..review.cli import run_review, run_reviewer
from .common import EXIT_ERROR, add_recognizer_argument, open_collections, region
from .evaluate import MIN_REVIEWED_PER_CLASS, add_calibrate_parser, add_evaluate_parser, load_pairs
from .jobs import add_batch_parser, add_dedupe_parser, add_synth_parser
from .serve import add_api_key_parser, add_serve_parser, loopback_host
from .verify import add_compare_parser, add_detect_parser

__all__ = ["MIN_REVIEWED_PER_CLASS", "build_parser", "load_pairs", "loopback_host", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facecompare",
        description="Offline face verification: does a selfie show the same person as an ID-document portrait? "
        "Answers in AWS Rekognition's shapes; no image leaves this machine and none is stored.",
        epilog="Settings can also come from FACECOMPARE_* environment variables (see README).",
    )
    parser.add_argument("--version", action="version", version=f"facecompare {facecompare.__version__}")

    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (add_compare_parser, add_detect_parser, add_evaluate_parser, add_calibrate_parser, add_serve_parser,
                add_api_key_parser, add_batch_parser):
        add(sub)
    add_collection_parser(sub, add_recognizer_argument).set_defaults(run=collection_command)
    add_review_parsers(sub)
    sub.choices["reviewer"].set_defaults(run=run_reviewer)
    sub.choices["review"].set_defaults(run=run_review)
    add_dedupe_parser(sub)
    add_synth_parser(sub)
    return parser


def collection_command(args: argparse.Namespace) -> int:
    """``facecompare collection ...`` on the store and region of its arguments and the environment."""
    return run_collection(args, lambda: open_collections(args), region())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ConfigurationError as exc:  # a setting that is not valid (an environment variable): exit status 2
        print(f"facecompare {args.command}: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except FaceCompareError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except ModuleNotFoundError as exc:  # an optional extra that is not installed: name it
        from ..extras import MissingExtraError, extra_providing

        extra = extra_providing(exc.name)
        if extra is None:
            raise
        print(f"facecompare {args.command}: {MissingExtraError(extra).message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`facecompare ... | head`): exit as a SIGPIPE'd program does
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141

