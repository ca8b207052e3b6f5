"""Similarity mapping, calibration files and the metrics, on small cases computed by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facecompare import InvalidParameterException
from facecompare.evaluation import auc, eer, kfold_accuracy, roc, tar_at_fmr
from facecompare.scoring import Calibration, error_rates, fit_logistic, load_calibration


def test_similarity_is_monotone_and_inverts():
    cal = Calibration(slope=20.0, midpoint=0.55)
    d = np.linspace(0, 1.5, 301)
    s = [cal.similarity(x) for x in d]
    assert all(a > b for a, b in zip(s, s[1:]))
    assert cal.similarity(0.55) == pytest.approx(50.0)
    for t in (1, 50, 80, 90, 95, 99):
        assert cal.similarity(cal.distance_at(t)) == pytest.approx(t, abs=1e-6)


def test_fit_logistic_recovers_known_parameters():
    rng = np.random.default_rng(0)
    d = rng.uniform(0.2, 1.0, 20000)
    p = 1 / (1 + np.exp(18.0 * (d - 0.6)))
    y = rng.random(d.size) < p
    slope, midpoint = fit_logistic(d, y)
    # classes are re-weighted to count equally, so the midpoint moves by log(n_neg/n_pos)/slope
    shift = np.log((~y).sum() / y.sum()) / 18.0
    assert slope == pytest.approx(18.0, rel=0.08)
    assert midpoint == pytest.approx(0.6 + shift, abs=0.01)


def test_fit_logistic_needs_both_classes():
    with pytest.raises(InvalidParameterException):
        fit_logistic(np.array([0.1, 0.2]), np.array([1, 1]))


def test_error_rates_by_hand():
    d = np.array([0.1, 0.2, 0.5, 0.7, 0.3, 0.9])
    same = np.array([1, 1, 1, 0, 0, 0])
    fmr, fnmr = error_rates(d, same, 0.4)
    assert fmr == pytest.approx(1 / 3) and fnmr == pytest.approx(1 / 3)


def test_roc_points_auc_and_eer_by_hand():
    # genuine 0.1, 0.2, 0.5; impostor 0.3, 0.7, 0.9
    d = np.array([0.1, 0.2, 0.5, 0.3, 0.7, 0.9])
    same = np.array([1, 1, 1, 0, 0, 0])
    thresholds, fmr, tmr = roc(d, same)
    points = dict(zip(thresholds.tolist(), zip(fmr.tolist(), tmr.tolist())))
    assert points[0.2] == (0.0, pytest.approx(2 / 3))
    assert points[0.3] == (pytest.approx(1 / 3), pytest.approx(2 / 3))
    assert points[0.5] == (pytest.approx(1 / 3), 1.0)
    # AUC = P(genuine closer than impostor) = 8/9
    assert auc(fmr, tmr) == pytest.approx(8 / 9)
    # FMR - FNMR changes sign between t=0.2 (0 vs 1/3) and t=0.3 (1/3 vs 1/3): EER = 1/3 at t=0.3
    assert eer(fmr, tmr) == pytest.approx(1 / 3)


def test_tar_at_fmr_and_support():
    d = np.array([0.1, 0.2, 0.5, 0.3, 0.7, 0.9])
    same = np.array([1, 1, 1, 0, 0, 0])
    row = tar_at_fmr(d, same, 0.0)
    assert row["tar"] == pytest.approx(2 / 3) and row["fmr_measured"] == 0.0
    assert tar_at_fmr(d, same, 1e-3)["supported"] is False  # 3 impostors cannot measure 1e-3


def test_kfold_accuracy_picks_threshold_on_other_folds():
    """By hand. Fold 0 trains on 0.2g 0.8i 0.45g 0.5i: candidates 0.2-1e-6, 0.325, 0.475, 0.65, 0.8+1e-6, the
    best is 0.475 (all four right); its test pairs 0.1g, 0.9i are both right. Fold 1 trains on 0.1g 0.9i 0.45g
    0.5i: again 0.475, and 0.2g, 0.8i are right. Fold 2 trains on 0.1g 0.9i 0.2g 0.8i: the first best is 0.5
    (midway between 0.2 and 0.8); its test impostor at 0.5 is <= 0.5, so called a match: accuracy 1/2.
    A threshold fitted on all six pairs (test folds included) would be 0.475 everywhere with 100 % accuracy."""
    d = np.array([0.1, 0.9, 0.2, 0.8, 0.45, 0.5])
    same = np.array([1, 0, 1, 0, 1, 0])
    folds = np.array([0, 0, 1, 1, 2, 2])
    result = kfold_accuracy(d, same, folds)
    assert result["folds"] == [1.0, 1.0, 0.5]
    assert result["thresholds"] == [pytest.approx(0.475), pytest.approx(0.475), pytest.approx(0.5)]
    assert result["mean"] == pytest.approx(2.5 / 3)
    assert result["std"] == pytest.approx(np.sqrt(2) / 6)  # deviations 1/6, 1/6, -1/3: variance 1/18


def test_calibration_round_trip_and_bad_files(tmp_path):
    cal = Calibration(slope=12.5, midpoint=0.61, model="sface-2021dec-int8bq", source="unit")
    path = tmp_path / "cal.json"
    cal.save(path)
    loaded = load_calibration(path, model="sface-2021dec-int8bq")
    assert (loaded.slope, loaded.midpoint, loaded.model) == (12.5, 0.61, "sface-2021dec-int8bq")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": "sface-2021dec-int8bq", "mapping": {"type": "logistic", "slope": -1,
                                                                             "midpoint": 0.5}}))
    with pytest.raises(InvalidParameterException, match="slope"):
        load_calibration(bad, model="sface-2021dec-int8bq")
    with pytest.raises(InvalidParameterException, match="not found"):
        load_calibration(tmp_path / "missing.json", model="sface-2021dec-int8bq")
    unnamed = tmp_path / "unnamed.json"
    unnamed.write_text(json.dumps({"mapping": {"type": "logistic", "slope": 10, "midpoint": 0.5}}))
    with pytest.raises(InvalidParameterException, match="fitted for the recognizer"):
        load_calibration(unnamed, model="sface-2021dec-int8bq")


@pytest.mark.parametrize("model", ["sface-2021dec-int8bq", "dlib-resnet-v1"])
def test_shipped_calibrations_reproduce_their_own_operating_points(model):
    """Each shipped file's threshold table was measured at the distances its curve gives: the curve must map
    each listed Similarity threshold to the listed distance, and FMR must fall as the threshold rises."""
    cal = load_calibration(model=model)
    assert cal.model == model and cal.operating_points
    for row in cal.operating_points:
        assert cal.distance_at(row["similarity_threshold"]) == pytest.approx(row["distance"], abs=1e-4)
    fmrs = [row["fmr"] for row in sorted(cal.operating_points, key=lambda r: r["similarity_threshold"])]
    assert fmrs == sorted(fmrs, reverse=True) and fmrs[-1] < fmrs[0]
