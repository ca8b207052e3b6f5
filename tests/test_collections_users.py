"""Rekognition Users and tagging over the AWS protocol: the unmodified boto3 client (SigV4, its paginators, its
auto-filled ClientRequestToken) against two real ``facecompare serve`` processes on one store, SQLite then
PostgreSQL. Every 200 response is checked against botocore's output shape with the collection tests' recursive
checker; the modeled errors arrive as botocore ClientError codes; the two servers agree on users."""

from __future__ import annotations

import boto3
import pytest

from test_collections_aws import ACCESS, SECRET, UNKNOWN_FACE, Recorder, _client, _code, shape_problems, two_servers

USER_OPERATIONS = {"CreateUser", "DeleteUser", "ListUsers", "AssociateFaces", "DisassociateFaces", "SearchUsers",
                   "SearchUsersByImage", "TagResource", "UntagResource", "ListTagsForResource"}
PEOPLE = ("Colin_Powell_0001", "Colin_Powell_0002", "Serena_Williams_0001", "Serena_Williams_0002", "obama", "biden")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def servers(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('users-db') / 'collections.db'}"
    else:
        url = request.getfixturevalue("postgres_cluster").new_database()
    yield from two_servers(tmp_path_factory, url, "users")


def _image(fixtures, name: str) -> dict:
    return {"Bytes": (fixtures / f"{name}.jpg").read_bytes()}


def _empty(response: dict) -> bool:
    """A 200 with an empty body (CreateUser, DeleteUser, TagResource, UntagResource)."""
    return response["ResponseMetadata"]["HTTPStatusCode"] == 200 and set(response) == {"ResponseMetadata"}


def _enrol(client, fixtures, collection: str) -> dict[str, str]:
    client.create_collection(CollectionId=collection, Tags={"team": "onboarding"})
    return {name: client.index_faces(CollectionId=collection, Image=_image(fixtures, name), ExternalImageId=name,
                                     MaxFaces=1)["FaceRecords"][0]["Face"]["FaceId"] for name in PEOPLE}


