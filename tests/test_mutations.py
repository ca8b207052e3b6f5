"""Tests that kill mutations which survived the rest of the suite (issue 22, item 7): each names the code it guards
and fails when that code is broken on purpose (see the commit message for how each was checked)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from facecompare.collections.service import Collections
from facecompare.collections.store import open_store
from facecompare.dedupe import find_groups
from facecompare.images import load_image
from facecompare.scoring import fit_logistic
from facecompare.settings import Settings

# -- calibration: genuine and impostor pairs count equally (scoring.fit_logistic's class weights) ------------------


def _pairs(genuine: int, impostor: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    d = np.concatenate([rng.normal(0.40, 0.08, genuine), rng.normal(0.60, 0.08, impostor)])
    return d, np.concatenate([np.ones(genuine, bool), np.zeros(impostor, bool)])


def test_calibration_on_imbalanced_pairs_puts_the_midpoint_where_both_classes_are_as_likely():
    """Two classes of equal spread either side of 0.5: the midpoint is 0.5 whatever their counts (users fit on the
    reviewers' decisions, which are mostly one class). Unweighted, 1:50 moves it by log(50)/slope, about 0.13."""
    balanced_slope, balanced_mid = fit_logistic(*_pairs(2000, 2000))
    assert balanced_mid == pytest.approx(0.5, abs=0.01)
    for genuine, impostor in ((100, 5000), (5000, 100)):
        slope, midpoint = fit_logistic(*_pairs(genuine, impostor))
        assert midpoint == pytest.approx(balanced_mid, abs=0.02), (genuine, impostor)
        assert slope == pytest.approx(balanced_slope, rel=0.25)


# -- dedupe: union-find joins chains, not only cliques -------------------------------------------------------------


def test_dedupe_groups_chains_that_are_not_cliques():
    """a~b, b~c but a!~c is one group of three; a longer chain met in the worst order (each new match joins the
    root of a deeper tree) is one group too, and rows that match nothing are in none."""
    names = ["a", "b", "c", "d", "e", "o", "p", "q", "x", "y", "lone"]
    rows = {n: {"id": n, "face_id": f"face-{n}", "status": "indexed"} for n in names}
    matches = {"a": [("b", 91.0)], "b": [("c", 92.0)],  # a~b, b~c, never a~c
               "e": [("d", 95.0)], "d": [("c", 93.0)],  # then d~e and c~d: chain a-b-c-d-e
               "x": [("y", 99.0)], "lone": []}
    matches.update({"p": [("q", 90.0)], "o": [("q", 90.5)]})  # a star met through its leaf: o~q, p~q, o!~p
    searched = {f"face-{n}": {"matches": [(f"face-{m}", s) for m, s in found]} for n, found in matches.items()}
    groups = find_groups(rows, searched)
    assert [g["ids"] for g in groups] == [["a", "b", "c", "d", "e"], ["o", "p", "q"], ["x", "y"]]
    assert [(p["a"], p["b"]) for p in groups[0]["pairs"]] == [("d", "e"), ("c", "d"), ("b", "c"), ("a", "b")]
    assert [g["group"] for g in groups] == [1, 2, 3]


# -- IndexFaces MaxFaces=1 keeps the best face, not any face ----------------------------------------------------------


def _customer_with_bystander(fixtures) -> bytes:
    customer = Image.open(fixtures / "Colin_Powell_0001.jpg").convert("RGB").resize((500, 500))
    bystander = Image.open(fixtures / "Serena_Williams_0001.jpg").convert("RGB").resize((200, 200))
    canvas = Image.new("RGB", (900, 600), (128, 128, 128))
    canvas.paste(customer, (40, 50))
    canvas.paste(bystander, (650, 30))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=92)
    return out.getvalue()


def test_index_faces_max_faces_1_keeps_the_customer_not_the_bystander(verifier, fixtures, tmp_path):
    service = Collections(verifier, open_store(f"sqlite:///{tmp_path / 'c.db'}"))
    try:
        service.create_collection("kyc")
        result = service.index_faces("kyc", _customer_with_bystander(fixtures), max_faces=1)
        assert len(result.records) == 1 and [u.reasons for u in result.unindexed] == [["EXCEEDS_MAX_FACES"]]
        kept = result.records[0].face.bounding_box
        dropped = result.unindexed[0].face.bounding_box
        assert kept.area > 4 * dropped.area  # the large face, on the left
        assert kept.left < 0.5 < dropped.left
        # and it is the customer: another photo of him matches, one of the bystander does not
        assert service.search_faces_by_image("kyc", fixtures / "Colin_Powell_0002.jpg", threshold=80).matches
        assert not service.search_faces_by_image("kyc", fixtures / "Serena_Williams_0002.jpg", threshold=80).matches
    finally:
        service.store.close()


# -- the EXIF turn of a PIL image passed to the library ---------------------------------------------------------------


def _sideways_with_exif(fixtures, scale: float) -> tuple[Image.Image, Image.Image]:
    """(upright image, the same stored sideways with EXIF orientation 6, opened by PIL as a caller would)."""
    upright = Image.open(fixtures / "obama.jpg").convert("RGB")
    upright = upright.resize((round(upright.width * scale), round(upright.height * scale)))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # orientation 6 means: turn 270 (90 clockwise) to view
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    stored.save(out, "JPEG", quality=95, exif=exif)
    return upright, Image.open(io.BytesIO(out.getvalue()))


@pytest.mark.parametrize("working_pixels", [Settings().max_working_pixels, 100_000])  # 100k: the reduced path
def test_a_pil_image_with_exif_orientation_is_turned_upright(fixtures, working_pixels):
    upright, sideways = _sideways_with_exif(fixtures, 1.0)
    assert sideways.size == (upright.height, upright.width) and sideways.getexif()[0x0112] == 6
    settings = Settings(max_working_pixels=working_pixels)
    decoded = load_image(sideways, settings)
    assert decoded.base_reduction == (1 if working_pixels > upright.width * upright.height else 2)
    reference = load_image(upright, settings)
    assert (decoded.width, decoded.height) == (upright.width, upright.height)
    a = decoded.view(decoded.reduction_for_long_side(200)).astype(np.int16)
    b = reference.view(reference.reduction_for_long_side(200)).astype(np.int16)
    assert a.shape == b.shape
    assert np.abs(a - b).mean() < 6  # the same picture (JPEG noise aside); sideways it would be about 50


def test_the_library_finds_the_face_in_the_same_place_in_an_exif_turned_pil_image(verifier, fixtures):
    upright, sideways = _sideways_with_exif(fixtures, 1.0)
    found = verifier.analyze(sideways).faces
    expected = verifier.analyze(upright).faces
    assert len(found) == len(expected) == 1
    f, e = found[0].bounding_box, expected[0].bounding_box
    assert abs((f.left + f.width / 2) - (e.left + e.width / 2)) < 0.03
    assert abs((f.top + f.height / 2) - (e.top + e.height / 2)) < 0.03
