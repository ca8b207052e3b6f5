"""The engine's edges (issue 19): what moved out of the Verifier keeps its contract, on real faces.

- ``engine.decision.decide``: the KYC decision as a pure function of two analysed images and a calibration;
- ``quality``: the QualityFilter bars, checked in one module (the filter and the reasons it names agree);
- ``native``: the native JSON shapes, outside the engine;
- ``models.nms``: the suppression every detector shares;
- ``DecodedImage.encoded`` / ``.raster``: what an image is decoded from, readable without private attributes;
- ``engine.trace.collecting``: the stage timing's public switch.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image

import facecompare
import facecompare.engine
from facecompare import InvalidParameterException, Settings
from facecompare.engine import MAX_FACES, Verification, Verifier, page_from_notes
from facecompare.engine.decision import decide
from facecompare.engine.trace import collecting, stage
from facecompare.faces import AnalyzedImage
from facecompare.images import load_image
from facecompare.models.nms import nms
from facecompare.native import verification_dict
from facecompare.quality import QUALITY_FILTERS, face_passes, quality_reasons, strictest_level_passed


@pytest.fixture(scope="module")
def analysed(verifier, fixtures):
    """Real analysed images: two LFW photos of one person, a passport specimen and a photo of two people."""
    names = ("Colin_Powell_0001.jpg", "Colin_Powell_0002.jpg", "passport_specimen_cze.jpg", "two_people.jpg")
    return {name: verifier.analyze(fixtures / name, embed=1) for name in names}


# -- the decision, outside the Verifier --------------------------------------------------------------------------


def test_decide_is_the_verifiers_decision_from_the_images_and_calibration_alone(verifier, analysed):
    selfie, document = analysed["Colin_Powell_0001.jpg"], analysed["Colin_Powell_0002.jpg"]
    settings = verifier.settings
    for threshold in (60.0, 80.0, 99.0):
        pure = decide(selfie, document, verifier.calibration, threshold, min_face_px=settings.min_face_px,
                      review_margin=settings.review_margin)
        assert isinstance(pure, Verification)
        assert verification_dict(pure) == verification_dict(verifier.decide(selfie, document, threshold))
    assert decide(selfie, document, verifier.calibration, 80.0, min_face_px=settings.min_face_px,
                  review_margin=settings.review_margin).decision == "MATCH"
    # the arguments are what decides: a minimum face wider than both faces, a band wider than every Similarity
    too_small = decide(selfie, document, verifier.calibration, 80.0, min_face_px=10_000.0, review_margin=1.0)
    assert too_small.decision == "REVIEW" and too_small.reasons == ["FACE_TOO_SMALL"]
    wide = decide(selfie, document, verifier.calibration, 80.0, min_face_px=settings.min_face_px, review_margin=50.0)
    assert wide.decision == "REVIEW" and wide.reasons == ["SIMILARITY_IN_REVIEW_BAND"]


def test_match_faces_loads_the_calibration_only_to_compare_a_face(tmp_path, analysed):
    """CompareFaces' input errors come before the calibration is read (as when the matching was in the Verifier)."""
    lost = Verifier(Settings(calibration=str(tmp_path / "absent.json")))  # no model is loaded by these calls
    empty = AnalyzedImage(width=640, height=480, faces=[], rotation=0)
    with pytest.raises(InvalidParameterException, match="no face was found in the source image"):
        lost.match_faces(empty, analysed["Colin_Powell_0002.jpg"])
    with pytest.raises(InvalidParameterException, match="no face was found in the target image"):
        lost.match_faces(analysed["Colin_Powell_0001.jpg"], empty)
    with pytest.raises(InvalidParameterException, match="Calibration file not found"):
        lost.match_faces(analysed["Colin_Powell_0001.jpg"], analysed["Colin_Powell_0002.jpg"])


def test_the_engine_keeps_its_public_names_and_holds_no_presenter():
    assert (MAX_FACES, facecompare.engine.Verifier, facecompare.engine.Verification) == (100, Verifier, Verification)
    assert page_from_notes(["DOCUMENT_PDF_PAGE_2_OF_3"], "document") == 2
    assert facecompare.verification_dict is verification_dict  # the top level's name is the native shape's
    for presenter in ("verification_dict", "face_summary", "other_faces"):
        assert not hasattr(facecompare.engine, presenter)
    assert all(not name.startswith("_") for name in facecompare.engine.__all__)