def test_every_user_operation_through_boto3(servers, fixtures):
    server = servers[0]
    recorder = Recorder()
    client = _client(server, recorder)
    faces = _enrol(client, fixtures, "kyc-users")
    colin1, colin2 = faces["Colin_Powell_0001"], faces["Colin_Powell_0002"]
    serena1, serena2 = faces["Serena_Williams_0001"], faces["Serena_Williams_0002"]
    mark = server.log_mark()

    # CreateUser: idempotent with its ClientRequestToken (boto3 fills one in when it is not given)
    for _ in range(2):  # the second is a replay, not a conflict
        assert _empty(client.create_user(CollectionId="kyc-users", UserId="customer-1", ClientRequestToken="create-1"))
    assert _code(lambda: client.create_user(CollectionId="kyc-users", UserId="customer-1")) == "ConflictException"
    assert _code(lambda: client.create_user(CollectionId="kyc-users", UserId="customer-9",
                                            ClientRequestToken="create-1")) == "IdempotentParameterMismatchException"
    client.create_user(CollectionId="kyc-users", UserId="customer-2")
    client.create_user(CollectionId="kyc-users", UserId="customer-3")
    assert client.describe_collection(CollectionId="kyc-users")["UserCount"] == 3
    assert client.list_users(CollectionId="kyc-users")["Users"] == [
        {"UserId": f"customer-{i}", "UserStatus": "CREATED"} for i in (1, 2, 3)]

    # AssociateFaces: the first face of an empty user is taken; later ones must look like it
    first = client.associate_faces(CollectionId="kyc-users", UserId="customer-1", FaceIds=[colin1])
    assert first["AssociatedFaces"] == [{"FaceId": colin1}] and first["UserStatus"] == "ACTIVE"
    more = client.associate_faces(CollectionId="kyc-users", UserId="customer-1",
                                  FaceIds=[colin2, serena1, UNKNOWN_FACE, colin1])
    assert sorted(f["FaceId"] for f in more["AssociatedFaces"]) == sorted([colin2, colin1])
    refused = {f["FaceId"]: f for f in more["UnsuccessfulFaceAssociations"]}
    assert refused[UNKNOWN_FACE]["Reasons"] == ["FACE_NOT_FOUND"]
    assert refused[serena1]["Reasons"] == ["LOW_MATCH_CONFIDENCE"] and refused[serena1]["Confidence"] < 75
    lenient = client.associate_faces(CollectionId="kyc-users", UserId="customer-3", FaceIds=[faces["obama"]])
    assert lenient["AssociatedFaces"] == [{"FaceId": faces["obama"]}]
    serena = client.associate_faces(CollectionId="kyc-users", UserId="customer-2", FaceIds=[serena1, serena2, colin1])
    assert sorted(f["FaceId"] for f in serena["AssociatedFaces"]) == sorted([serena1, serena2])
    assert serena["UnsuccessfulFaceAssociations"] == [
        {"FaceId": colin1, "UserId": "customer-1", "Reasons": ["ASSOCIATED_TO_A_DIFFERENT_USER"]}]
    assert _code(lambda: client.associate_faces(CollectionId="kyc-users", UserId="nobody", FaceIds=[colin1])
                 ) == "ResourceNotFoundException"
    assert _code(lambda: client.associate_faces(CollectionId="kyc-users", UserId="customer-1", FaceIds=[colin1],
                                                UserMatchThreshold=101)) == "InvalidParameterException"

    # the face operations learn their user fields
    listed = client.list_faces(CollectionId="kyc-users", UserId="customer-1")["Faces"]
    assert sorted(f["FaceId"] for f in listed) == sorted([colin1, colin2])
    assert {f["UserId"] for f in listed} == {"customer-1"}
    assert client.list_faces(CollectionId="kyc-users", UserId="someone")["Faces"] == []
    kept = client.delete_faces(CollectionId="kyc-users", FaceIds=[colin1, faces["biden"]])
    assert kept["DeletedFaces"] == [faces["biden"]]
    assert kept["UnsuccessfulFaceDeletions"] == [
        {"FaceId": colin1, "UserId": "customer-1", "Reasons": ["ASSOCIATED_TO_AN_EXISTING_USER"]}]

    # SearchUsersByImage: users, not faces; the other faces of the image are UnsearchedFaces
    found = client.search_users_by_image(CollectionId="kyc-users", Image=_image(fixtures, "Colin_Powell_0002"))
    assert [m["User"] for m in found["UserMatches"]] == [{"UserId": "customer-1", "UserStatus": "ACTIVE"}]
    assert found["UserMatches"][0]["Similarity"] >= 80 and found["SearchedFace"]["FaceDetail"]["Confidence"] > 90
    crowd = client.search_users_by_image(CollectionId="kyc-users", Image=_image(fixtures, "two_people"),
                                         UserMatchThreshold=0, MaxUsers=2)
    assert len(crowd["UserMatches"]) == 2 and [u["Reasons"] for u in crowd["UnsearchedFaces"]] == [
        ["FACE_NOT_LARGEST"]]
    strangers = client.search_users_by_image(CollectionId="kyc-users", Image=_image(fixtures, "biden"))
    assert strangers["UserMatches"] == []
    assert _code(lambda: client.search_users_by_image(CollectionId="kyc-users",
                                                      Image=_image(fixtures, "id_back_mrz_only_che"))
                 ) == "InvalidParameterException"

    # SearchUsers by FaceId (the face's own user first) and by UserId (the others)
    by_face = client.search_users(CollectionId="kyc-users", FaceId=serena2)
    assert by_face["SearchedFace"] == {"FaceId": serena2}
    assert [m["User"]["UserId"] for m in by_face["UserMatches"]] == ["customer-2"]
    by_user = client.search_users(CollectionId="kyc-users", UserId="customer-1", UserMatchThreshold=0)
    assert by_user["SearchedUser"] == {"UserId": "customer-1"}
    assert sorted(m["User"]["UserId"] for m in by_user["UserMatches"]) == ["customer-2", "customer-3"]
    similarities = [m["Similarity"] for m in by_user["UserMatches"]]
    assert similarities == sorted(similarities, reverse=True) and max(similarities) < 80
    assert _code(lambda: client.search_users(CollectionId="kyc-users")) == "InvalidParameterException"
    assert _code(lambda: client.search_users(CollectionId="kyc-users", UserId="nobody")
                 ) == "ResourceNotFoundException"

    # ListUsers pages, through boto3's paginator
    pages = list(client.get_paginator("list_users").paginate(CollectionId="kyc-users",
                                                              PaginationConfig={"PageSize": 2}))
    assert [[u["UserId"] for u in p["Users"]] for p in pages] == [["customer-1", "customer-2"], ["customer-3"]]
    token = client.list_users(CollectionId="kyc-users", MaxResults=1)["NextToken"]
    assert _code(lambda: client.list_users(CollectionId="kyc-users", NextToken=token + "x")
                 ) == "InvalidPaginationTokenException"
    assert _code(lambda: client.list_users(CollectionId="nope")) == "ResourceNotFoundException"

    # DisassociateFaces, then DeleteUser (its faces stay, associated to nobody)
    gone = client.disassociate_faces(CollectionId="kyc-users", UserId="customer-1",
                                     FaceIds=[colin1, serena1, UNKNOWN_FACE])
    assert gone["DisassociatedFaces"] == [{"FaceId": colin1}] and gone["UserStatus"] == "ACTIVE"
    assert {f["FaceId"]: f["Reasons"] for f in gone["UnsuccessfulFaceDisassociations"]} == {
        serena1: ["ASSOCIATED_TO_A_DIFFERENT_USER"], UNKNOWN_FACE: ["FACE_NOT_FOUND"]}
    for _ in range(2):  # the second is a replay
        assert _empty(client.delete_user(CollectionId="kyc-users", UserId="customer-2", ClientRequestToken="delete-2"))
    assert _code(lambda: client.delete_user(CollectionId="kyc-users", UserId="customer-2")
                 ) == "ResourceNotFoundException"
    assert "UserId" not in client.list_faces(CollectionId="kyc-users", FaceIds=[serena1])["Faces"][0]
    assert client.describe_collection(CollectionId="kyc-users")["UserCount"] == 2
    assert client.delete_faces(CollectionId="kyc-users", FaceIds=[colin1])["DeletedFaces"] == [colin1]

    # tagging: ARN in, Rekognition's limits
    arn = client.describe_collection(CollectionId="kyc-users")["CollectionARN"]
    assert client.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"team": "onboarding"}
    assert _empty(client.tag_resource(ResourceArn=arn, Tags={"cost-centre": "kyc 42", "team": "risk"}))
    assert _empty(client.untag_resource(ResourceArn=arn, TagKeys=["cost-centre", "absent"]))
    assert client.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"team": "risk"}
    assert _code(lambda: client.tag_resource(ResourceArn=arn, Tags={f"k{i}": "v" for i in range(200)})
                 ) == "ServiceQuotaExceededException"
    assert _code(lambda: client.tag_resource(ResourceArn=arn, Tags={"aws:owner": "me"})
                 ) == "InvalidParameterException"
    assert _code(lambda: client.list_tags_for_resource(ResourceArn=arn.replace("kyc-users", "nope"))
                 ) == "ResourceNotFoundException"
    assert _code(lambda: client.list_tags_for_resource(ResourceArn=arn.replace("us-east-1", "eu-west-1"))
                 ) == "ResourceNotFoundException"
    assert _code(lambda: client.list_tags_for_resource(ResourceArn="not-an-arn-of-rekognition")
                 ) == "InvalidParameterException"

    client.delete_collection(CollectionId="kyc-users")
    assert _code(lambda: client.list_users(CollectionId="kyc-users")) == "ResourceNotFoundException"

    operations = {model.name for model, _ in recorder.responses}
    assert USER_OPERATIONS <= operations, USER_OPERATIONS - operations
    for model, body in recorder.responses:
        assert shape_problems(model.output_shape, body, model.name) == []
    log = "\n".join(server.log_since(mark))  # the log lines name operations, never users or faces
    assert "AssociateFaces" in log and "customer-1" not in log and colin1 not in log


