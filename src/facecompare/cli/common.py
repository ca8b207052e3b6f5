"""What the commands share: exit codes, the --recognizer and --calibration arguments, the settings and the
verifier of a command, and the environment variables the CLI itself reads (all of them here)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..engine import Verifier
from ..settings import Settings

EXIT_MATCH, EXIT_NO_MATCH, EXIT_ERROR, EXIT_REVIEW = 0, 1, 2, 3
EXIT_CODES = {"MATCH": EXIT_MATCH, "NO_MATCH": EXIT_NO_MATCH, "REVIEW": EXIT_REVIEW}


def add_recognizer_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recognizer", metavar="NAME",
                   help="embedding model: sface (default), dlib (pip install 'facecompare[dlib]'), or "
                   "onnx:/path/model.onnx[?size=112&channels=rgb&mean=127.5&std=127.5] for an ArcFace-style model "
                   "of your own (calibrate it with `facecompare calibrate`); also FACECOMPARE_RECOGNIZER")



def add_calibration_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calibration", metavar="FILE", help="calibration JSON from `facecompare calibrate` (default: "
                   "the LFW one shipped for the recognizer; a recognizer of your own needs one); also "
                   "FACECOMPARE_CALIBRATION")



def settings_of(args: argparse.Namespace, **overrides):
    """FACECOMPARE_* settings with the command's --recognizer and --calibration (where it has them) on top."""
    values = {"recognizer": getattr(args, "recognizer", None), "calibration": getattr(args, "calibration", None)}
    return Settings.from_env(**{**values, **overrides})


def verifier_of(args: argparse.Namespace):
    return Verifier(settings_of(args))


def require_calibration(settings) -> None:
    """Fail now, before any worker or image work, when ``settings``' recognizer has no calibration to give
    Similarity with (a recognizer of your own before `facecompare calibrate`) or the file given is not its."""
    from ..models import create_recognizer
    from ..scoring import load_calibration

    load_calibration(settings.calibration or None, model=create_recognizer(settings.recognizer).name)



# -- the environment the CLI reads (the library's settings read theirs: Settings.from_env, ServerConfig.from_env) --

def region() -> str:
    """FACECOMPARE_REGION: the region of the collections' ARNs (as the server's)."""
    from ..server.sigv4 import DEFAULT_REGION

    return (os.environ.get("FACECOMPARE_REGION") or "").strip() or DEFAULT_REGION


def open_collections(args: argparse.Namespace):
    """The Collections service on the store of --store or FACECOMPARE_COLLECTIONS, with
    FACECOMPARE_COLLECTION_MAX_FACES and FACECOMPARE_COLLECTION_APPROXIMATE_ABOVE."""
    from ..collections.service import Collections
    from ..collections.store import open_store
    from ..settings import env_number

    cap = env_number(os.environ, "FACECOMPARE_COLLECTION_MAX_FACES", 20_000_000, int, minimum=1)
    approximate_above = env_number(os.environ, "FACECOMPARE_COLLECTION_APPROXIMATE_ABOVE", None, int, minimum=0,
                                   allow_none=True)
    return Collections(verifier_of(args), open_store(args.store or os.environ.get("FACECOMPARE_COLLECTIONS")),
                       max_faces_per_collection=cap, approximate_above=approximate_above)


def pass_to_workers(args: argparse.Namespace, settings) -> None:
    """``serve``'s flags for its worker processes, which read their settings from the environment."""
    if args.recognizer:
        os.environ["FACECOMPARE_RECOGNIZER"] = settings.recognizer
    if args.calibration:
        os.environ["FACECOMPARE_CALIBRATION"] = str(Path(args.calibration).resolve())
    if args.no_auth:
        os.environ["FACECOMPARE_AUTH"] = "off"
        print("warning: authentication is off (--no-auth): any client can call this service", file=sys.stderr)

