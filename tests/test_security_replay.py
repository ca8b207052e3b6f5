"""Erasure holds against replay (issue 22): a captured signed request (an IndexFaces) replayed within SigV4's
five-minute window after DeleteFaces must not re-create the erased face. The service remembers the signatures of
the state-changing requests it accepted within the allowed clock skew and refuses a second use with
InvalidSignatureException (stricter than AWS, on by default; FACECOMPARE_SIGV4_REPLAY=allow turns it off). A
signature whose request failed may be sent again (boto3's retries within one second carry the same signature)."""

from __future__ import annotations

import base64
import json

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.testclient import TestClient

from facecompare.errors import ConfigurationError
from facecompare.server import sigv4
from facecompare.server.app import create_app
from facecompare.server.config import ServerConfig
from facecompare.storage import S3Reader

ACCESS, SECRET = "AKIDREPLAYTEST", "replay-test-secret"
URL = "http://127.0.0.1:8080"


def signed(target: str, payload: dict) -> tuple[bytes, dict]:
    body = json.dumps(payload).encode()
    request = AWSRequest(method="POST", url=URL + "/", data=body,
                         headers={"X-Amz-Target": f"RekognitionService.{target}",
                                  "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials(ACCESS, SECRET), "rekognition", "us-east-1").add_auth(request)
    return body, dict(request.headers.items())


def call(client, target: str, payload: dict):
    body, headers = signed(target, payload)
    return client.post("/", content=body, headers=headers), (body, headers)


@pytest.fixture
def client(verifier, tmp_path):
    config = ServerConfig(warm=False, access_keys={ACCESS: SECRET}, collections_url=f"sqlite:///{tmp_path / 'c.db'}")
    app = create_app(verifier.settings, config, verifier=verifier, s3=S3Reader())
    with TestClient(app, base_url=URL) as c:
        yield c


def test_a_replayed_index_faces_cannot_undo_an_erasure(client, fixtures):
    assert call(client, "CreateCollection", {"CollectionId": "kyc"})[0].status_code == 200
    image = {"Bytes": base64.b64encode((fixtures / "Colin_Powell_0001.jpg").read_bytes()).decode()}
    indexed, captured = call(client, "IndexFaces", {"CollectionId": "kyc", "Image": image, "ExternalImageId": "c1"})
    assert indexed.status_code == 200
    face_id = indexed.json()["FaceRecords"][0]["Face"]["FaceId"]
    deleted, _ = call(client, "DeleteFaces", {"CollectionId": "kyc", "FaceIds": [face_id]})
    assert deleted.json()["DeletedFaces"] == [face_id]
    body, headers = captured
    replay = client.post("/", content=body, headers=headers)  # the same bytes, within the 5-minute window
    assert replay.status_code == 400, replay.text
    assert replay.json()["__type"] == "InvalidSignatureException"
    listed, _ = call(client, "ListFaces", {"CollectionId": "kyc"})
    assert listed.json()["Faces"] == []  # the erasure holds


def test_every_replayed_signature_that_changes_state_is_refused_once_accepted(client):
    response, (body, headers) = call(client, "CreateCollection", {"CollectionId": "first"})
    assert response.status_code == 200
    call(client, "DeleteCollection", {"CollectionId": "first"})
    for _ in range(3):
        again = client.post("/", content=body, headers=headers)
        assert again.status_code == 400 and again.json()["__type"] == "InvalidSignatureException"
        assert "already" in again.json()["message"]  # AWS spells it so for auth errors
    assert call(client, "ListCollections", {})[0].json()["CollectionIds"] == []
    # reads may repeat: identical calls within one second (several workers, one key) carry the same signature
    response, (body, headers) = call(client, "ListCollections", {})
    assert client.post("/", content=body, headers=headers).status_code == 200


@pytest.fixture(params=["sqlite", "postgresql"])
def two_replicas(request, verifier, tmp_path):
    """Two services (two workers, or two replicas) on one collection store, each with its own process memory."""
    url = f"sqlite:///{tmp_path / 'shared.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    clients = []
    for _ in range(2):
        config = ServerConfig(warm=False, access_keys={ACCESS: SECRET}, collections_url=url)
        clients.append(TestClient(create_app(verifier.settings, config, verifier=verifier, s3=S3Reader()),
                                  base_url=URL).__enter__())
    yield clients
    for c in clients:
        c.__exit__(None, None, None)


def test_a_replay_sent_to_another_worker_or_replica_is_refused_too(two_replicas, fixtures):
    """The memory of accepted signatures is the store's, shared: an IndexFaces captured at one replica and replayed
    at the other after DeleteFaces is refused there, and the erasure holds on both."""
    a, b = two_replicas
    assert call(a, "CreateCollection", {"CollectionId": "kyc"})[0].status_code == 200
    image = {"Bytes": base64.b64encode((fixtures / "Colin_Powell_0001.jpg").read_bytes()).decode()}
    indexed, (body, headers) = call(a, "IndexFaces", {"CollectionId": "kyc", "Image": image})
    assert indexed.status_code == 200, indexed.text
    face_id = indexed.json()["FaceRecords"][0]["Face"]["FaceId"]
    assert call(b, "DeleteFaces", {"CollectionId": "kyc", "FaceIds": [face_id]})[0].status_code == 200
    for replica in (b, a):
        replay = replica.post("/", content=body, headers=headers)
        assert replay.status_code == 400 and replay.json()["__type"] == "InvalidSignatureException", replay.text
    for replica in (a, b):
        assert call(replica, "ListFaces", {"CollectionId": "kyc"})[0].json()["Faces"] == []
    # a request that failed is forgotten everywhere: its retry may reach the other replica
    failed, (body, headers) = call(a, "DeleteCollection", {"CollectionId": "missing"})
    assert failed.json()["__type"] == "ResourceNotFoundException"
    assert b.post("/", content=body, headers=headers).json()["__type"] == "ResourceNotFoundException"


def test_a_replay_with_a_client_request_token_is_an_idempotent_retry(client):
    """CreateUser with a ClientRequestToken, sent twice within one second (the same signature): the retry answers
    as the first did and changes nothing (Rekognition's idempotency); without a token it would be refused."""
    assert call(client, "CreateCollection", {"CollectionId": "tokens"})[0].status_code == 200
    request = {"CollectionId": "tokens", "UserId": "customer-1", "ClientRequestToken": "create-1"}
    response, (body, headers) = call(client, "CreateUser", request)
    assert response.status_code == 200, response.text
    again = client.post("/", content=body, headers=headers)
    assert again.status_code == 200 and again.json() == response.json()
    users = call(client, "ListUsers", {"CollectionId": "tokens"})[0].json()["Users"]
    assert [u["UserId"] for u in users] == ["customer-1"]
    response, (body, headers) = call(client, "CreateUser", {"CollectionId": "tokens", "UserId": "customer-2",
                                                            "ClientRequestToken": ""})
    assert client.post("/", content=body, headers=headers).json()["__type"] in (
        "InvalidSignatureException", "InvalidParameterException")  # an empty token protects nothing


def test_a_failed_request_may_be_sent_again(client):
    response, (body, headers) = call(client, "DescribeCollection", {"CollectionId": "missing"})
    assert response.status_code == 400 and response.json()["__type"] == "ResourceNotFoundException"
    again = client.post("/", content=body, headers=headers)  # a retry of the same signed bytes
    assert again.json()["__type"] == "ResourceNotFoundException"


def test_replay_refusal_can_be_turned_off(verifier, tmp_path):
    config = ServerConfig.from_env({"FACECOMPARE_AUTH_KEYS": f"{ACCESS}:{SECRET}", "FACECOMPARE_SIGV4_REPLAY": "allow",
                                    "FACECOMPARE_COLLECTIONS": f"sqlite:///{tmp_path / 'c.db'}"})
    assert config.refuse_replays is False
    assert ServerConfig.from_env({"FACECOMPARE_AUTH_KEYS": f"{ACCESS}:{SECRET}"}).refuse_replays is True
    with pytest.raises(ConfigurationError, match="FACECOMPARE_SIGV4_REPLAY"):
        ServerConfig.from_env({"FACECOMPARE_SIGV4_REPLAY": "maybe"})
    config.warm = False
    with TestClient(create_app(verifier.settings, config, verifier=verifier, s3=S3Reader()), base_url=URL) as c:
        response, (body, headers) = call(c, "CreateCollection", {"CollectionId": "again"})
        assert response.status_code == 200
        assert c.post("/", content=body, headers=headers).json()["__type"] == "ResourceAlreadyExistsException"


def test_the_memory_of_signatures_is_bounded_by_the_window():
    seen = sigv4.ReplayGuard(window_seconds=300, max_entries=3)
    assert seen.first_use("a", now=0) and seen.first_use("b", now=1) and not seen.first_use("a", now=2)
    assert seen.first_use("a", now=302)  # past the window (and the skew), it would be refused as expired anyway
    for i in range(10):
        seen.first_use(f"x{i}", now=400)
    assert len(seen) <= 3  # a flood of signatures cannot grow it without bound
    seen.forget("x9")
    assert seen.first_use("x9", now=401)
