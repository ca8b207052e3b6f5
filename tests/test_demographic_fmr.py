"""scripts/demographic_fmr.py: FMR of same-sex against all impostor pairs, counted by hand on a tiny table."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location(
    "demographic_fmr", Path(__file__).resolve().parents[1] / "scripts" / "demographic_fmr.py")
demographic_fmr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demographic_fmr)

# five people, one image each, in both roles: A and B women, C and D men, E unlabelled
SEX = np.array(["F", "F", "M", "M", ""])
CODE = np.arange(5)


def _table():
    impostor = ~np.eye(5, dtype=bool)
    match = np.zeros((5, 5), dtype=bool)
    for i, j in [(0, 1),  # A-B: female-female
                 (2, 3), (3, 2),  # C-D, D-C: male-male, twice
                 (0, 2),  # A-C: cross-sex
                 (4, 0),  # E-A: E has no label, left out
                 (1, 1)]:  # B-B: a genuine pair, not an impostor
        match[i, j] = True
    return match, impostor


def test_split_rates_counts_by_hand():
    match, impostor = _table()
    r = demographic_fmr.split_rates(match, impostor, SEX, SEX, CODE, CODE)
    # labelled impostor cells: the 4 x 4 of A-D without the diagonal = 12; same sex: A-B, B-A, C-D, D-C = 4
    # (2 female-female, 2 male-male); cross sex: 12 - 4 = 8
    assert [(r[g]["false_matches"], r[g]["impostor_pairs"]) for g in demographic_fmr.GROUPS] == [
        (4, 12), (3, 4), (1, 8), (1, 2), (2, 2)]
    assert r["all labelled"]["fmr"] == pytest.approx(1 / 3)
    assert r["same sex"]["fmr"] == pytest.approx(3 / 4)
    assert r["cross sex"]["fmr"] == pytest.approx(1 / 8)
    assert r["ratio same / all"] == pytest.approx(2.25)
    assert r["ratio same / cross"] == pytest.approx(6.0)
    # C-D and D-C are one pair of people
    assert [r[g]["people_pairs"] for g in demographic_fmr.GROUPS] == [3, 2, 1, 1, 1]
    assert r["male-male"]["fmr_ci95_clopper_pearson"] == [pytest.approx(0.025 ** 0.5), 1.0]


def test_no_false_match_is_bounded_by_the_rule_of_three():
    _, impostor = _table()
    r = demographic_fmr.split_rates(np.zeros((5, 5), dtype=bool), impostor, SEX, SEX)
    assert r["cross sex"]["fmr"] == 0.0
    assert r["cross sex"]["fmr_rule_of_three_upper"] == pytest.approx(3 / 8)
    assert r["cross sex"]["fmr_ci95_clopper_pearson"] == [0.0, pytest.approx(1 - 0.025 ** (1 / 8))]
    assert r["ratio same / all"] is None  # 0 / 0


def test_clopper_pearson_matches_the_published_values():
    lo, hi = demographic_fmr.clopper_pearson(1, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.0025, 0.4450)
    lo, hi = demographic_fmr.clopper_pearson(5, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.1871, 0.8129)
    assert demographic_fmr.clopper_pearson(10, 10) == (pytest.approx(0.025 ** 0.1), 1.0)


def test_bootstrap_gives_intervals_around_the_ratio():
    match, impostor = _table()
    b = demographic_fmr.bootstrap_ratio(match, impostor, SEX, SEX, CODE, CODE, 5, replicates=50)
    lo, hi = b["ratio same / all"]
    assert 0 < lo <= hi and math.isfinite(hi)
    assert set(b["fmr_ci95"]) == set(demographic_fmr.GROUPS)


def test_labels_skip_comments_and_unknown(tmp_path):
    path = tmp_path / "sex.csv"
    path.write_text("# how it was made\nname,sex,basis\nAnn_A,F,identity\nBob_B,m,name\nSam_C,unknown,\n")
    assert demographic_fmr.read_labels(path) == {"Ann_A": "F", "Bob_B": "M"}
