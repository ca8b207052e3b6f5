"""The KYC decision (``Verifier.decide``) and CompareFaces' matching (``Verifier.match_faces``) on synthetic faces
and embeddings: every edge of the review band, every reason code and note, computed by hand.

The calibration here is ``Similarity = 100 / (1 + exp(10 (d - 0.5)))``. At the threshold 80 the distance is
``0.5 + ln(1/4) / 10 = 0.36137...``; the review band is one log-odds either side (``review_margin`` 1.0 / slope 10
= 0.1 in distance), so MATCH needs ``d <= 0.26137...`` (Similarity ``100 / (1 + e^-1 / 4) = 91.578``) and NO_MATCH
``d > 0.46137...`` (Similarity ``100 / (1 + e / 4) = 59.539``). Embeddings are one-dimensional with the
euclidean metric, so a pair's distance is exactly the number given.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from facecompare import InvalidParameterException, Settings, Verifier
from facecompare.faces import AnalyzedImage, BoundingBox, Embedding, Face, Landmark, Pose, Quality
from facecompare.scoring import Calibration

CAL = Calibration(slope=10.0, midpoint=0.5, model="unit")
D_THRESHOLD = 0.5 + math.log(0.25) / 10  # Similarity 80
D_MATCH_EDGE = D_THRESHOLD - 0.1  # MATCH at or below
D_NO_MATCH_EDGE = D_THRESHOLD + 0.1  # NO_MATCH above
SIM_MATCH_EDGE = 100 / (1 + math.exp(-1) / 4)
SIM_NO_MATCH_EDGE = 100 / (1 + math.e / 4)


def _verifier(**settings) -> Verifier:
    return Verifier(Settings(**settings), calibration=CAL)  # models are never loaded: decide needs none


def _face(width: float = 120.0, *, at: float = 0.0, confidence: float = 99.9, sharpness: float = 60.0,
          brightness: float = 50.0, yaw: float = 0.0, pitch: float = 0.0, rotation: int = 0) -> Face:
    return Face(bounding_box=BoundingBox(0.1, 0.1, 0.3, 0.4), confidence=confidence,
                landmarks=tuple(Landmark(t, 0.2, 0.2) for t in ("eyeLeft", "eyeRight", "nose", "mouthLeft",
                                                                 "mouthRight")),
                pose=Pose(roll=0.0, yaw=yaw, pitch=pitch), quality=Quality(brightness=brightness, sharpness=sharpness),
                width_px=width, height_px=width * 1.2, rotation=rotation,
                embedding=Embedding(np.array([at]), "unit", "euclidean"))


def _image(*faces: Face, rotation: int = 0) -> AnalyzedImage:
    return AnalyzedImage(width=640, height=480, faces=list(faces), rotation=rotation)


def _decide(distance: float, threshold: float = 80.0, verifier: Verifier | None = None, **document_face):
    return (verifier or _verifier()).decide(_image(_face()), _image(_face(at=distance, **document_face)), threshold)


# -- the review band --------------------------------------------------------------------------------------------


def test_band_is_one_log_odds_either_side_of_the_threshold():
    v = _decide(0.0)
    assert v.review_band == (round(SIM_NO_MATCH_EDGE, 2), round(SIM_MATCH_EDGE, 2)) == (59.54, 91.58)
    assert v.threshold == 80.0


@pytest.mark.parametrize("distance, decision", [
    (0.0, "MATCH"),
    (D_MATCH_EDGE - 1e-9, "MATCH"),
    (D_MATCH_EDGE, "MATCH"),  # the edge itself is MATCH (d <= edge)
    (D_MATCH_EDGE + 1e-9, "REVIEW"),
    (D_THRESHOLD, "REVIEW"),  # exactly at the threshold: inside the band
    (D_NO_MATCH_EDGE, "REVIEW"),  # the upper edge is still REVIEW (NO_MATCH needs d > edge)
    (D_NO_MATCH_EDGE + 1e-9, "NO_MATCH"),
    (2.0, "NO_MATCH"),
])
def test_review_band_edges(distance, decision):
    v = _decide(distance)
    assert v.decision == decision
    assert v.reasons == (["SIMILARITY_IN_REVIEW_BAND"] if decision == "REVIEW" else [])
    assert v.distance == pytest.approx(distance, abs=1e-15)
    assert v.similarity == pytest.approx(100 / (1 + math.exp(10 * (distance - 0.5))))


def test_similarity_at_the_band_edges():
    assert _decide(D_MATCH_EDGE).similarity == pytest.approx(SIM_MATCH_EDGE)  # 91.578
    assert _decide(D_NO_MATCH_EDGE).similarity == pytest.approx(SIM_NO_MATCH_EDGE)  # 59.539
    assert _decide(D_THRESHOLD).similarity == pytest.approx(80.0)


def test_review_margin_zero_has_no_band():
    v = _verifier(review_margin=0.0)
    at = _decide(D_THRESHOLD, verifier=v)
    assert at.decision == "MATCH" and at.review_band == (80.0, 80.0)  # Similarity exactly at the threshold
    assert _decide(D_THRESHOLD + 1e-9, verifier=v).decision == "NO_MATCH"


def test_band_moves_with_the_threshold():
    # threshold 50 is the midpoint (d = 0.5): MATCH at d <= 0.4, NO_MATCH at d > 0.6
    assert _decide(0.4 - 1e-9, threshold=50).decision == "MATCH"
    assert _decide(0.45, threshold=50).decision == "REVIEW"
    assert _decide(0.6 + 1e-9, threshold=50).decision == "NO_MATCH"
    assert _decide(0.45, threshold=50).review_band == (round(100 / (1 + math.e), 2), round(100 / (1 + 1 / math.e), 2))


# -- reason codes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["selfie", "document"])
def test_face_too_small_is_review_even_for_identical_faces(who):
    verifier = _verifier()
    small, big = _image(_face(39.9)), _image(_face())
    selfie, document = (small, big) if who == "selfie" else (big, small)
    v = verifier.decide(selfie, document)
    assert v.decision == "REVIEW" and v.reasons == ["FACE_TOO_SMALL"]
    assert v.similarity == pytest.approx(100 / (1 + math.exp(-5)))  # the pair itself would be a MATCH
    # 40 px (min_face_px) is enough
    assert verifier.decide(_image(_face(40.0)), _image(_face(40.0))).decision == "MATCH"


def test_min_face_px_is_a_setting():
    v = _verifier(min_face_px=100).decide(_image(_face(99.0)), _image(_face()))
    assert v.reasons == ["FACE_TOO_SMALL"]


@pytest.mark.parametrize("quality", [{"sharpness": 4.9}, {"brightness": 4.9}, {"brightness": 98.1},
                                     {"confidence": 49.9}, {"yaw": 80.1}, {"pitch": -70.1}])
def test_low_quality_is_review(quality):
    """The LOW bar (quality.QUALITY_BARS): confidence 50, sharpness 5, brightness 5-98, |yaw| 80, |pitch| 70."""
    v = _decide(0.0, **quality)
    assert v.decision == "REVIEW" and v.reasons == ["LOW_QUALITY"]


@pytest.mark.parametrize("quality", [{"sharpness": 5.0}, {"brightness": 5.0}, {"brightness": 98.0},
                                     {"confidence": 50.0}, {"yaw": -80.0}, {"pitch": 70.0}])
def test_quality_at_the_low_bar_passes(quality):
    assert _decide(0.0, **quality).decision == "MATCH"


def test_reasons_are_listed_once_and_with_the_band():
    verifier = _verifier()
    both_small = verifier.decide(_image(_face(30)), _image(_face(30, at=D_THRESHOLD)))
    assert both_small.decision == "REVIEW"
    assert both_small.reasons == ["FACE_TOO_SMALL", "SIMILARITY_IN_REVIEW_BAND"]
    mixed = verifier.decide(_image(_face(30)), _image(_face(sharpness=1.0, at=2.0)))
    assert mixed.decision == "REVIEW" and mixed.reasons == ["FACE_TOO_SMALL", "LOW_QUALITY"]  # a NO_MATCH held back


def test_second_selfie_face_half_as_wide_is_multiple_faces():
    verifier = _verifier()
    v = verifier.decide(_image(_face(100), _face(50, at=5.0)), _image(_face()))
    assert v.decision == "REVIEW" and v.reasons == ["MULTIPLE_FACES_IN_SELFIE"] and v.notes == []


def test_small_background_face_in_selfie_is_a_note_only():
    verifier = _verifier()
    v = verifier.decide(_image(_face(100), _face(49.9, at=5.0)), _image(_face()))
    assert v.decision == "MATCH" and v.reasons == []
    assert v.notes == ["SMALL_BACKGROUND_FACES_IN_SELFIE_IGNORED"]
    assert v.selfie_face.width_px == 100  # the largest face was compared


def test_secondary_document_faces_and_rotations_are_notes():
    verifier = _verifier()
    v = verifier.decide(_image(_face(), rotation=270), _image(_face(), _face(40, at=3.0), rotation=90))
    assert v.decision == "MATCH" and v.reasons == []
    assert v.notes == ["SECONDARY_FACES_ON_DOCUMENT_IGNORED", "DOCUMENT_ROTATED_90", "SELFIE_ROTATED_270"]


@pytest.mark.parametrize("selfie_faces, document_faces, reasons", [
    (0, 1, ["NO_FACE_IN_SELFIE"]), (1, 0, ["NO_FACE_ON_DOCUMENT"]), (0, 0, ["NO_FACE_IN_SELFIE", "NO_FACE_ON_DOCUMENT"]),
])
def test_no_face_is_review_without_similarity(selfie_faces, document_faces, reasons):
    v = _verifier().decide(_image(*[_face()] * selfie_faces), _image(*[_face()] * document_faces))
    assert v.decision == "REVIEW" and v.reasons == reasons
    assert v.similarity is None and v.distance is None


def test_embeddings_of_different_models_are_refused():
    other = dataclasses.replace(_face(), embedding=Embedding(np.array([0.0]), "other", "euclidean"))
    with pytest.raises(InvalidParameterException, match="different models"):
        _verifier().decide(_image(_face()), _image(other))


# -- CompareFaces on the dataclasses: the threshold and QualityFilter ------------------------------------------


def test_similarity_exactly_at_the_threshold_is_a_match():
    verifier = _verifier()
    source, target = _image(_face()), _image(_face(at=0.3), _face(at=0.7))
    at = CAL.similarity(0.3)  # 100 / (1 + e^-2) = 88.08
    assert at == pytest.approx(100 / (1 + math.exp(-2)))
    comparison = verifier.match_faces(source, target, threshold=at)
    assert [m.distance for m in comparison.matches] == [0.3] and [m.distance for m in comparison.unmatched] == [0.7]
    above = verifier.match_faces(source, target, threshold=math.nextafter(at, 100))
    assert above.matches == [] and len(above.unmatched) == 2


def test_source_face_failing_the_quality_filter_is_invalid_parameter():
    verifier = _verifier()
    blurred = _image(_face(sharpness=20.0))  # passes LOW and MEDIUM (15), fails HIGH (30)
    target = _image(_face())
    assert len(verifier.match_faces(blurred, target, quality_filter="MEDIUM").matches) == 1
    with pytest.raises(InvalidParameterException, match="source face does not pass QualityFilter HIGH"):
        verifier.match_faces(blurred, target, quality_filter="HIGH")


def test_target_faces_failing_the_quality_filter_are_in_neither_list():
    verifier = _verifier()
    target = _image(_face(at=0.1), _face(47.0, at=0.1), _face(at=2.0))  # the 47 px face fails HIGH (48 px)
    none = verifier.match_faces(_image(_face()), target, quality_filter="NONE")
    high = verifier.match_faces(_image(_face()), target, quality_filter="HIGH")
    assert (len(none.matches), len(none.unmatched)) == (2, 1)
    assert (len(high.matches), len(high.unmatched)) == (1, 1)
    assert high.matches[0].face.width_px == 120.0


# -- the command line: exit code 3 for a similarity inside the band ---------------------------------------------


def test_cli_exit_code_3_for_a_similarity_in_the_review_band(verifier, tmp_path, capsys):
    """The real example pair under a calibration file that puts its distance exactly at Similarity 80: REVIEW,
    exit code 3 (the shipped calibration calls the pair a MATCH, exit 0)."""
    from facecompare.cli import main
    from facecompare.scoring import load_calibration

    examples = __import__("pathlib").Path(__file__).parent.parent / "examples"
    selfie, document = str(examples / "selfie.jpg"), str(examples / "id_card.jpg")
    d = verifier.verify(selfie, document).distance
    shipped = load_calibration(model=verifier.recognizer.name)
    path = tmp_path / "calibration.json"
    # Similarity(d) = 80  <=>  exp(slope (d - midpoint)) = 1/4  <=>  midpoint = d + ln 4 / slope
    Calibration(slope=shipped.slope, midpoint=d + math.log(4) / shipped.slope, model=shipped.model).save(path)
    assert main(["compare", selfie, document]) == 0
    capsys.readouterr()
    assert main(["compare", selfie, document, "--calibration", str(path)]) == 3
    out = capsys.readouterr().out
    assert "Decision:    REVIEW" in out and "Reasons:     SIMILARITY_IN_REVIEW_BAND" in out
    assert "Similarity:  80.00" in out
