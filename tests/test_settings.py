"""Settings from the environment, and the embedding's test-time augmentation options on a real face."""

from __future__ import annotations

import importlib.util

import pytest

from conftest import skip_or_fail
from facecompare import InvalidParameterException, Settings, Verifier
from facecompare.faces import distance


def test_settings_from_environment_and_overrides():
    s = Settings.from_env({"FACECOMPARE_MAX_IMAGE_BYTES": "1234", "FACECOMPARE_ROTATION_RETRY": "false",
                           "FACECOMPARE_TTA": "none"}, detection_size=800)
    assert s.max_image_bytes == 1234 and s.rotation_retry is False and s.tta == "none" and s.detection_size == 800


@pytest.mark.parametrize("env", [{"FACECOMPARE_MAX_IMAGE_BYTES": "lots"}, {"FACECOMPARE_ROTATION_RETRY": "maybe"},
                                 {"FACECOMPARE_TTA": "rotate"}, {"FACECOMPARE_TTA": "jitter:500"},
                                 {"FACECOMPARE_CHIP_BLUR": "-0.5"}, {"FACECOMPARE_CHIP_BLUR": "soft"},
                                 {"FACECOMPARE_ORIENTATION_CHECK": "perhaps"},
                                 {"FACECOMPARE_DETECTION_THRESHOLD": "1.5"}, {"FACECOMPARE_DETECTION_THRESHOLD": "0"}])
def test_bad_settings_are_invalid_parameter(env):
    with pytest.raises(InvalidParameterException, match="FACECOMPARE_"):
        Settings.from_env(env)


def test_tta_variants_agree_on_a_real_face(fixtures):
    """flip (the mean of the chip and its mirror image) moves the embedding a little and keeps people apart."""
    embeddings, verifiers = {}, {}
    for tta in ("none", "flip"):
        verifiers[tta] = Verifier(Settings(tta=tta))
        embeddings[tta] = verifiers[tta].analyze(fixtures / "Serena_Williams_0001.jpg", embed=1).faces[0].embedding
    other = verifiers["none"].analyze(fixtures / "Colin_Powell_0001.jpg", embed=1).faces[0].embedding
    assert 0.005 < distance(embeddings["none"], embeddings["flip"]) < 0.1  # cosine distance
    assert distance(embeddings["flip"], other) > 0.6 and distance(embeddings["none"], other) > 0.6


def test_jitter_averages_dlib_embeddings(fixtures):
    if importlib.util.find_spec("dlib") is None:  # in CI a failure, not a skip (scripts/setup.sh installs it)
        skip_or_fail("the dlib extra is not installed")
    plain = Verifier(Settings(recognizer="dlib", tta="none")).analyze(fixtures / "Serena_Williams_0001.jpg", embed=1)
    jittered = Verifier(Settings(recognizer="dlib", tta="jitter:3")).analyze(fixtures / "Serena_Williams_0001.jpg",
                                                                             embed=1)
    assert 0 < distance(plain.faces[0].embedding, jittered.faces[0].embedding) < 0.15  # Euclidean, dlib's scale


def test_chip_blur_is_applied_and_keeps_identity(fixtures):
    """The blur changes the embedding a little (it is applied) and not the answer (same person, not a stranger)."""
    faces = {}
    for blur in (0.0, 0.8):
        verifier = Verifier(Settings(chip_blur=blur, tta="none"))
        faces[blur] = [verifier.analyze(fixtures / f"{name}.jpg", embed=1).faces[0].embedding
                       for name in ("Serena_Williams_0001", "Serena_Williams_0002", "Colin_Powell_0001")]
    assert 0.001 < distance(faces[0.0][0], faces[0.8][0]) < 0.1
    for blur in (0.0, 0.8):
        serena, serena_2, colin = faces[blur]
        assert distance(serena, serena_2) < 0.4 and distance(serena, colin) > 0.6


def test_defaults_that_depend_on_the_model(verifier):
    """-1 means the model's own default: the detection threshold (RetinaFace 0.8, YuNet 0.6) and the chip blur
    (SFace 0, dlib 0.8 px), each chosen by measurement (see the README). The default Verifier is the session's."""
    assert verifier.settings == Settings()
    assert verifier._detection_threshold == 0.8
    assert Verifier(Settings(detector="yunet"))._detection_threshold == 0.6
    assert Verifier(Settings(detector="yunet", detection_threshold=0.7))._detection_threshold == 0.7
    assert verifier.recognizer.default_chip_blur == 0.0
    assert Verifier(Settings(recognizer="dlib")).recognizer.default_chip_blur == 0.8


def test_chips_at_full_resolution_cut_from_the_full_decode(fixtures, tmp_path):
    """By default a large face's chip comes from a reduced JPEG decode; with ``chips_at_full_resolution`` from the
    full one. The embedding moves a little and stays the same person (the README's "Choices, measured" row)."""
    import io

    from PIL import Image

    big = Image.open(fixtures / "Serena_Williams_0001.jpg").convert("RGB")
    big = big.resize((big.width * 8, big.height * 8), Image.Resampling.LANCZOS)  # 2000 px: reduced decodes
    buffer = io.BytesIO()
    big.save(buffer, "JPEG", quality=92)
    data = buffer.getvalue()
    scales, embeddings = {}, {}
    for full in (False, True):
        verifier = Verifier(Settings(chips_at_full_resolution=full, tta="none"))
        decoded = verifier.load(data)
        found = verifier.finder.find(decoded)
        largest = max(found.detections, key=lambda d: d.width)
        scales[full] = verifier.describer.chip_region(decoded, found.rotation, largest)[1]
        embeddings[full] = verifier.analyze(data, embed=1).faces[0].embedding
    assert scales[True] == 1.0 and scales[False] >= 2.0
    other = Verifier(Settings(tta="none")).analyze(fixtures / "Serena_Williams_0002.jpg", embed=1).faces[0].embedding
    assert 0.0005 < distance(embeddings[False], embeddings[True]) < 0.1
    assert distance(embeddings[True], other) < 0.4
