"""The AWS operations' handlers (facecompare.aws.operations): found by the operation's name and by nothing else
(X-Amz-Target must never reach a helper), the same handler answering the server and ``facecompare collection``,
and the CLI's own image member (a local path) never accepted from the wire."""

from __future__ import annotations

import base64
import json

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.testclient import TestClient

from facecompare.aws import operations
from facecompare.cli import main
from facecompare.server.app import create_app
from facecompare.server.config import ServerConfig
from facecompare.storage import S3Reader

ACCESS, SECRET = "AKIDHANDLERSTEST", "handlers-test-secret"
URL = "http://127.0.0.1:8080"
SERVED = {"CompareFaces", "DetectFaces", "CreateCollection", "DeleteCollection", "DescribeCollection",
          "ListCollections", "IndexFaces", "ListFaces", "DeleteFaces", "SearchFaces", "SearchFacesByImage",
          "CreateUser", "DeleteUser", "ListUsers", "AssociateFaces", "DisassociateFaces", "SearchUsers",
          "SearchUsersByImage", "TagResource", "UntagResource", "ListTagsForResource"}
# names of this module's helpers, spelled as operations: none may dispatch
NOT_OPERATIONS = ["ParseCompareFaces", "CheckMembers", "ImageSource", "HandlerOf", "OperationFromTarget", "Call",
                  "SnakeCase", "TaggedCollection", "UserRequest", "compare_faces", "Compare_Faces", "COMPAREFACES",
                  "parse_compare_faces", "__init__", "", "DetectLabels"]


def test_every_operation_is_found_by_its_name_and_nothing_else_is():
    assert set(operations.OPERATIONS) == SERVED
    model = boto3.client("rekognition", region_name="us-east-1", aws_access_key_id="x",
                         aws_secret_access_key="x").meta.service_model
    for name in SERVED:
        assert name in model.operation_names, name  # the names boto3 sends
        parse, handle = operations.handler_of(name)
        assert (parse.__name__, handle.__name__) == (f"parse_{operations.snake_case(name)}",
                                                     operations.snake_case(name))
    for name in NOT_OPERATIONS:
        assert operations.handler_of(name) is None, name


def _signed(client, target: str, payload: dict):
    body = json.dumps(payload).encode()
    request = AWSRequest(method="POST", url=URL + "/", data=body,
                         headers={"X-Amz-Target": f"RekognitionService.{target}",
                                  "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials(ACCESS, SECRET), "rekognition", "us-east-1").add_auth(request)
    return client.post("/", content=body, headers=dict(request.headers.items()))


@pytest.fixture
def client(verifier, tmp_path):
    config = ServerConfig(warm=False, access_keys={ACCESS: SECRET}, collections_url=f"sqlite:///{tmp_path / 'c.db'}")
    app = create_app(verifier.settings, config, verifier=verifier, s3=S3Reader())
    with TestClient(app, base_url=URL) as c:
        yield c


def test_a_helper_named_in_the_target_is_an_unknown_operation(client):
    for name in ("CheckMembers", "ParseDetectFaces", "TaggedCollection", "Call"):
        r = _signed(client, name, {"Image": {"Bytes": "aGVsbG8="}})
        assert r.status_code == 400 and r.json()["__type"] == "UnknownOperationException", (name, r.text)


def test_the_cli_image_member_is_refused_on_the_wire(client, fixtures):
    """The CLI reads ``{"Location": path}`` images from this machine; a request must never make the server do so."""
    path = str(fixtures / "obama.jpg")
    for target, payload in (("DetectFaces", {"Image": {"Location": path}}),
                            ("IndexFaces", {"CollectionId": "c", "Image": {"Location": path}}),
                            ("CompareFaces", {"SourceImage": {"Location": path}, "TargetImage": {"Location": path}})):
        r = _signed(client, target, payload)
        assert r.status_code == 400 and r.json()["__type"] == "InvalidParameterException", (target, r.text)
        assert "Location" in r.json()["Message"]


def test_the_server_and_the_cli_answer_with_the_same_handler(client, fixtures, tmp_path, capsys):
    """One image indexed into a collection of the same name through the AWS endpoint and through `facecompare
    collection index`: the two responses are the same document (same face id, box, landmarks, reasons)."""
    image = fixtures / "two_people.jpg"
    assert _signed(client, "CreateCollection", {"CollectionId": "same"}).status_code == 200
    served = _signed(client, "IndexFaces", {"CollectionId": "same", "ExternalImageId": "e-1", "MaxFaces": 1,
                                            "QualityFilter": "NONE",
                                            "Image": {"Bytes": base64.b64encode(image.read_bytes()).decode()}})
    assert served.status_code == 200, served.text
    store = ["--store", f"sqlite:///{tmp_path / 'cli.db'}"]
    assert main(["collection", "create", "same", *store]) == 0
    capsys.readouterr()
    assert main(["collection", "index", "same", str(image), "--external-image-id", "e-1", "--max-faces", "1",
                 "--quality-filter", "NONE", *store]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == served.json()
    assert len(printed["FaceRecords"]) == 1 and printed["UnindexedFaces"][0]["Reasons"] == ["EXCEEDS_MAX_FACES"]
