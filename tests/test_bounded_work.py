"""Bounded work: any accepted image costs bounded time and memory, and ordinary images are analysed exactly as
before the bounds.

Hostile images are built here, at test time (small files, huge rasters); nothing large is committed. Memory is
measured in a child process (its kernel-reported peak RSS, VmHWM, reset just before the call), because the
test process's own peak is shared with every other test.

``tests/fixtures/reference_detections.json`` holds what the engine answered on ordinary inputs before the bounds
(recorded with ``python tests/test_bounded_work.py --record`` on the unmodified code); the bounds must not change
a single number of it.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facecompare import Settings
from facecompare.synth import PhotoConditions, photograph, render_card

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE = FIXTURES / "reference_detections.json"
SRC = Path(__file__).resolve().parent.parent / "src"


# -- ordinary inputs: the same answers as before the bounds ---------------------------------------------------


def _card_photo(face: str, seed: int, **conditions) -> bytes:
    rng = np.random.default_rng(seed)
    card, info = render_card(Image.open(FIXTURES / face).convert("RGB"), rng, width=900,
                             grayscale=conditions.get("grayscale", False), ghost=conditions.get("ghost", False))
    data, _ = photograph(card, info, rng, PhotoConditions(**conditions))
    return data


def ordinary_inputs() -> dict[str, object]:
    """The committed fixtures, and synthetic 12 MP photos of ID cards and a selfie (JPEG, and one as a PIL image,
    which takes the non-JPEG decoding path)."""
    inputs: dict[str, object] = {p.name: p for p in sorted(FIXTURES.glob("*.jpg"))}
    # 4000x3000 photos of ID cards: a portrait 4 % of the frame wide, found by the 1600 px small-face pass
    inputs["id_12mp.jpg"] = _card_photo("Colin_Powell_0002.jpg", 12, portrait_fraction=0.04, tilt=0.1, glare=0.2,
                                        ghost=True)
    # 6 %: found small by the first pass, its box made by the small-face pass around it
    inputs["id_12mp_refined.jpg"] = _card_photo("Tony_Blair_0001.jpg", 7, portrait_fraction=0.06, tilt=0.05)
    # 5 %, photographed with the phone turned (no EXIF tag): found by the rotation retry at 1600 px
    inputs["id_12mp_turned_90.jpg"] = _card_photo("Serena_Williams_0002.jpg", 90, portrait_fraction=0.05,
                                                  rotation=90, tilt=0.08)
    inputs["id_12mp_as_pil"] = Image.open(io.BytesIO(inputs["id_12mp.jpg"])).convert("RGB")
    selfie = Image.open(FIXTURES / "obama.jpg").convert("RGB").resize((3000, 3750), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    selfie.save(buf, format="JPEG", quality=90)
    inputs["selfie_11mp.jpg"] = buf.getvalue()
    return inputs


def summary(analyzed) -> dict:
    """Every number of an analysis that a bound could move: boxes, landmarks, confidence, pose, quality, the
    rotation and the largest face's embedding."""
    faces = []
    for face in analyzed.faces:
        b = face.bounding_box
        faces.append({
            "box": [b.left, b.top, b.width, b.height],
            "confidence": face.confidence,
            "landmarks": [[lm.x, lm.y] for lm in face.landmarks],
            "pose": [face.pose.roll, face.pose.yaw, face.pose.pitch],
            "quality": [face.quality.brightness, face.quality.sharpness],
            "width_px": face.width_px,
            "rotation": face.rotation,
            "embedding": None if face.embedding is None else [float(v) for v in face.embedding.vector],
        })
    return {"width": analyzed.width, "height": analyzed.height, "rotation": analyzed.rotation, "faces": faces}


def record() -> None:
    from facecompare import Verifier

    verifier = Verifier(Settings())
    out = {name: summary(verifier.analyze(source, embed=1)) for name, source in ordinary_inputs().items()}
    REFERENCE.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {REFERENCE}:", ", ".join(f"{k} ({len(v['faces'])})" for k, v in out.items()))



@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text())


def test_ordinary_inputs_give_exactly_the_answers_recorded_before_the_bounds(verifier, reference):
    """Fixtures and 12 MP photos whose faces the first pass, the small-face pass or the rotation retry finds:
    every box, landmark, score, pose, quality figure and embedding value as recorded on the code before the
    bounds (the accuracy figures in the README rest on these)."""
    inputs = ordinary_inputs()
    assert set(inputs) == set(reference)
    for name, source in inputs.items():
        assert summary(verifier.analyze(source, embed=1)) == reference[name], name


if __name__ == "__main__" and "--record" in sys.argv:
    record()
