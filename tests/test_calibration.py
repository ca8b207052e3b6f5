"""The calibration (distance -> Similarity): saturation at both ends, refusing data it cannot fit, malformed files,
and the shipped files against their own operating-point tables."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from facecompare import InvalidParameterException
from facecompare.scoring import Calibration, fit_logistic, load_calibration

MODEL = "sface-2021dec-int8bq"
SHIPPED = ["sface-2021dec-int8bq", "dlib-resnet-v1"]


# -- saturation ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("slope", [10.0, 36.3])
def test_similarity_saturates_at_both_ends_without_overflow(slope):
    cal = Calibration(slope=slope, midpoint=0.6)
    # far beyond the midpoint exp() would overflow (z > 709): exactly 0, not an OverflowError
    assert cal.similarity(0.6 + 700 / slope) == pytest.approx(100 / (1 + math.exp(700)), abs=1e-300)
    assert cal.similarity(0.6 + 701 / slope) == 0.0
    assert cal.similarity(1e6) == 0.0 and cal.similarity(math.inf) == 0.0
    # far below it: exactly 100 (a euclidean distance is never negative, but the mapping must not break)
    assert cal.similarity(0.6 - 800 / slope) == 100.0
    assert cal.similarity(-1e6) == 100.0
    assert cal.similarity(0.0) <= 100.0


def test_distance_at_the_ends_of_the_scale_is_finite_and_ordered():
    cal = Calibration(slope=10.0, midpoint=0.5)
    # 0 and 100 are clamped to 1e-9 away: ln(1e11 - 1) / 10 = 2.533 either side of the midpoint
    assert cal.distance_at(0) == pytest.approx(0.5 + math.log(1e11 - 1) / 10)
    assert cal.distance_at(100) == pytest.approx(0.5 - math.log(1e11 - 1) / 10, abs=1e-6)
    assert cal.distance_at(-5) == cal.distance_at(0) and cal.distance_at(120) == cal.distance_at(100)
    points = [cal.distance_at(t) for t in (0, 1e-6, 1, 50, 99, 100 - 1e-6, 100)]
    assert all(a > b for a, b in zip(points, points[1:]))


# -- fitting ------------------------------------------------------------------------------------------------------


def test_inverted_data_is_refused():
    """Genuine pairs farther apart than impostors (labels swapped): no decreasing curve fits, so no calibration."""
    rng = np.random.default_rng(3)
    genuine = rng.normal(0.8, 0.1, 500)
    impostor = rng.normal(0.4, 0.1, 500)
    d = np.concatenate([genuine, impostor])
    same = np.concatenate([np.ones(500), np.zeros(500)])
    with pytest.raises(InvalidParameterException, match="genuine pairs are not closer than impostor pairs"):
        fit_logistic(d, same)
    slope, midpoint = fit_logistic(d, 1 - same)  # the same data correctly labelled fits
    assert slope > 0 and 0.55 < midpoint < 0.65


@pytest.mark.parametrize("same", [[], [0, 0, 0], [1, 1]])
def test_one_class_or_no_data_is_refused(same):
    with pytest.raises(InvalidParameterException, match="both genuine and impostor"):
        fit_logistic(np.linspace(0.1, 0.9, len(same)), np.array(same))


# -- malformed files ----------------------------------------------------------------------------------------------


def _mapping(**changes) -> dict:
    return {"model": MODEL, "mapping": {"type": "logistic", "slope": 20.0, "midpoint": 0.6, **changes}}


MALFORMED = {
    "empty": "",
    "not json": "slope = 20",
    "a list": "[1, 2]",
    "no mapping": json.dumps({"model": MODEL}),
    "mapping a list": json.dumps({"model": MODEL, "mapping": [20, 0.6]}),
    "unknown type": json.dumps(_mapping(type="isotonic")),
    "no slope": json.dumps({"model": MODEL, "mapping": {"type": "logistic", "midpoint": 0.6}}),
    "no midpoint": json.dumps({"model": MODEL, "mapping": {"type": "logistic", "slope": 20}}),
    "slope text": json.dumps(_mapping(slope="steep")),
    "slope null": json.dumps(_mapping(slope=None)),
    "slope zero": json.dumps(_mapping(slope=0)),
    "slope negative": json.dumps(_mapping(slope=-20)),
    "slope NaN": json.dumps(_mapping(slope=math.nan)),
    "slope infinite": json.dumps(_mapping(slope=math.inf)),
    "midpoint infinite": json.dumps(_mapping(midpoint=math.inf)),
    "midpoint NaN": json.dumps(_mapping(midpoint=math.nan)),
    "midpoint -infinite": json.dumps(_mapping(midpoint=-math.inf)),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_file_is_invalid_parameter(tmp_path, name):
    """Every malformed file is refused with a message naming the file; none loads as a calibration (a midpoint
    of Infinity would make every pair Similarity 100, a MATCH)."""
    path = tmp_path / "calibration.json"
    path.write_text(MALFORMED[name])
    with pytest.raises(InvalidParameterException, match="is not valid") as error:
        load_calibration(path, model=MODEL)
    assert str(path) in error.value.message and "facecompare calibrate" in error.value.message


def test_a_folder_or_binary_file_is_invalid_parameter(tmp_path):
    with pytest.raises(InvalidParameterException):
        load_calibration(tmp_path, model=MODEL)
    binary = tmp_path / "c.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InvalidParameterException, match="is not valid"):
        load_calibration(binary, model=MODEL)


def test_calibration_of_another_model_is_refused(tmp_path):
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({**_mapping(), "model": "dlib-resnet-v1"}))
    with pytest.raises(InvalidParameterException, match="fitted for the recognizer dlib-resnet-v1, not " + MODEL):
        load_calibration(path, model=MODEL)


def test_no_calibration_ships_for_an_unknown_model():
    with pytest.raises(InvalidParameterException, match="No calibration ships for the recognizer onnx-custom"):
        load_calibration(model="onnx-custom")


# -- the shipped files --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", SHIPPED)
def test_shipped_calibration_is_monotone_and_its_table_consistent(model):
    """The shipped curves fall with distance, and each table was measured on LFW's 6,000 pairs (3,000 genuine,
    3,000 impostor) at the distance its curve gives: the distances fall as the threshold rises, FMR never rises
    and FNMR never falls, and every rate is a count of those pairs."""
    cal = load_calibration(model=model)
    assert cal.slope > 0 and math.isfinite(cal.midpoint)
    d = np.linspace(0, 2, 2001)
    s = [cal.similarity(x) for x in d]
    assert all(a >= b for a, b in zip(s, s[1:])) and s[0] > 99 and s[-1] < 1
    assert cal.similarity(cal.midpoint) == pytest.approx(50.0)
    rows = sorted(cal.operating_points, key=lambda r: r["similarity_threshold"])
    assert [r["similarity_threshold"] for r in rows] == [50, 70, 80, 90, 95, 99]
    assert rows[0]["distance"] == pytest.approx(cal.midpoint, abs=5e-5)  # Similarity 50 is the midpoint
    distances = [r["distance"] for r in rows]
    assert all(a > b for a, b in zip(distances, distances[1:]))
    fmr, fnmr = [r["fmr"] for r in rows], [r["fnmr"] for r in rows]
    assert all(a >= b for a, b in zip(fmr, fmr[1:])) and all(a <= b for a, b in zip(fnmr, fnmr[1:]))
    for row in rows:
        assert (row["impostor_pairs"], row["genuine_pairs"]) == (3000, 3000)
        for rate in (row["fmr"], row["fnmr"]):
            assert 0 <= rate <= 1 and rate * 3000 == pytest.approx(round(rate * 3000), abs=1e-6)
