"""The images of some folds of LFW's pairs.txt as one list for `facecompare evaluate --all-impostors` (each image
in both roles, its person folder as its identity):

    python scripts/lfw_image_list.py ../shared/data/lfw/pairs.txt 0,1 OUT.csv [LFW_IMAGE_ROOT]
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from facecompare.evaluation import read_lfw_pairs


def main(pairs: str, folds: str, out: str, root: str | None = None) -> None:
    root = root or str(Path(pairs).parent / "lfw-deepfunneled")
    wanted = {int(f) for f in folds.split(",")}
    images = sorted({p for pair in read_lfw_pairs(pairs, root) if pair.fold in wanted for p in (pair.first, pair.second)})
    with open(out, "w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["selfie", "document", "same", "selfie_identity", "document_identity"])
        for image in images:
            who = Path(image).parent.name
            w.writerow([image, image, 1, who, who])
    print(f"{len(images)} images of folds {folds} in {out}")


if __name__ == "__main__":
    main(*sys.argv[1:5])
