"""The library's Users (collections/users.py, part of ``Collections``) on real faces over a SQLite store: how a user
scores (the distance the README's measurement chose), the QualityFilter of SearchUsersByImage, AssociateFaces'
threshold, and the CLI's ``collection user`` actions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facecompare.cli import main
from facecompare.collections import open_store
from facecompare.collections.service import Collections
from facecompare.collections.users import USER_SCORING, user_distance
from facecompare.errors import InvalidParameterException


def test_user_distance_of_each_scoring():
    rng = np.random.default_rng(3)
    faces = rng.standard_normal((4, 16))
    probe = faces[0] + 0.3 * rng.standard_normal(16)
    unit = faces / np.linalg.norm(faces, axis=1, keepdims=True)
    q = probe / np.linalg.norm(probe)
    best = 1 - (unit @ q).max()
    centroid = unit.mean(axis=0)
    mean = 1 - centroid @ q / np.linalg.norm(centroid)
    assert user_distance("cosine", probe, faces, "best") == pytest.approx(best)
    assert user_distance("cosine", probe, faces, "mean") == pytest.approx(mean)
    assert user_distance("cosine", probe, faces, "both") == pytest.approx((best + mean) / 2)
    assert user_distance("euclidean", probe, faces, "best") == pytest.approx(np.linalg.norm(faces - probe, axis=1).min())
    assert user_distance("euclidean", probe, faces, "mean") == pytest.approx(np.linalg.norm(faces.mean(0) - probe))
    one = faces[:1]  # a user of one face: every scoring is that face's distance
    assert {round(user_distance("cosine", probe, one, s), 6) for s in ("best", "mean", "both")} == {
        round(1 - unit[0] @ q, 6)}
    assert USER_SCORING in ("best", "mean", "both")


@pytest.fixture
def collections(verifier, tmp_path):
    service = Collections(verifier, open_store(f"sqlite:///{tmp_path}/users.db"))
    yield service
    service.store.close()


def _index(collections, fixtures, name: str) -> str:
    return collections.index_faces("c", (fixtures / f"{name}.jpg").read_bytes(), max_faces=1).records[0].stored.face_id


def test_search_users_by_image_and_its_quality_filter(collections, fixtures):
    collections.create_collection("c")
    colin = _index(collections, fixtures, "Colin_Powell_0001")
    collections.create_user("c", "colin")
    assert collections.associate_faces("c", "colin", [colin]).associated == [colin]
    blurred = collections.verifier.load((fixtures / "Serena_Williams_0002.jpg").read_bytes())
    refused = collections.search_users_by_image("c", blurred, quality_filter="HIGH", user_match_threshold=0)
    assert refused.searched_face is None and refused.matches == []
    assert [reasons for _, reasons in refused.unsearched] == [["LOW_SHARPNESS"]]
    searched = collections.search_users_by_image("c", blurred, user_match_threshold=0)  # NONE: searched
    assert searched.searched_face is not None and [m.user.user_id for m in searched.matches] == ["colin"]
    assert searched.matches[0].similarity < 80 and searched.unsearched == []
    two = collections.verifier.load((fixtures / "Tony_Blair_0001.jpg").read_bytes())
    other = collections.search_users_by_image("c", two, quality_filter="AUTO")
    assert other.searched_face is not None and [r for _, r in other.unsearched] == [["FACE_NOT_LARGEST",
                                                                                     "EXTREME_POSE"]]
    selfie = collections.verifier.load((fixtures / "Colin_Powell_0002.jpg").read_bytes())
    assert [m.user.user_id for m in collections.search_users_by_image("c", selfie).matches] == ["colin"]
    with pytest.raises(InvalidParameterException):
        collections.search_users("c", user_id="colin", face_id=colin)
    with pytest.raises(InvalidParameterException):
        collections.associate_faces("c", "colin", [colin] * 101)


def test_associate_threshold_decides_what_joins_a_user(collections, fixtures):
    collections.create_collection("c")
    colin1, colin2, serena = (_index(collections, fixtures, n) for n in
                              ("Colin_Powell_0001", "Colin_Powell_0002", "Serena_Williams_0001"))
    collections.create_user("c", "colin")
    collections.associate_faces("c", "colin", [colin1])
    strict = collections.associate_faces("c", "colin", [colin2, serena], user_match_threshold=100)
    assert strict.associated == [] and {f for f, _ in strict.low_confidence} == {colin2, serena}
    normal = collections.associate_faces("c", "colin", [colin2, serena])
    assert normal.associated == [colin2] and [f for f, _ in normal.low_confidence] == [serena]
    anything = collections.associate_faces("c", "colin", [serena], user_match_threshold=0)
    assert anything.associated == [serena] and anything.user.face_count == 3


def test_collection_user_commands(capsys, tmp_path, fixtures):
    store = ["--store", f"sqlite:///{tmp_path}/cli.db"]

    def run(*argv: str):
        code = main(["collection", *argv, *store])
        captured = capsys.readouterr()
        return code, (json.loads(captured.out) if code == 0 else captured.err)

    assert run("create", "kyc")[0] == 0
    face = run("index", "kyc", str(fixtures / "Colin_Powell_0001.jpg"))[1]["FaceRecords"][0]["Face"]["FaceId"]
    assert run("user", "create", "kyc", "customer-1") == (0, {})
    code, linked = run("user", "associate", "kyc", "customer-1", face)
    assert code == 0 and linked["AssociatedFaces"] == [{"FaceId": face}] and linked["UserStatus"] == "ACTIVE"
    code, found = run("user", "search", "kyc", str(fixtures / "Colin_Powell_0002.jpg"))
    assert code == 0 and [m["User"]["UserId"] for m in found["UserMatches"]] == ["customer-1"]
    assert run("user", "search", "kyc", "--face-id", face)[1]["SearchedFace"] == {"FaceId": face}
    assert run("user", "list", "kyc")[1]["Users"] == [{"UserId": "customer-1", "UserStatus": "ACTIVE"}]
    assert [f["UserId"] for f in run("list-faces", "kyc", "--user-id", "customer-1")[1]["Faces"]] == ["customer-1"]
    assert run("tag", "kyc", "team=kyc")[1] == {"Tags": {"team": "kyc"}}
    assert run("untag", "kyc", "team")[1] == {"Tags": {}} and run("tags", "kyc")[1] == {"Tags": {}}
    assert run("user", "disassociate", "kyc", "customer-1", face)[1]["DisassociatedFaces"] == [{"FaceId": face}]
    assert run("user", "delete", "kyc", "customer-1") == (0, {})
    code, err = run("user", "delete", "kyc", "customer-1")
    assert code == 2 and err.startswith("error: ResourceNotFoundException:")
    code, err = run("user", "search", "kyc")
    assert code == 2 and "InvalidParameterException" in err
