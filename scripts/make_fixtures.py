"""Regenerate tests/fixtures and examples/ from ../shared/data (run once; the outputs are committed).

    python scripts/make_fixtures.py [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from facecompare.synth import PhotoConditions, photograph, render_card

ROOT = Path(__file__).resolve().parent.parent
LFW = ["Colin_Powell/Colin_Powell_0001.jpg", "Colin_Powell/Colin_Powell_0002.jpg",
       "Serena_Williams/Serena_Williams_0001.jpg", "Serena_Williams/Serena_Williams_0002.jpg",
       "Tony_Blair/Tony_Blair_0001.jpg"]


def downscale(src: Path, dst: Path, long_side: int) -> None:
    im = Image.open(src).convert("RGB")
    im.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
    im.save(dst, quality=88)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    shared = Path(parser.parse_args().shared)
    fixtures = ROOT / "tests" / "fixtures"
    examples = ROOT / "examples"
    fixtures.mkdir(parents=True, exist_ok=True)
    examples.mkdir(parents=True, exist_ok=True)
    for rel in LFW:
        shutil.copy(shared / "lfw" / "lfw-deepfunneled" / rel, fixtures / Path(rel).name)
    fr = shared / "face_recognition" / "examples"
    downscale(fr / "obama.jpg", fixtures / "obama.jpg", 640)
    downscale(fr / "biden.jpg", fixtures / "biden.jpg", 640)
    downscale(fr / "two_people.jpg", fixtures / "two_people.jpg", 800)
    specimens = shared / "id_specimens" / "passporteye" / "passporteye" / "mrz" / "testdata"
    shutil.copy(specimens / "100_pass-cze.jpg", fixtures / "passport_specimen_cze.jpg")
    shutil.copy(specimens / "100_id-che.jpg", fixtures / "id_back_mrz_only_che.jpg")

    # README demo: a selfie, another person's selfie, and a phone photo of an ID card made from a
    # different photo of the first person (the synthetic-document generator, seed 7)
    downscale(fr / "obama.jpg", examples / "selfie.jpg", 1000)
    downscale(fr / "biden.jpg", examples / "other_selfie.jpg", 1000)
    rng = np.random.default_rng(7)
    face = Image.open(fr / "obama2.jpg").convert("RGB")
    w, h = face.size
    card, info = render_card(face, rng, width=1100, ghost=True, face_box=(0.34 * w, 0.19 * h, 0.76 * w, 0.52 * h))
    data, _ = photograph(card, info, rng, PhotoConditions(portrait_fraction=0.12, tilt=0.12, blur=0.8, glare=0.25,
                                                          jpeg_quality=85, ghost=True, frame=(2400, 1800)))
    (examples / "id_card.jpg").write_bytes(data)
    print("wrote", fixtures, examples)


if __name__ == "__main__":
    main()