def test_two_servers_on_one_store_agree_on_users(servers, fixtures):
    a, b = (_client(server) for server in servers)
    faces = _enrol(a, fixtures, "shared-users")
    colin2 = _image(fixtures, "Colin_Powell_0002")
    assert b.search_users_by_image(CollectionId="shared-users", Image=colin2)["UserMatches"] == []  # b's index
    a.create_user(CollectionId="shared-users", UserId="colin")
    assert b.list_users(CollectionId="shared-users")["Users"] == [{"UserId": "colin", "UserStatus": "CREATED"}]
    b.associate_faces(CollectionId="shared-users", UserId="colin", FaceIds=[faces["Colin_Powell_0001"]])
    on_a = a.search_users_by_image(CollectionId="shared-users", Image=colin2)["UserMatches"]
    on_b = b.search_users_by_image(CollectionId="shared-users", Image=colin2)["UserMatches"]
    assert [m["User"]["UserId"] for m in on_a] == ["colin"] and on_a == on_b
    assert _code(lambda: a.create_user(CollectionId="shared-users", UserId="colin")) == "ConflictException"
    b.delete_user(CollectionId="shared-users", UserId="colin")
    assert a.search_users_by_image(CollectionId="shared-users", Image=colin2)["UserMatches"] == []
    assert a.describe_collection(CollectionId="shared-users")["UserCount"] == 0
    a.tag_resource(ResourceArn=a.describe_collection(CollectionId="shared-users")["CollectionARN"],
                   Tags={"shared": "yes"})
    arn = b.describe_collection(CollectionId="shared-users")["CollectionARN"]
    assert b.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"team": "onboarding", "shared": "yes"}
    b.delete_collection(CollectionId="shared-users")


