"""A pair list of the ID specimens for `facecompare evaluate --all-impostors`: every specimen image with the
holder it shows (``person_id`` in labels.csv; images without one, mostly faceless backs, are their own identity).

    python scripts/specimen_pairs.py ../shared/data/id_specimens OUT.csv
    facecompare evaluate OUT.csv --all-impostors --out evaluation/strict/id-specimens
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def main(root: str, out: str) -> None:
    base = Path(root).resolve()
    with open(base / "labels.csv", newline="") as handle:
        labels = list(csv.DictReader(handle))
    with open(out, "w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["selfie", "document", "same", "selfie_identity", "document_identity"])
        for row in labels:
            image = str(base / row["file"])
            who = row["person_id"] or Path(row["file"]).stem
            w.writerow([image, image, 1, who, who])  # one list in both roles: each unordered pair is scored once


if __name__ == "__main__":
    main(*sys.argv[1:3])
