"""The orientation check's crop size, measured: on a synth-kyc set, each document (and a share of the selfies) is
searched once as the engine does, then the largest face's crop is checked with the face at each of ``--sizes``
pixels; the chosen turn is compared with the true one (the render's ``rotation`` and ``exif`` columns: EXIF turns
are undone by the decoder, so only pixel turns need the check). Decided ``OrientationCheck.FACE_PX``
(README, "Choices, measured").

    python scripts/orientation_crop_sizes.py /tmp/synth/pairs.csv --documents 1000 --out evaluation/decisions/x.json

Writes counts only (no file names or scores): per size, the documents and selfies at the right turn.
"""

from __future__ import annotations

import argparse
import csv
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

_verifier = None


def _init() -> None:
    global _verifier
    from facecompare.engine import Verifier

    _verifier = Verifier()
    _verifier.warm()


def _turns(job: tuple[str, tuple[int, ...]]) -> tuple[int, dict[int, int]] | None:
    """(the search's turn, {face px: the turn the check adds}) for one image, or None when no face is found."""
    path, sizes = job
    finder = _verifier.finder
    decoded = _verifier.load(Path(path).read_bytes())
    rotation, detections = finder._search(decoded)
    if not detections:
        return None
    largest = max(detections, key=lambda d: d.width)
    return rotation, {px: finder.orientation.upright_turn(finder._face_crop(decoded, rotation, largest, px))
                      for px in sizes}


def true_turn(row: dict, kind: str) -> int:
    """The clockwise turn that makes the decoded image upright: none for a selfie, an EXIF-tagged or an upright
    document; the pixels' turn otherwise (synth-kyc turns a photo counter-clockwise by ``rotation``)."""
    if kind == "selfie" or row.get("exif") == "yes" or row.get("rotation") in (None, "", "0"):
        return 0
    return int(row["rotation"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs", type=Path, help="a synth-kyc pairs.csv")
    parser.add_argument("--documents", type=int, default=1000, help="documents to check (and a quarter as many selfies)")
    parser.add_argument("--sizes", default="96,72,64,48", help="face widths in the crop, in pixels")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sizes = tuple(int(v) for v in args.sizes.split(","))
    rows = list(csv.DictReader(args.pairs.open()))
    jobs: dict[str, tuple[str, dict]] = {}
    for row in rows:
        for kind in ("document", "selfie"):
            jobs.setdefault(str(args.pairs.parent / row[kind]), (kind, row))
    documents = [p for p, (k, _) in jobs.items() if k == "document"][:args.documents]
    selfies = [p for p, (k, _) in jobs.items() if k == "selfie"][:args.documents // 4]
    paths = documents + selfies
    counts = {"documents": 0, "selfies": 0, "no_face": 0, "search_turn_wrong": 0,
              "right_turn": {str(px): {"documents": 0, "selfies": 0} for px in sizes}}
    with ProcessPoolExecutor(args.workers, initializer=_init) as pool:
        for path, result in zip(paths, pool.map(_turns, [(p, sizes) for p in paths], chunksize=4)):
            kind, row = jobs[path]
            if result is None:
                counts["no_face"] += 1
                continue
            counts[kind + "s"] += 1
            rotation, turns = result
            want = true_turn(row, kind)
            counts["search_turn_wrong"] += rotation != want
            for px, turn in turns.items():
                counts["right_turn"][str(px)][kind + "s"] += (rotation + turn) % 360 == want
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(counts, indent=1) + "\n")
    print(json.dumps(counts, indent=1))


if __name__ == "__main__":
    main()
