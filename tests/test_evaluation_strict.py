"""`evaluate --all-impostors`: every genuine and cross-identity pair, rates at the strict end with intervals."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from facecompare.cli import main
from facecompare.evaluation import Pair
from facecompare.evaluation_strict import (
    FEATURES,
    FaceTable,
    IdentityBootstrap,
    image_set_from_pairs,
    rule_of_three,
    score_matrix,
    score_set,
    strict_summary,
    supported,
    tar_at_fmr,
)
from facecompare.scoring import load_calibration

SFACE = "sface-2021dec-int8bq"


def test_tar_at_fmr_counts_the_false_matches_allowed_by_hand():
    genuine = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    impostor = np.sort(np.array([0.25, 0.4, 0.6, 0.7, 0.8, 0.85, 0.9, 0.92, 0.95, 0.99]))
    # FMR 0.1 of 10 impostors: one false match allowed, so a pair matches below the second impostor (0.4);
    # the genuine pair at exactly 0.4 does not (it would make the second false match's distance a match too)
    assert tar_at_fmr(genuine, impostor, 0.1) == (0.6, 0.4, 1)
    # FMR 0.05: none allowed, below the closest impostor
    assert tar_at_fmr(genuine, impostor, 0.05) == (0.4, 0.25, 0)
    assert tar_at_fmr(genuine, impostor, 0.3) == (1.0, 0.7, 3)
    # every impostor may match: no limit at all
    assert tar_at_fmr(genuine, impostor, 1.0)[1] == math.inf


def test_rule_of_three_and_which_rates_a_count_supports():
    assert rule_of_three(300) == pytest.approx(0.01)
    assert supported(30_000, 1e-4) and not supported(29_999, 1e-4)
    assert supported(300_000, 1e-5) and not supported(20_981, 1e-4)


def test_score_matrix_takes_the_best_document_face_and_marks_failures():
    selfies = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    ok = np.array([True, True, False])  # the third selfie has no face
    # document 0 has two faces, document 1 one, document 2 none
    faces = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    owner = np.array([0, 0, 1])
    d = score_matrix(selfies, ok, faces, owner, 3)
    diag = 1 - 1 / math.sqrt(2)
    expected = np.array([[0.0, diag, np.inf], [0.0, diag, np.inf], [np.inf, np.inf, np.inf]])
    np.testing.assert_allclose(d, expected, atol=1e-6)
    e = score_matrix(selfies, ok, faces * 2, owner, 3, metric="euclidean")
    np.testing.assert_allclose(e[0, :2], [1.0, math.sqrt(1 + 4)], atol=1e-6)


def _table(paths, vectors_per_image):
    owner, vectors = [], []
    for i, vs in enumerate(vectors_per_image):
        for v in vs:
            owner.append(i)
            vectors.append(v)
    features = np.zeros((len(vectors), len(FEATURES)), dtype=np.float32)
    features[:, 2:6] = [0.3, 0.3, 0.4, 0.4]
    return FaceTable(list(paths), np.array(owner), np.array(vectors, dtype=np.float32), features,
                     ["" if vs else "NO_FACE" for vs in vectors_per_image], SFACE, "cosine")


def test_single_role_list_scores_each_unordered_pair_once():
    names = ["a/a_1.jpg", "a/a_2.jpg", "b/b_1.jpg", "b/b_2.jpg", "c/c_1.jpg"]
    pairs = [Pair(names[0], names[1], True), Pair(names[2], names[3], True), Pair(names[0], names[4], False)]
    images = image_set_from_pairs(pairs, fmt="lfw")
    assert images.single_role and images.selfies == names and images.selfie_ids == ["a", "a", "b", "b", "c"]
    rng = np.random.default_rng(0)
    table = _table(names, [[v] for v in rng.normal(size=(5, 8))])
    scores = score_set(images, table)
    # 5 images: 10 unordered pairs, 2 of them genuine (a1-a2, b1-b2), none scored twice nor against itself
    assert scores.genuine.sum() == 2 and scores.impostor.sum() == 8
    assert not np.any(np.diag(scores.genuine | scores.impostor))
    assert not np.any(np.tril(scores.genuine | scores.impostor))


def test_two_role_csv_takes_identities_from_sources_and_leaves_out_the_same_photo():
    # the layout synth-kyc writes: the person is the first folder of each *_source column
    pairs = [
        Pair("s0.jpg", "d0.jpg", True, conditions=(("selfie_source", "p/p_1.jpg"), ("document_source", "p/p_2.jpg"))),
        Pair("s1.jpg", "d1.jpg", False, conditions=(("selfie_source", "q/q_1.jpg"), ("document_source", "p/p_1.jpg"))),
        Pair("s2.jpg", "d2.jpg", True, conditions=(("selfie_source", "r/r_3.jpg"), ("document_source", "r/r_1.jpg"))),
    ]
    images = image_set_from_pairs(pairs, fmt="csv")
    assert not images.single_role
    assert images.selfie_ids == ["p", "q", "r"] and images.document_ids == ["p", "p", "r"]
    # s0's photo p_1 is the photo printed on d1: a genuine pair of one photo, left out
    assert images.excluded == {("s0.jpg", "d1.jpg")}
    table = _table(images.images, [[v] for v in np.eye(8)[:6]])
    scores = score_set(images, table)
    # 3 x 3 = 9 pairs; genuine: s0-d0, s2-d2 (s0-d1 left out); impostor: the 6 cross-identity ones
    assert scores.genuine.sum() == 2 and scores.impostor.sum() == 6
    assert not scores.genuine[0, 1] and not scores.impostor[0, 1]


def test_strict_summary_rates_by_hand():
    cal = load_calibration(model=SFACE)
    # 4 identities, one selfie and one document each; distances set directly
    d80 = cal.distance_at(80)
    dist = np.array([[0.30, d80 - 0.01, 0.9, 0.9],
                     [0.9, 0.35, 0.9, 0.9],
                     [0.9, 0.9, d80 + 0.05, 0.9],
                     [0.9, 0.9, 0.2, 0.40]], dtype=np.float32)
    from facecompare.evaluation_strict import Scores

    code = np.arange(4)
    same = code[:, None] == code[None, :]
    scores = Scores(dist, same, ~same, code, code, ["a", "b", "c", "d"])
    s = strict_summary(scores, cal, targets=(0.1, 1e-2), bootstrap=0)
    assert (s["genuine_pairs"], s["impostor_pairs"]) == (4, 12)
    at80 = s["operating_points"][0]
    # impostors at or below the Similarity-80 distance: (0,1) and (3,2) -> 2 of 12; genuine above it: (2,2)
    assert at80["false_matches"] == 2 and at80["fmr"] == pytest.approx(2 / 12)
    assert at80["fnmr"] == pytest.approx(1 / 4)
    # FMR 0.1 of 12: one false match allowed: below the second-closest impostor (d80 - 0.01)
    row = s["tar_at_fmr"][0]
    assert row["false_matches_allowed"] == 1 and row["distance_below"] == pytest.approx(d80 - 0.01)
    assert row["tar"] == pytest.approx(3 / 4)
    assert not row["supported"] and not s["tar_at_fmr"][1]["supported"]
    assert s["highest_impostor_similarity"] == pytest.approx(cal.similarity(0.2), rel=1e-4)
    at99 = s["operating_points"][-1]
    assert at99["false_matches"] == 1 and at99["fmr_rule_of_three_upper"] is None


def test_bootstrap_resamples_people_not_pairs():
    # two identities with 50 genuine pairs each: every pair of one of them matches, none of the other
    dist = np.full((100, 100), 0.9, dtype=np.float32)
    code = np.repeat([0, 1], 50)
    same = code[:, None] == code[None, :]
    np.fill_diagonal(dist, np.where(code == 0, 0.1, 0.8))
    genuine = np.eye(100, dtype=bool)
    from facecompare.evaluation_strict import Scores

    scores = Scores(dist, genuine, ~same, code, code, ["a", "b"])
    boot = IdentityBootstrap(scores, cutoff=1.0, replicates=400, seed=1).intervals((0.5,), (0.5,))
    # drawing {a, a} or {b, b} happens a quarter of the time each: FNMR at 0.5 spans 0 to 1; resampling the
    # 100 pairs instead would give about 0.4 to 0.6
    assert boot["at_threshold"][0.5][1] == [0.0, 1.0]
    again = IdentityBootstrap(scores, cutoff=1.0, replicates=400, seed=1).intervals((0.5,), (0.5,))
    assert again == boot


def _lfw_layout(tmp_path, fixtures):
    root = tmp_path / "lfw"
    for name in ("Colin_Powell_0001", "Colin_Powell_0002", "Serena_Williams_0001", "Serena_Williams_0002",
                 "Tony_Blair_0001"):
        person = root / name.rsplit("_", 1)[0]
        person.mkdir(parents=True, exist_ok=True)
        shutil.copy(fixtures / f"{name}.jpg", person / f"{name}.jpg")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1\t2\nColin_Powell\t1\t2\nSerena_Williams\t1\t2\n"
                     "Colin_Powell\t1\tTony_Blair\t1\nSerena_Williams\t2\tTony_Blair\t1\n")
    return pairs, root


@pytest.mark.slow
def test_all_impostors_on_real_faces_lfw_layout(tmp_path, fixtures, capsys):
    pairs, root = _lfw_layout(tmp_path, fixtures)
    out = tmp_path / "out"
    cache = tmp_path / "faces.npz"
    assert main(["evaluate", str(pairs), "--root", str(root), "--all-impostors", "--out", str(out), "--workers", "1",
                 "--no-progress", "--bootstrap", "20", "--embeddings", str(cache)]) == 0
    s = json.loads((out / "strict.json").read_text())
    # 5 images of 3 people: 10 unordered pairs, 2 genuine, 8 impostor; every face found
    assert (s["images"], s["identities"], s["genuine_pairs"], s["impostor_pairs"]) == (5, 3, 2, 8)
    assert s["images_without_face"] == 0 and s["single_role"]
    at80 = s["operating_points"][0]
    # different people in LFW are far apart and these two genuine pairs are easy: FMR 0 of 8, whose rule-of-three
    # bound is 3/8; FNMR 0 of 2
    assert at80["false_matches"] == 0 and at80["fmr_rule_of_three_upper"] == pytest.approx(3 / 8)
    assert at80["fnmr"] == 0
    assert [r["supported"] for r in s["tar_at_fmr"]] == [False] * 4
    assert len(s["highest_impostors"]) == 8
    sims = [w["similarity"] for w in s["highest_impostors"]]
    assert sims == sorted(sims, reverse=True) and sims[0] == pytest.approx(s["highest_impostor_similarity"])
    assert (out / "det-strict.png").stat().st_size > 1000
    table = FaceTable.load(cache)
    assert table.model == SFACE and len(table.paths) == 5 and table.vectors.shape[1] == 128
    assert "not supported: 8 impostor pairs" in capsys.readouterr().out


@pytest.mark.slow
def test_all_impostors_csv_scores_every_document_face(tmp_path, fixtures):
    rows = [("Colin_Powell_0001", "Colin_Powell_0002", "powell", "powell"),
            ("Serena_Williams_0001", "Serena_Williams_0002", "serena", "serena"),
            ("obama", "two_people", "obama", "obama"),  # two_people.jpg: Obama and Biden
            ("Tony_Blair_0001", "id_back_mrz_only_che", "blair", "che")]  # an MRZ-only back: no face
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text("selfie,document,same,selfie_identity,document_identity\n" + "".join(
        f"{fixtures / (a + '.jpg')},{fixtures / (b + '.jpg')},{int(x == y)},{x},{y}\n" for a, b, x, y in rows))
    cache = tmp_path / "faces.npz"
    base = ["evaluate", str(csv_path), "--all-impostors", "--workers", "1", "--no-progress", "--bootstrap", "0",
            "--embeddings", str(cache)]
    assert main([*base, "--out", str(tmp_path / "all")]) == 0
    s = json.loads((tmp_path / "all" / "strict.json").read_text())
    # 4 selfies x 4 documents: 3 genuine, 13 impostor; the 4 impostors against the faceless back never match
    assert (s["selfies"], s["documents"], s["genuine_pairs"], s["impostor_pairs"]) == (4, 4, 3, 13)
    assert s["images_without_face"] == 1 and s["impostor_failures"] == 4
    assert len(s["highest_impostors"]) == 9
    assert s["operating_points"][0]["fnmr"] == 0  # Obama is found among two_people's faces
    # the cache is reused: the same figures without embedding again
    images = image_set_from_pairs([Pair(str(fixtures / (a + ".jpg")), str(fixtures / (b + ".jpg")), x == y,
                                        conditions=(("selfie_identity", x), ("document_identity", y)))
                                   for a, b, x, y in rows], fmt="csv")
    table = FaceTable.load(cache)
    every = score_set(images, table).distance
    largest = score_set(images, table, document_faces="largest").distance
    assert np.all(every <= largest)
    two = table.owner == table.paths.index(str(fixtures / "two_people.jpg"))
    assert two.sum() >= 2
    assert main([*base, "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "strict.json").read_text())
    assert again["tar_at_fmr"] == s["tar_at_fmr"] and again["operating_points"] == s["operating_points"]


def test_an_image_labelled_as_two_people_is_refused():
    pairs = [Pair("s.jpg", "d0.jpg", True, conditions=(("selfie_identity", "p"), ("document_identity", "p"))),
             Pair("s.jpg", "d1.jpg", False, conditions=(("selfie_identity", "q"), ("document_identity", "r")))]
    from facecompare.errors import InvalidParameterException

    with pytest.raises(InvalidParameterException, match="two identities"):
        image_set_from_pairs(pairs, fmt="csv")


@pytest.mark.parametrize("extra, message", [(["--from-results", "x.csv"], "cannot reuse a pairs.csv"),
                                            (["--bootstrap", "-1"], "--bootstrap must be 0 or more")])
def test_all_impostors_refuses_bad_flags_before_any_work(tmp_path, fixtures, capsys, extra, message):
    pairs, root = _lfw_layout(tmp_path, fixtures)
    code = main(["evaluate", str(pairs), "--root", str(root), "--all-impostors", "--out", str(tmp_path / "o"), *extra])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_face_tables_merge_and_score_as_one():
    rng = np.random.default_rng(3)
    names = ["a/a_1.jpg", "a/a_2.jpg", "b/b_1.jpg", "c/c_1.jpg"]
    vectors = [[v] for v in rng.normal(size=(2, 8))] + [list(rng.normal(size=(2, 8))), []]
    whole = _table(names, vectors)
    merged = _table(names[:2], vectors[:2]).merged(_table(names[2:], vectors[2:]))
    images = image_set_from_pairs([Pair(n, n, True) for n in names], fmt="lfw")
    np.testing.assert_array_equal(score_set(images, merged).distance, score_set(images, whole).distance)
    assert merged.reasons == ["", "", "", "NO_FACE"] and merged.first_face().tolist() == [0, 1, 2, -1]
    from facecompare.errors import InvalidParameterException

    with pytest.raises(InvalidParameterException, match="share images"):
        merged.merged(_table(names[:1], vectors[:1]))
