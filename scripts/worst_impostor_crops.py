"""Small side-by-side crops of the highest-scoring impostor pairs of a `evaluate --all-impostors` run.

    python scripts/worst_impostor_crops.py evaluation/strict/SET/strict.json docs/strict/SET --n 3

Each picture (one per pair of people): the selfie's face and the document face it matched, 96 px high each, with the Similarity.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

HEIGHT = 96


def crop(path: str, face: dict) -> Image.Image:
    image = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    w, h = image.size
    cx = (face["left"] + face["box_width"] / 2) * w
    cy = (face["top"] + face["box_height"] / 2) * h
    side = 1.3 * max(face["box_width"] * w, face["box_height"] * h)
    box = (int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2))
    return image.crop(box).resize((HEIGHT, HEIGHT), Image.Resampling.LANCZOS)


def main(summary: str, out: str, n: int = 3) -> None:
    rows, seen = [], set()
    for row in json.loads(Path(summary).read_text())["highest_impostors"]:
        people = (row["selfie_identity"], row["document_identity"])
        if people not in seen and len(rows) < n:  # one picture per pair of people
            seen.add(people)
            rows.append(row)
    Path(out).mkdir(parents=True, exist_ok=True)
    for k, row in enumerate(rows, 1):
        sheet = Image.new("RGB", (2 * HEIGHT + 4, HEIGHT + 16), "white")
        sheet.paste(crop(row["selfie"], row["selfie_face"]), (0, 16))
        sheet.paste(crop(row["document"], row["document_face"]), (HEIGHT + 4, 16))
        ImageDraw.Draw(sheet).text((2, 2), f"#{k} Similarity {row.get('similarity', 0):.2f}", fill="black")
        target = Path(out) / f"impostor-{k}.png"
        sheet.save(target, optimize=True)
        print(target)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 3)
