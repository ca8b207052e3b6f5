"""The collection operations over the AWS protocol: the unmodified boto3 client (SigV4) against real
``facecompare serve`` processes sharing one SQLite file. Every response is checked against botocore's model of
its output shape (members, types, required members, enums, patterns, min/max); the modeled errors arrive as
botocore ClientError codes; the boto3 paginators walk ListCollections and ListFaces; two processes see each
other's IndexFaces and DeleteFaces."""

from __future__ import annotations

import datetime
import json
import re

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import ServeProcess

ACCESS, SECRET = "AKIDCOLLECTIONSTEST", "collections-test-secret"
UNKNOWN_FACE = "00000000-0000-4000-8000-000000000000"


# -- a small checker of a JSON value against a botocore output shape ------------------------------------------------

def shape_problems(shape, value, where: str) -> list[str]:
    kind = shape.type_name
    meta = shape.metadata
    problems: list[str] = []
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{where}: {type(value).__name__}, not an object"]
        problems += [f"{where}: lacks required {name}" for name in shape.required_members if name not in value]
        for name, item in value.items():
            if name not in shape.members:
                problems.append(f"{where}: undeclared member {name!r}")
            else:
                problems += shape_problems(shape.members[name], item, f"{where}.{name}")
    elif kind in ("list", "map"):
        if not isinstance(value, list if kind == "list" else dict):
            return [f"{where}: {type(value).__name__}, not a {kind}"]
        if "min" in meta and len(value) < meta["min"] or "max" in meta and len(value) > meta["max"]:
            problems.append(f"{where}: {len(value)} entries, outside {meta.get('min')}..{meta.get('max')}")
        if kind == "list":
            for i, item in enumerate(value):
                problems += shape_problems(shape.member, item, f"{where}[{i}]")
        else:
            for k, item in value.items():
                problems += shape_problems(shape.key, k, f"{where} key")
                problems += shape_problems(shape.value, item, f"{where}[{k!r}]")
    elif kind == "string":
        if not isinstance(value, str):
            return [f"{where}: {type(value).__name__}, not a string"]
        if shape.enum and value not in shape.enum:
            problems.append(f"{where}: {value!r} is not one of {shape.enum}")
        if "pattern" in meta and not re.fullmatch(python_pattern(meta["pattern"]), value):
            problems.append(f"{where}: {value!r} does not match {meta['pattern']}")
        if "min" in meta and len(value) < meta["min"] or "max" in meta and len(value) > meta["max"]:
            problems.append(f"{where}: length {len(value)} outside {meta.get('min')}..{meta.get('max')}")
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{where}: {value!r} is not an integer"]
        problems += _range(meta, value, where)
    elif kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [f"{where}: {value!r} is not a number"]
        problems += _range(meta, value, where)
    elif kind == "timestamp":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{where}: {value!r} is not epoch seconds")
    elif kind == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{where}: {value!r} is not a boolean")
    else:
        problems.append(f"{where}: unexpected shape type {kind}")
    return problems


def python_pattern(pattern: str) -> str:
    """A botocore pattern in Python's ``re``: the tag patterns' Unicode classes (``\\p{L}\\p{Z}\\p{N}``, which ``re``
    lacks) as letters and digits (``[^\\W_]``) or whitespace."""
    return pattern.replace(r"[\p{L}\p{Z}\p{N}_.:/=+\-@]", r"(?:[^\W_]|[\s_.:/=+\-@])")


def _range(meta: dict, value: float, where: str) -> list[str]:
    if "min" in meta and value < meta["min"] or "max" in meta and value > meta["max"]:
        return [f"{where}: {value} outside {meta.get('min')}..{meta.get('max')}"]
    return []


