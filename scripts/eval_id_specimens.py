"""Portrait detection on the real ID-document specimens (../shared/data/id_specimens/labels.csv).

    python scripts/eval_id_specimens.py [--root ../shared/data/id_specimens] [--json out.json]

Reports: usable portraits found (and whether the largest face lies on the labelled portrait box), MRZ-only
backs and other face-free images where, correctly, no face is found, ghost portraits never chosen as the main
face, and the similarity of the same specimen person across different documents.
"""

from __future__ import annotations

import argparse
import csv
import json
from itertools import combinations
from pathlib import Path

import facecompare

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(ROOT.parent / "shared" / "data" / "id_specimens"))
    parser.add_argument("--json", help="also write the figures as JSON")
    args = parser.parse_args()
    root = Path(args.root)
    rows = list(csv.DictReader(open(root / "labels.csv", newline="")))
    verifier = facecompare.Verifier()
    usable = [r for r in rows if r["face_usable"] == "1"]
    no_face = [r for r in rows if r["face_present"] == "0"]
    found = on_box = labelled = 0
    missed, false_faces, ghost_chosen = [], [], []
    for r in usable:
        analyzed = verifier.analyze(root / r["file"], embed=0)
        if not analyzed.faces:
            missed.append(r["file"])
            continue
        found += 1
        box = analyzed.faces[0].bounding_box
        cx, cy = (box.left + box.width / 2) * analyzed.width, (box.top + box.height / 2) * analyzed.height
        if r["face_bbox_xywh"]:
            labelled += 1
            x, y, w, h = (float(v) for v in r["face_bbox_xywh"].split())
            on_box += x <= cx <= x + w and y <= cy <= y + h
        if r["ghost_bbox_xywh"]:
            gx, gy, gw, gh = (float(v) for v in r["ghost_bbox_xywh"].split())
            if gx <= cx <= gx + gw and gy <= cy <= gy + gh:
                ghost_chosen.append(r["file"])
    for r in no_face:
        if verifier.analyze(root / r["file"], embed=0).faces:
            false_faces.append(r["file"])
    people: dict[str, list[str]] = {}
    for r in usable:
        if r["person_id"]:
            people.setdefault(r["person_id"], []).append(r["file"])
    similarities = []
    for files in people.values():
        for a, b in combinations(files, 2):
            result = facecompare.verify(root / a, root / b, verifier=verifier)
            similarities.append({"a": a, "b": b, "decision": result.decision, "similarity": result.similarity})
    report = {
        "usable_portraits": len(usable),
        "found": found,
        "largest_face_on_labelled_box": f"{on_box}/{labelled}",
        "missed": missed,
        "images_without_face": len(no_face),
        "false_faces": false_faces,
        "ghost_portraits": sum(1 for r in usable if r["ghost_bbox_xywh"]),
        "ghost_chosen_as_main": ghost_chosen,
        "same_person_pairs": similarities,
    }
    print(f"usable portraits found: {found}/{len(usable)} ({100 * found / len(usable):.1f} %); "
          f"largest face on the labelled portrait box: {on_box}/{labelled}")
    print(f"images without a face where none was found: {len(no_face) - len(false_faces)}/{len(no_face)}")
    print(f"ghost portraits chosen as the main face: {len(ghost_chosen)} of {report['ghost_portraits']}")
    matches = sum(1 for s in similarities if s["decision"] == "MATCH")
    print(f"same specimen person on two documents: {matches}/{len(similarities)} MATCH at threshold 80")
    for s in similarities:
        sim = "-" if s["similarity"] is None else f"{s['similarity']:.1f}"
        print(f"  {s['decision']:<8} {sim:>6}  {Path(s['a']).name} ~ {Path(s['b']).name}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