def test_the_user_shapes_are_in_botocore_and_the_checker_catches_a_bad_status():
    model = boto3.client("rekognition", region_name="us-east-1", aws_access_key_id=ACCESS,
                         aws_secret_access_key=SECRET).meta.service_model
    shape = model.operation_model("ListUsers").output_shape
    assert shape_problems(shape, {"Users": [{"UserId": "u", "UserStatus": "ACTIVE"}]}, "r") == []
    assert shape_problems(shape, {"Users": [{"UserId": "u", "UserStatus": "READY"}]}, "r")
    tags = model.operation_model("ListTagsForResource").output_shape
    assert shape_problems(tags, {"Tags": {"équipe": "kyc 1"}}, "r") == []
    assert shape_problems(tags, {"Tags": {"aws:x": "y"}}, "r")


MB = "x" * 1_000_000
_FACE = "00000000-0000-4000-8000-000000000000"


@pytest.mark.parametrize(("parse", "body"), [
    ("parse_create_user", {"CollectionId": "c", "UserId": MB}),
    ("parse_create_user", {"CollectionId": "c", "UserId": "u", "ClientRequestToken": MB}),
    ("parse_create_user", {"CollectionId": "c", "UserId": "u", "ClientRequestToken": "has space"}),
    ("parse_create_user", {"CollectionId": "c"}),
    ("parse_delete_user", {"CollectionId": "c", "UserId": ["u"]}),
    ("parse_list_users", {"CollectionId": "c", "MaxResults": 0}),
    ("parse_list_users", {"CollectionId": "c", "MaxResults": 501}),
    ("parse_list_users", {"CollectionId": "c", "NextToken": {"a": 1}}),
    ("parse_associate_faces", {"CollectionId": "c", "UserId": "u", "FaceIds": [_FACE] * 101}),
    ("parse_associate_faces", {"CollectionId": "c", "UserId": "u", "FaceIds": []}),
    ("parse_associate_faces", {"CollectionId": "c", "UserId": "u", "FaceIds": [MB]}),
    ("parse_associate_faces", {"CollectionId": "c", "UserId": "u", "FaceIds": [_FACE], "UserMatchThreshold": "NaN"}),
    ("parse_disassociate_faces", {"CollectionId": "c", "UserId": "u", "FaceIds": _FACE}),
    ("parse_search_users", {"CollectionId": "c", "UserId": "u", "FaceId": _FACE}),
    ("parse_search_users", {"CollectionId": "c", "FaceId": _FACE, "MaxUsers": 10 ** 1000}),
    ("parse_search_users_by_image", {"CollectionId": "c", "Image": {"Bytes": "aGVsbG8="}, "QualityFilter": MB}),
    ("parse_tag_resource", {"ResourceArn": MB, "Tags": {}}),
    ("parse_tag_resource", {"ResourceArn": "arn:aws:rekognition:us-east-1:000000000000:collection/c",
                            "Tags": {"k": MB}}),
    ("parse_untag_resource", {"ResourceArn": "arn:aws:rekognition:us-east-1:000000000000:collection/c",
                              "TagKeys": [1]}),
    ("parse_untag_resource", {"ResourceArn": "arn:aws:rekognition:us-east-1:000000000000:collection/c",
                              "TagKeys": ["aws:" + MB]}),
    ("parse_list_tags_for_resource", {"ResourceArn": "arn:aws:s3:::bucket-of-twenty-chars"}),
])
def test_bad_user_and_tag_requests_are_refused_with_short_messages(parse, body):
    from facecompare.aws import operations as aws
    from facecompare.errors import InvalidParameterException

    with pytest.raises(InvalidParameterException) as info:
        getattr(aws, parse)(body)
    assert len(info.value.message) < 400 and "x" * 100 not in info.value.message