# -- the quality bars, in one module -----------------------------------------------------------------------------


def _degraded(face):
    """The face past each bar in turn: confidence, width, pose, sharpness, brightness."""
    return [
        dataclasses.replace(face, confidence=10.0),
        dataclasses.replace(face, width_px=10.0),
        dataclasses.replace(face, pose=dataclasses.replace(face.pose, yaw=85.0)),
        dataclasses.replace(face, quality=dataclasses.replace(face.quality, sharpness=1.0)),
        dataclasses.replace(face, quality=dataclasses.replace(face.quality, brightness=99.5)),
    ]


def test_the_filter_fails_exactly_the_faces_the_reasons_name_a_bar_for(analysed):
    faces = [face for image in analysed.values() for face in image.faces]
    assert len(faces) >= 5
    checked = failed = 0
    for face in faces + [d for f in faces for d in _degraded(f)]:
        for level in QUALITY_FILTERS:
            reasons = quality_reasons(level, face, 0.0)
            assert (reasons == []) == face_passes(level, face), (level, face, reasons)
            assert "LOW_FACE_QUALITY" not in reasons  # every bar the filter has, the reasons name
            checked += 1
            failed += bool(reasons)
    assert failed and failed < checked
    powell = analysed["Colin_Powell_0001.jpg"].largest
    assert face_passes("HIGH", powell) and strictest_level_passed(powell) == 3
    assert [quality_reasons("LOW", d, 0.0) for d in _degraded(powell)] == [
        ["LOW_CONFIDENCE"], ["SMALL_BOUNDING_BOX"], ["EXTREME_POSE"], ["LOW_SHARPNESS"], ["LOW_BRIGHTNESS"]]
    assert [strictest_level_passed(d) for d in _degraded(powell)] == [0, 0, 0, 0, 0]
    # the engine's minimum face size is a bar of its own at every level but NONE
    assert quality_reasons("LOW", powell, powell.width_px + 1) == ["SMALL_BOUNDING_BOX"]
    assert quality_reasons("NONE", powell, powell.width_px + 1) == []


# -- non-maximum suppression ---------------------------------------------------------------------------------------


def test_nms_keeps_the_best_box_of_each_overlapping_group():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 5]], dtype=np.float64)
    scores = np.array([0.7, 0.9, 0.8, 0.95])
    # IoU: boxes 0 and 1 81/119 = 0.68; 3 and 0 50/100 = 0.5; 3 and 1 36/114 = 0.32; box 2 overlaps none
    assert nms(boxes, scores, 0.4) == [3, 1, 2]  # box 0 goes with box 3 (0.5 > 0.4)
    assert nms(boxes, scores, 0.6) == [3, 1, 2]  # box 0 stays past box 3 (0.5), goes with box 1 (0.68)
    assert nms(boxes, scores, 0.7) == [3, 1, 2, 0]  # nothing overlaps by more than 0.7
    assert nms(boxes[[0, 3]], scores[[0, 3]], 0.45) == [1]
    assert nms(boxes[[0, 3]], scores[[0, 3]], 0.55) == [1, 0]
    assert nms(boxes[:0], scores[:0], 0.4) == []


# -- what a decoded image is decoded from ------------------------------------------------------------------------------


def test_a_decoded_image_tells_what_it_decodes_from(fixtures):
    data = (fixtures / "Colin_Powell_0001.jpg").read_bytes()
    jpeg = load_image(data)
    assert jpeg.encoded == data and jpeg.raster is None
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buffer, format="PNG")
    png = load_image(buffer.getvalue())
    assert png.encoded is None
    assert png.raster.mode == "RGB" and png.raster.size == (png.width, png.height)
    assert np.array_equal(np.asarray(png.raster), png.view(1))  # the views are made from it


# -- stage timing -------------------------------------------------------------------------------------------------------


def test_collecting_times_the_stages_inside_it_only():
    outer: list = []
    inner: list = []
    with stage("not collected"):
        pass
    with collecting(outer):
        with stage("first"):
            pass
        with collecting(inner), stage("nested"):
            pass
        with stage("second"):
            pass
    with stage("after"):
        pass
    assert [name for name, _ in outer] == ["first", "second"]
    assert [name for name, _ in inner] == ["nested"]
    assert all(seconds >= 0 for _, seconds in outer + inner)
