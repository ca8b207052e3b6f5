"""The engine on real faces: CompareFaces/DetectFaces semantics, the KYC decision and document robustness."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

import facecompare
from facecompare import InvalidParameterException
from facecompare.synth import PhotoConditions, photograph, render_card

LANDMARKS = {"eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight"}


def _card_photo(face_path, seed=1, **conditions):
    rng = np.random.default_rng(seed)
    card, info = render_card(Image.open(face_path).convert("RGB"), rng, width=900,
                             grayscale=conditions.get("grayscale", False), ghost=conditions.get("ghost", False))
    return photograph(card, info, rng, PhotoConditions(**conditions))


def _assert_compared_face(face: dict) -> None:
    assert set(face) == {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"}
    box = face["BoundingBox"]
    assert 0 < box["Width"] <= 1 and 0 < box["Height"] <= 1
    assert -0.1 < box["Left"] < 1 and -0.1 < box["Top"] < 1
    assert {lm["Type"] for lm in face["Landmarks"]} == LANDMARKS
    for lm in face["Landmarks"]:  # landmarks sit inside (or on the edge of) the face box
        assert box["Left"] - 0.02 <= lm["X"] <= box["Left"] + box["Width"] + 0.02
        assert box["Top"] - 0.02 <= lm["Y"] <= box["Top"] + box["Height"] + 0.02
    assert set(face["Pose"]) == {"Roll", "Yaw", "Pitch"} and set(face["Quality"]) == {"Brightness", "Sharpness"}
    assert face["Confidence"] > 99  # every face these tests compare is a clear, frontal-ish photo


def test_pose_and_quality_are_measurements_of_the_face(verifier, fixtures):
    """Values that could be wrong (the 0-100 and +-180 ranges hold by construction): Serena Williams' first LFW
    photo faces the camera squarely with a level eye line; mirroring Colin Powell's first photo (turned a little
    to one side) flips the sign of its yaw; halving the pixel values halves Brightness (the mean luma of the
    chip's centre); a Gaussian blur of 2 px takes a crisp photo's Sharpness under the LOW bar of 5."""
    def face(image) -> dict:
        return facecompare.detect_faces(image, verifier=verifier)["FaceDetails"][0]

    frontal = face(fixtures / "Serena_Williams_0001.jpg")
    assert abs(frontal["Pose"]["Roll"]) < 5 and abs(frontal["Pose"]["Yaw"]) < 10 and abs(frontal["Pose"]["Pitch"]) < 20
    colin = Image.open(fixtures / "Colin_Powell_0001.jpg").convert("RGB")
    turned, mirrored = face(colin)["Pose"]["Yaw"], face(ImageOps.mirror(colin))["Pose"]["Yaw"]
    assert abs(turned) > 5 and turned * mirrored < 0 and abs(turned + mirrored) < 5
    plain = face(colin)["Quality"]
    dark = face(ImageEnhance.Brightness(colin).enhance(0.5))["Quality"]
    blurred = face(colin.filter(ImageFilter.GaussianBlur(2)))["Quality"]
    assert 20 < plain["Brightness"] < 80 and dark["Brightness"] / plain["Brightness"] == pytest.approx(0.5, abs=0.03)
    assert plain["Sharpness"] > 30 and blurred["Sharpness"] < 5


def test_same_person_matches(verifier, fixtures):
    result = facecompare.compare_faces(fixtures / "Colin_Powell_0001.jpg", fixtures / "Colin_Powell_0002.jpg",
                                       verifier=verifier)
    assert len(result["FaceMatches"]) == 1 and result["UnmatchedFaces"] == []
    assert result["FaceMatches"][0]["Similarity"] >= 90
    _assert_compared_face(result["FaceMatches"][0]["Face"])
    assert set(result["SourceImageFace"]) == {"BoundingBox", "Confidence"}


def test_different_people_do_not_match(verifier, fixtures):
    result = facecompare.compare_faces(fixtures / "Colin_Powell_0001.jpg", fixtures / "Serena_Williams_0001.jpg",
                                       verifier=verifier)
    assert result["FaceMatches"] == []
    assert len(result["UnmatchedFaces"]) == 1
    _assert_compared_face(result["UnmatchedFaces"][0])


def test_group_photo_splits_matches_and_unmatched(verifier, fixtures):
    result = facecompare.compare_faces(fixtures / "obama.jpg", fixtures / "two_people.jpg", verifier=verifier)
    assert len(result["FaceMatches"]) == 1 and len(result["UnmatchedFaces"]) == 1
    matched = result["FaceMatches"][0]["Face"]["BoundingBox"]
    unmatched = result["UnmatchedFaces"][0]["BoundingBox"]
    assert matched["Left"] < 0.5 < unmatched["Left"]  # Obama stands on the left, Biden on the right


def test_threshold_moves_faces_between_lists(verifier, fixtures):
    a, b = fixtures / "Colin_Powell_0001.jpg", fixtures / "Colin_Powell_0002.jpg"
    similarity = facecompare.compare_faces(a, b, verifier=verifier)["FaceMatches"][0]["Similarity"]
    above = facecompare.compare_faces(a, b, similarity_threshold=min(100, similarity + 0.01), verifier=verifier)
    assert above["FaceMatches"] == [] and len(above["UnmatchedFaces"]) == 1


def test_no_face_in_source_is_invalid_parameter(verifier, fixtures):
    with pytest.raises(InvalidParameterException, match="no face was found in the source"):
        facecompare.compare_faces(fixtures / "id_back_mrz_only_che.jpg", fixtures / "obama.jpg", verifier=verifier)


def test_no_face_in_target_is_invalid_parameter(verifier, fixtures):
    with pytest.raises(InvalidParameterException, match="no face was found in the target"):
        facecompare.compare_faces(fixtures / "obama.jpg", fixtures / "id_back_mrz_only_che.jpg", verifier=verifier)


@pytest.mark.parametrize("threshold", [-1, 100.5, "80", None, True])
def test_bad_threshold_is_invalid_parameter(verifier, fixtures, threshold):
    with pytest.raises(InvalidParameterException, match="0 to 100"):
        facecompare.compare_faces(fixtures / "obama.jpg", fixtures / "biden.jpg", similarity_threshold=threshold,
                                  verifier=verifier)


def test_bad_quality_filter_is_invalid_parameter(verifier, fixtures):
    with pytest.raises(InvalidParameterException, match="QualityFilter"):
        facecompare.compare_faces(fixtures / "obama.jpg", fixtures / "biden.jpg", quality_filter="SUPER",
                                  verifier=verifier)


def test_quality_filter_high_drops_tiny_faces(verifier, fixtures):
    big = Image.open(fixtures / "Serena_Williams_0001.jpg").convert("RGB")  # sharpness ~38, passes HIGH
    small = big.resize((100, 100))  # a ~40 px face: passes NONE, fails HIGH (48 px minimum)
    canvas = Image.new("RGB", (600, 300), (200, 200, 200))
    canvas.paste(big, (0, 25))
    canvas.paste(small, (450, 100))
    none = facecompare.compare_faces(fixtures / "Serena_Williams_0001.jpg", canvas, verifier=verifier)
    high = facecompare.compare_faces(fixtures / "Serena_Williams_0001.jpg", canvas, quality_filter="HIGH",
                                     verifier=verifier)
    assert len(none["FaceMatches"]) + len(none["UnmatchedFaces"]) == 2
    assert len(high["FaceMatches"]) + len(high["UnmatchedFaces"]) == 1


def test_detect_faces_default_shape(verifier, fixtures):
    result = facecompare.detect_faces(fixtures / "two_people.jpg", verifier=verifier)
    assert len(result["FaceDetails"]) == 2
    for face in result["FaceDetails"]:
        _assert_compared_face(face)
    areas = [f["BoundingBox"]["Width"] * f["BoundingBox"]["Height"] for f in result["FaceDetails"]]
    assert areas == sorted(areas, reverse=True)


def test_detect_faces_all_returns_only_honest_fields(verifier, fixtures):
    result = facecompare.detect_faces(fixtures / "obama.jpg", ["ALL"], verifier=verifier)
    assert set(result["FaceDetails"][0]) == {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"}


def test_detect_faces_bad_attribute_is_invalid_parameter(verifier, fixtures):
    with pytest.raises(InvalidParameterException, match="unknown attribute"):
        facecompare.detect_faces(fixtures / "obama.jpg", ["BOGUS"], verifier=verifier)


def test_detect_faces_on_mrz_back_finds_nothing(verifier, fixtures):
    assert facecompare.detect_faces(fixtures / "id_back_mrz_only_che.jpg", verifier=verifier) == {"FaceDetails": []}


def test_twenty_faces(verifier, fixtures):
    tiles = [Image.open(fixtures / name).convert("RGB") for name in
             ("Colin_Powell_0001.jpg", "Serena_Williams_0001.jpg", "Colin_Powell_0002.jpg", "Serena_Williams_0002.jpg")]
    tiles.append(Image.open(fixtures / "obama.jpg").convert("RGB").crop((80, 0, 560, 480)).resize((250, 250)))
    canvas = Image.new("RGB", (5 * 250, 4 * 250))
    for i in range(20):
        canvas.paste(tiles[i % 5], ((i % 5) * 250, (i // 5) * 250))
    detected = facecompare.detect_faces(canvas, verifier=verifier)
    assert len(detected["FaceDetails"]) == 20
    result = facecompare.compare_faces(fixtures / "Colin_Powell_0002.jpg", canvas, verifier=verifier)
    assert len(result["FaceMatches"]) + len(result["UnmatchedFaces"]) == 20
    assert len(result["FaceMatches"]) == 8  # Colin Powell's two photos, four times each
    similarities = [m["Similarity"] for m in result["FaceMatches"]]
    assert similarities == sorted(similarities, reverse=True)


# -- the KYC decision -------------------------------------------------------------------------------------------


def test_verify_match_and_no_match(verifier, fixtures):
    same = facecompare.verify(fixtures / "Serena_Williams_0001.jpg", fixtures / "Serena_Williams_0002.jpg",
                              verifier=verifier)
    other = facecompare.verify(fixtures / "Serena_Williams_0001.jpg", fixtures / "Tony_Blair_0001.jpg",
                               verifier=verifier)
    assert same.decision == "MATCH" and same.reasons == []
    assert other.decision == "NO_MATCH" and other.reasons == []
    assert same.similarity > other.similarity


def test_verify_no_face_is_review_with_reason(verifier, fixtures):
    result = facecompare.verify(fixtures / "obama.jpg", fixtures / "id_back_mrz_only_che.jpg", verifier=verifier)
    assert result.decision == "REVIEW"
    assert result.reasons == ["NO_FACE_ON_DOCUMENT"] and result.similarity is None
    result = facecompare.verify(fixtures / "id_back_mrz_only_che.jpg", fixtures / "obama.jpg", verifier=verifier)
    assert result.decision == "REVIEW" and "NO_FACE_IN_SELFIE" in result.reasons


def test_verify_two_faces_in_selfie_is_review(verifier, fixtures):
    result = facecompare.verify(fixtures / "two_people.jpg", fixtures / "obama.jpg", verifier=verifier)
    assert result.decision == "REVIEW" and "MULTIPLE_FACES_IN_SELFIE" in result.reasons


def test_verify_real_passport_specimen_ignores_ghost_portrait(verifier, fixtures):
    """The Czech passport specimen carries a main portrait and a small ghost portrait (labels.csv boxes:
    main 56,125,118x118; ghost 501,109,49x49 on a 600 px page)."""
    analyzed = verifier.analyze(fixtures / "passport_specimen_cze.jpg", embed=2)
    assert len(analyzed.faces) == 2
    main, ghost = analyzed.faces
    assert main.bounding_box.left * analyzed.width < 150 and ghost.bounding_box.left * analyzed.width > 450
    # the portrait and its ghost are the same person, so a selfie-like crop of the main portrait matches
    page = Image.open(fixtures / "passport_specimen_cze.jpg").convert("RGB")
    crop = page.crop((26, 85, 206, 285)).resize((360, 400))
    result = facecompare.verify(crop, fixtures / "passport_specimen_cze.jpg", verifier=verifier)
    assert result.decision == "MATCH"
    assert "SECONDARY_FACES_ON_DOCUMENT_IGNORED" in result.notes
    assert result.document_face.bounding_box.left * analyzed.width < 150


@pytest.mark.parametrize("rotation,exif", [(90, False), (180, False), (270, False), (90, True), (270, True)])
def test_rotated_document_photo_matches(verifier, fixtures, rotation, exif):
    data, meta = _card_photo(fixtures / "Serena_Williams_0002.jpg", seed=rotation, portrait_fraction=0.06,
                             rotation=rotation, exif=exif, tilt=0.08, frame=(2000, 1500))
    result = facecompare.verify(fixtures / "Serena_Williams_0001.jpg", data, verifier=verifier)
    assert result.decision == "MATCH", (result.similarity, result.reasons)
    # the stored pixels are the scene turned counter-clockwise; without EXIF the retry turns them back
    assert result.document.rotation == (0 if exif else rotation)


@pytest.mark.parametrize("name,rotation,seed", [("Serena_Williams_0002", 180, 1), ("Serena_Williams_0002", 270, 1),
                                                ("Serena_Williams_0001", 270, 0), ("Tony_Blair_0001", 270, 0)])
def test_upside_down_first_hit_is_turned_upright(verifier, fixtures, name, rotation, seed):
    """Photos where RetinaFace's first hit was the face upside down or sideways with plausible landmarks
    (found on these fixtures: the engine without the orientation check answered 0 or 90); the aligned chip
    was then upside down and a genuine pair scored as a stranger."""
    data, _ = _card_photo(fixtures / f"{name}.jpg", seed=seed, portrait_fraction=0.05, rotation=rotation,
                          tilt=0.1, frame=(2000, 1500))
    analyzed = verifier.analyze(data, embed=1)
    assert analyzed.rotation == rotation
    if name.startswith("Serena"):
        other = "Serena_Williams_0001" if name.endswith("2") else "Serena_Williams_0002"
        result = facecompare.verify(fixtures / f"{other}.jpg", data, verifier=verifier)
        assert result.decision == "MATCH", (result.similarity, result.reasons)


@pytest.mark.parametrize("turn", [0, 90, 180, 270])
def test_orientation_check_finds_the_upright_turn(verifier, fixtures, turn):
    face = np.asarray(Image.open(fixtures / "Colin_Powell_0001.jpg").convert("RGB"))
    turned = np.ascontiguousarray(np.rot90(face, -turn // 90))  # turned clockwise by ``turn``
    assert verifier.orientation.upright_turn(turned) == (360 - turn) % 360


def test_small_grayscale_portrait_in_12mp_phone_photo(verifier, fixtures):
    """A portrait 3 % of a 4000 px frame (about 120 px), grayscale, with ghost, glare and blur."""
    data, meta = _card_photo(fixtures / "Colin_Powell_0002.jpg", seed=3, portrait_fraction=0.03, tilt=0.15,
                             blur=1.0, glare=0.3, jpeg_quality=75, grayscale=True, ghost=True)
    result = facecompare.verify(fixtures / "Colin_Powell_0001.jpg", data, verifier=verifier)
    assert result.decision == "MATCH" and result.reasons == [], (result.similarity, result.reasons)  # a genuine pair
    x, y, w, h = meta["portrait_box"]
    box = result.document_face.bounding_box
    cx, cy = (box.left + box.width / 2) * 4000, (box.top + box.height / 2) * 3000
    assert x <= cx <= x + w and y <= cy <= y + h  # the compared face is the printed portrait, not the ghost
    impostor = facecompare.verify(fixtures / "Serena_Williams_0001.jpg", data, verifier=verifier)
    assert impostor.decision == "NO_MATCH"


def test_guilloche_and_glare_portrait_matches(verifier, fixtures):
    data, _ = _card_photo(fixtures / "Serena_Williams_0002.jpg", seed=5, portrait_fraction=0.08, tilt=0.2,
                          glare=0.6, jpeg_quality=65, frame=(3000, 2250))
    result = facecompare.verify(fixtures / "Serena_Williams_0001.jpg", data, verifier=verifier)
    assert result.decision == "MATCH", (result.similarity, result.reasons)


def test_verifier_is_thread_safe_and_deterministic(fixtures):
    verifier = facecompare.Verifier()  # not warmed: the first calls race to load the models
    results: list[float] = []

    def run():
        r = facecompare.compare_faces(fixtures / "Colin_Powell_0001.jpg", fixtures / "Colin_Powell_0002.jpg",
                                      verifier=verifier)
        results.append(r["FaceMatches"][0]["Similarity"])

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len(set(results)) == 1


def test_image_sources_give_identical_answers(verifier, fixtures):
    path = fixtures / "obama.jpg"
    by_path = facecompare.detect_faces(path, verifier=verifier)
    by_bytes = facecompare.detect_faces(path.read_bytes(), verifier=verifier)
    by_file = facecompare.detect_faces(io.BytesIO(path.read_bytes()), verifier=verifier)
    assert by_path == by_bytes == by_file


def test_each_analysis_is_counted_while_it_runs_for_the_model_threads(fixtures):
    """The models' CPU budget (``models.cpu``) hears of every image analysis: one while a single image is
    analysed, two while a pair's images overlap, none after (also when the analysis fails)."""
    from facecompare.models import cpu
    from facecompare.models.retinaface import RetinaFaceDetector

    class Recording(RetinaFaceDetector):
        seen: list[int] = []

        def detect(self, rgb, **kwargs):
            self.seen.append(cpu.running())
            return super().detect(rgb, **kwargs)

    detector = Recording(threads=0)
    verifier = facecompare.Verifier(detector=detector)
    verifier.analyze(fixtures / "Colin_Powell_0001.jpg")
    assert set(detector.seen) == {1} and cpu.running() == 0
    detector.seen.clear()
    started = threading.Barrier(2)
    original = detector.detect

    def meet_first(rgb, **kwargs):  # each image's first pass waits for the other's: they overlap for sure
        if threading.current_thread().name not in met:
            met.add(threading.current_thread().name)
            started.wait(timeout=30)
        return original(rgb, **kwargs)

    met: set[str] = set()
    detector.detect = meet_first
    verifier.analyze_pair(fixtures / "Colin_Powell_0001.jpg", fixtures / "Colin_Powell_0002.jpg")
    assert 2 in detector.seen and cpu.running() == 0
    with pytest.raises(facecompare.errors.InvalidImageFormatException):
        verifier.analyze(b"not an image")
    assert cpu.running() == 0
