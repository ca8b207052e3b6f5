"""Settings from the environment, and the embedding's test-time augmentation options on a real face."""

from __future__ import annotations

import numpy as np
import pytest

from facecompare import InvalidParameterException, Settings, Verifier
from facecompare.embedding import distance


def test_settings_from_environment_and_overrides():
    s = Settings.from_env({"FACECOMPARE_MAX_IMAGE_BYTES": "1234", "FACECOMPARE_ROTATION_RETRY": "false",
                           "FACECOMPARE_TTA": "none"}, detection_size=800)
    assert s.max_image_bytes == 1234 and s.rotation_retry is False and s.tta == "none" and s.detection_size == 800


@pytest.mark.parametrize("env", [{"FACECOMPARE_MAX_IMAGE_BYTES": "lots"}, {"FACECOMPARE_ROTATION_RETRY": "maybe"},
                                 {"FACECOMPARE_TTA": "rotate"}, {"FACECOMPARE_TTA": "jitter:500"},
                                 {"FACECOMPARE_CHIP_BLUR": "-1"}, {"FACECOMPARE_CHIP_BLUR": "soft"},
                                 {"FACECOMPARE_ORIENTATION_CHECK": "perhaps"}])
def test_bad_settings_are_invalid_parameter(env):
    with pytest.raises(InvalidParameterException, match="FACECOMPARE_"):
        Settings.from_env(env)


def test_tta_variants_agree_on_a_real_face(fixtures):
    embeddings = {}
    for tta in ("none", "flip", "jitter:3"):
        verifier = Verifier(Settings(tta=tta))
        embeddings[tta] = verifier.analyze(fixtures / "Serena_Williams_0001.jpg", embed=1).faces[0].embedding
    other = Verifier(Settings(tta="none")).analyze(fixtures / "Colin_Powell_0001.jpg", embed=1).faces[0].embedding
    for tta in ("flip", "jitter:3"):
        assert 0 < distance(embeddings["none"], embeddings[tta]) < 0.15
        assert distance(embeddings[tta], other) > 0.6
    assert not np.array_equal(embeddings["none"], embeddings["flip"])


def test_chip_blur_is_applied_and_keeps_identity(fixtures):
    """The blur changes the embedding a little (it is applied) and not the answer (same person, not a stranger)."""
    faces = {}
    for blur in (0.0, 0.8):
        verifier = Verifier(Settings(chip_blur=blur, tta="none"))
        faces[blur] = [verifier.analyze(fixtures / f"{name}.jpg", embed=1).faces[0].embedding
                       for name in ("Serena_Williams_0001", "Serena_Williams_0002", "Colin_Powell_0001")]
    assert 0 < distance(faces[0.0][0], faces[0.8][0]) < 0.1
    for blur in (0.0, 0.8):
        serena, serena_2, colin = faces[blur]
        assert distance(serena, serena_2) < 0.5 and distance(serena, colin) > 0.6