def test_the_checker_finds_what_it_should():
    model = boto3.client("rekognition", region_name="us-east-1", aws_access_key_id="a",
                         aws_secret_access_key="b").meta.service_model
    shape = model.operation_model("IndexFaces").output_shape
    good = {"FaceRecords": [{"Face": {"FaceId": UNKNOWN_FACE, "Confidence": 99.0}}], "FaceModelVersion": "x",
            "UnindexedFaces": [{"Reasons": ["EXTREME_POSE"]}]}
    assert shape_problems(shape, good, "r") == []
    bad = {"FaceRecords": [{"Face": {"FaceId": "Z", "Confidence": 101, "IndexFacesModelVersion": "sface"}}],
           "UnindexedFaces": [{"Reasons": ["BLURRY"]}], "Extra": 1}
    found = " ".join(shape_problems(shape, bad, "r"))
    for expected in ("'Z' does not match", "101 outside", "'sface' does not match", "'BLURRY' is not one of",
                     "undeclared member 'Extra'"):
        assert expected in found
    assert shape_problems(model.operation_model("DeleteFaces").output_shape, {"DeletedFaces": []}, "r")


# -- two real servers on one database --------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def servers(request, tmp_path_factory):
    """Two real servers on one store: a SQLite file, then a database of the throwaway PostgreSQL cluster (every
    boto3 operation runs on both engines)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('collections-db') / 'collections.db'}"
    else:
        url = request.getfixturevalue("postgres_cluster").new_database()
    yield from two_servers(tmp_path_factory, url, "serve")


def two_servers(tmp_path_factory, url: str, name: str):
    """Two real ``facecompare serve`` processes on the store at ``url``, ready; stopped when the generator ends."""
    running = [ServeProcess(tmp_path_factory.mktemp(f"{name}{i}"), access=ACCESS, secret=SECRET, api_key_name="t",
                            api_key="collections-rest-key", env={"FACECOMPARE_COLLECTIONS": url}) for i in range(2)]
    try:
        for server in running:
            server.wait_ready()
        yield running
    finally:
        for server in running:
            server.stop()


class Recorder:
    """Every raw response body of a client, with its operation model (for the conformance check)."""

    def __init__(self) -> None:
        self.responses: list[tuple[object, dict]] = []

    def __call__(self, http_response, model, **_) -> None:
        if http_response.status_code == 200:
            self.responses.append((model, json.loads(http_response.content)))


def _client(server, recorder: Recorder | None = None):
    client = boto3.client("rekognition", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id=ACCESS,
                          aws_secret_access_key=SECRET, config=Config(retries={"max_attempts": 1}))
    if recorder is not None:
        client.meta.events.register("after-call.rekognition", recorder)
    return client


def _code(call) -> str:
    with pytest.raises(ClientError) as info:
        call()
    return info.value.response["Error"]["Code"]


def test_every_operation_through_boto3(servers, fixtures):
    server = servers[0]
    recorder = Recorder()
    client = _client(server, recorder)
    image = {name: {"Bytes": (fixtures / f"{name}.jpg").read_bytes()} for name in
             ("Colin_Powell_0001", "Colin_Powell_0002", "Serena_Williams_0001", "two_people", "Tony_Blair_0001",
              "id_back_mrz_only_che", "obama")}
    mark = server.log_mark()

    created = client.create_collection(CollectionId="kyc", Tags={"team": "onboarding"})
    assert created["StatusCode"] == 200 and created["FaceModelVersion"]
    assert created["CollectionArn"] == "arn:aws:rekognition:us-east-1:000000000000:collection/kyc"
    assert _code(lambda: client.create_collection(CollectionId="kyc")) == "ResourceAlreadyExistsException"
    described = client.describe_collection(CollectionId="kyc")
    assert described["FaceCount"] == 0 and isinstance(described["CreationTimestamp"], datetime.datetime)
    assert described["CollectionARN"] == created["CollectionArn"] and described["UserCount"] == 0

    colin = client.index_faces(CollectionId="kyc", Image=image["Colin_Powell_0001"], ExternalImageId="colin-1",
                               DetectionAttributes=["ALL"])
    assert len(colin["FaceRecords"]) == 1 and colin["UnindexedFaces"] == []
    colin_id = colin["FaceRecords"][0]["Face"]["FaceId"]
    assert colin["FaceRecords"][0]["Face"]["ExternalImageId"] == "colin-1"
    assert colin["FaceRecords"][0]["FaceDetail"]["BoundingBox"] == colin["FaceRecords"][0]["Face"]["BoundingBox"]
    retried = client.index_faces(CollectionId="kyc", Image=image["Colin_Powell_0001"], ExternalImageId="colin-1")
    assert retried["FaceRecords"][0]["Face"]["FaceId"] == colin_id
    client.index_faces(CollectionId="kyc", Image=image["Serena_Williams_0001"], ExternalImageId="serena-1")
    two = client.index_faces(CollectionId="kyc", Image=image["two_people"], MaxFaces=1)
    assert len(two["FaceRecords"]) == 1 and two["UnindexedFaces"][0]["Reasons"] == ["EXCEEDS_MAX_FACES"]
    blair = client.index_faces(CollectionId="kyc", Image=image["Tony_Blair_0001"], QualityFilter="AUTO")
    assert [u["Reasons"] for u in blair["UnindexedFaces"]] == [["EXTREME_POSE"]]
    empty = client.index_faces(CollectionId="kyc", Image=image["id_back_mrz_only_che"])
    assert empty["FaceRecords"] == [] and empty["UnindexedFaces"] == []
    assert client.describe_collection(CollectionId="kyc")["FaceCount"] == 4

    found = client.search_faces_by_image(CollectionId="kyc", Image=image["Colin_Powell_0002"])
    assert [m["Face"]["FaceId"] for m in found["FaceMatches"]] == [colin_id]
    assert found["FaceMatches"][0]["Similarity"] >= 80 and found["SearchedFaceConfidence"] > 90
    assert set(found["SearchedFaceBoundingBox"]) == {"Width", "Height", "Left", "Top"}
    everyone = client.search_faces_by_image(CollectionId="kyc", Image=image["Colin_Powell_0002"],
                                            FaceMatchThreshold=0, MaxFaces=3)
    similarities = [m["Similarity"] for m in everyone["FaceMatches"]]
    assert len(similarities) == 3 and similarities == sorted(similarities, reverse=True)
    by_id = client.search_faces(CollectionId="kyc", FaceId=colin_id, FaceMatchThreshold=0)
    assert by_id["SearchedFaceId"] == colin_id and len(by_id["FaceMatches"]) == 3
    assert colin_id not in [m["Face"]["FaceId"] for m in by_id["FaceMatches"]]

    for i in range(3):
        client.create_collection(CollectionId=f"page-{i}")
    listed = [c for page in client.get_paginator("list_collections").paginate(PaginationConfig={"PageSize": 1})
              for c in page["CollectionIds"]]
    assert listed == ["kyc", "page-0", "page-1", "page-2"]
    pages = list(client.get_paginator("list_faces").paginate(CollectionId="kyc", PaginationConfig={"PageSize": 3}))
    assert [len(p["Faces"]) for p in pages] == [3, 1]
    face_ids = [f["FaceId"] for p in pages for f in p["Faces"]]
    assert len(face_ids) == 4 and colin_id in face_ids and face_ids == sorted(face_ids)
    only = client.list_faces(CollectionId="kyc", FaceIds=[colin_id, UNKNOWN_FACE])
    assert [f["FaceId"] for f in only["Faces"]] == [colin_id] and "NextToken" not in only
    assert client.list_faces(CollectionId="kyc", UserId="someone")["Faces"] == []

    deleted = client.delete_faces(CollectionId="kyc", FaceIds=[colin_id, UNKNOWN_FACE])
    assert deleted["DeletedFaces"] == [colin_id]
    assert deleted["UnsuccessfulFaceDeletions"] == [{"FaceId": UNKNOWN_FACE, "Reasons": ["FACE_NOT_FOUND"]}]
    assert client.search_faces_by_image(CollectionId="kyc", Image=image["Colin_Powell_0002"])["FaceMatches"] == []

    # the modeled errors, as botocore ClientError codes
    assert _code(lambda: client.describe_collection(CollectionId="nope")) == "ResourceNotFoundException"
    assert _code(lambda: client.index_faces(CollectionId="nope", Image=image["obama"])) == "ResourceNotFoundException"
    assert _code(lambda: client.delete_collection(CollectionId="nope")) == "ResourceNotFoundException"
    assert _code(lambda: client.search_faces(CollectionId="kyc", FaceId=colin_id)) == "InvalidParameterException"
    assert _code(lambda: client.search_faces_by_image(CollectionId="kyc", Image=image["id_back_mrz_only_che"])
                 ) == "InvalidParameterException"
    assert _code(lambda: client.create_collection(CollectionId="not valid!")) == "InvalidParameterException"
    assert _code(lambda: client.index_faces(CollectionId="kyc", Image=image["obama"], QualityFilter="BEST")
                 ) == "InvalidParameterException"
    assert _code(lambda: client.search_faces(CollectionId="kyc", FaceId="NOT-A-UUID")) == "InvalidParameterException"
    assert _code(lambda: client.list_faces(CollectionId="kyc", MaxResults=5000)) == "InvalidParameterException"
    token = client.list_faces(CollectionId="kyc", MaxResults=1)["NextToken"]
    assert _code(lambda: client.list_faces(CollectionId="kyc", NextToken=token[:-2])
                 ) == "InvalidPaginationTokenException"
    assert _code(lambda: client.list_collections(NextToken=token)) == "InvalidPaginationTokenException"

    assert client.delete_collection(CollectionId="kyc")["StatusCode"] == 200
    assert _code(lambda: client.describe_collection(CollectionId="kyc")) == "ResourceNotFoundException"
    for i in range(3):
        client.delete_collection(CollectionId=f"page-{i}")
    assert client.list_collections()["CollectionIds"] == []

    # every 200 response conforms to botocore's model of its output
    operations = {model.name for model, _ in recorder.responses}
    assert operations == {"CreateCollection", "DeleteCollection", "DescribeCollection", "ListCollections",
                          "IndexFaces", "ListFaces", "DeleteFaces", "SearchFaces", "SearchFacesByImage"}
    for model, body in recorder.responses:
        assert shape_problems(model.output_shape, body, model.name) == []
    # the log lines name operations, never faces
    log = "\n".join(server.log_since(mark))
    assert "IndexFaces" in log and colin_id not in log and "colin-1" not in log


def test_two_servers_on_one_database_see_each_others_writes(servers, fixtures):
    a, b = (_client(server) for server in servers)
    colin2 = {"Bytes": (fixtures / "Colin_Powell_0002.jpg").read_bytes()}
    a.create_collection(CollectionId="shared")
    assert b.search_faces_by_image(CollectionId="shared", Image=colin2)["FaceMatches"] == []  # b builds its index
    face_id = a.index_faces(CollectionId="shared", Image={"Bytes": (fixtures / "Colin_Powell_0001.jpg").read_bytes()}
                            )["FaceRecords"][0]["Face"]["FaceId"]
    assert [m["Face"]["FaceId"] for m in b.search_faces_by_image(CollectionId="shared", Image=colin2)["FaceMatches"]
            ] == [face_id]
    assert a.search_faces_by_image(CollectionId="shared", Image=colin2)["FaceMatches"]  # a's index, built now
    assert b.delete_faces(CollectionId="shared", FaceIds=[face_id])["DeletedFaces"] == [face_id]
    assert a.search_faces_by_image(CollectionId="shared", Image=colin2)["FaceMatches"] == []
    assert a.describe_collection(CollectionId="shared")["FaceCount"] == 0
    b.delete_collection(CollectionId="shared")
    assert _code(lambda: a.describe_collection(CollectionId="shared")) == "ResourceNotFoundException"


# -- request validation, without a server --------------------------------------------------------------------------

MB = "x" * 1_000_000
_IMAGE = {"Bytes": "aGVsbG8="}


@pytest.mark.parametrize(("parse", "body"), [
    ("parse_create_collection", {"CollectionId": MB}),
    ("parse_create_collection", {"CollectionId": "c", "Tags": {MB: "v"}}),
    ("parse_create_collection", {"CollectionId": "c", "Tags": {"k": MB}}),
    ("parse_create_collection", {"CollectionId": "c", MB: 1}),
    ("parse_index_faces", {"CollectionId": "c", "Image": _IMAGE, "ExternalImageId": MB}),
    ("parse_index_faces", {"CollectionId": "c", "Image": _IMAGE, "MaxFaces": -(10 ** 1000)}),
    ("parse_index_faces", {"CollectionId": "c", "Image": _IMAGE, "QualityFilter": MB}),
    ("parse_list_faces", {"CollectionId": "c", "FaceIds": [MB]}),
    ("parse_list_faces", {"CollectionId": "c", "UserId": MB}),
    ("parse_delete_faces", {"CollectionId": "c", "FaceIds": [MB]}),
    ("parse_search_faces", {"CollectionId": "c", "FaceId": MB}),
    ("parse_search_faces_by_image", {"CollectionId": "c", "Image": _IMAGE, "FaceMatchThreshold": MB}),
])
def test_invalid_parameters_are_refused_with_short_messages(parse, body):
    from facecompare.aws import operations as aws
    from facecompare.errors import InvalidParameterException

    with pytest.raises(InvalidParameterException) as info:
        getattr(aws, parse)(body)
    assert len(info.value.message) < 400 and "x" * 100 not in info.value.message


@pytest.mark.parametrize(("parse", "body"), [
    ("parse_delete_faces", {"CollectionId": "c", "FaceIds": []}),
    ("parse_delete_faces", {"CollectionId": "c", "FaceIds": [UNKNOWN_FACE] * 4097}),
    ("parse_list_collections", {"MaxResults": -1}),
    ("parse_list_collections", {"MaxResults": True}),
    ("parse_list_collections", {"NextToken": 5}),
    ("parse_search_faces", {"CollectionId": "c", "FaceId": UNKNOWN_FACE, "MaxFaces": 0}),
    ("parse_search_faces", {"CollectionId": "c", "FaceId": "ABCDEF00-0000-4000-8000-000000000000"}),
    ("parse_index_faces", {"CollectionId": "c", "Image": _IMAGE, "DetectionAttributes": ["SHOE_SIZE"]}),
    ("parse_describe_collection", {}),
])
def test_out_of_range_and_missing_members(parse, body):
    from facecompare.aws import operations as aws
    from facecompare.errors import InvalidParameterException

    with pytest.raises(InvalidParameterException):
        getattr(aws, parse)(body)


def test_parsed_defaults_and_configuration():
    from facecompare.aws import operations as aws
    from facecompare.server.config import ServerConfig

    assert aws.parse_index_faces({"CollectionId": "c", "Image": _IMAGE})["quality_filter"] == "AUTO"
    assert aws.parse_search_faces_by_image({"CollectionId": "c", "Image": _IMAGE})["quality_filter"] == "NONE"
    assert aws.parse_search_faces({"CollectionId": "c", "FaceId": UNKNOWN_FACE})["threshold"] == 80.0
    default = ServerConfig.from_env({})
    assert default.collections_url == "sqlite:///facecompare-collections.db"
    assert default.collection_max_faces == 20_000_000
    custom = ServerConfig.from_env({"FACECOMPARE_COLLECTIONS": "sqlite:////data/f.db",
                                    "FACECOMPARE_COLLECTION_MAX_FACES": "5"})
    assert (custom.collections_url, custom.collection_max_faces) == ("sqlite:////data/f.db", 5)
