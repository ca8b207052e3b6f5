"""``queue_review`` on ``POST /v1/verify`` against a real ``facecompare serve`` (its uvicorn protocol, the API key,
the pipeline) on a SQLite store: what is queued for each decision and mode, in JSON and multipart bodies, what the
case keeps (both images byte for byte, the labels, the evidence), the errors in the REST shape, and the OpenAPI
document."""

from __future__ import annotations

import base64

import httpx
import pytest

from conftest import ServeProcess
from facecompare.review.service import open_queue
from facecompare.review.store import CaseFilter

ACCESS, SECRET = "AKIDREVIEWRESTTEST", "review-rest-secret"
API_KEY = "review-rest-key"
KEY = {"X-API-Key": API_KEY}
TIMEOUT = httpx.Timeout(60.0)
ALL = CaseFilter(statuses=())
REVIEW_PAIR = ("Tony_Blair_0001.jpg", "passport_specimen_cze.jpg")  # MULTIPLE_FACES_IN_SELFIE
NO_DOC_FACE = ("Serena_Williams_0001.jpg", "id_back_mrz_only_che.jpg")  # NO_FACE_ON_DOCUMENT
NO_MATCH_PAIR = ("obama.jpg", "biden.jpg")
MATCH_PAIR = ("Colin_Powell_0001.jpg", "Colin_Powell_0002.jpg")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = tmp_path_factory.mktemp("review-rest")
    url = f"sqlite:///{root / 'collections.db'}"
    running = ServeProcess(root, access=ACCESS, secret=SECRET, api_key_name="review", api_key=API_KEY,
                           env={"FACECOMPARE_COLLECTIONS": url, "FACECOMPARE_REVIEW_RETENTION_DAYS": "30"})
    running.store_url = url
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest.fixture
def queue(service):
    opened = open_queue(service.store_url, environ={})
    try:
        yield opened
    finally:
        opened.store.close()


def _json(service, fixtures, pair, **fields) -> httpx.Response:
    body = {"selfie": base64.b64encode((fixtures / pair[0]).read_bytes()).decode(),
            "document": base64.b64encode((fixtures / pair[1]).read_bytes()).decode(), **fields}
    return httpx.post(service.url + "/v1/verify", json=body, headers=KEY, timeout=TIMEOUT)


def _multipart(service, fixtures, pair, **fields) -> httpx.Response:
    files = {"selfie": (pair[0], (fixtures / pair[0]).read_bytes(), "image/jpeg"),
             "document": (pair[1], (fixtures / pair[1]).read_bytes(), "image/jpeg")}
    return httpx.post(service.url + "/v1/verify", files=files, data=fields, headers=KEY, timeout=TIMEOUT)


def _ok(response: httpx.Response, decision: str) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["decision"] == decision, body
    return body


def _error(response: httpx.Response, kind: str = "InvalidParameterException") -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"]["type"] == kind and body["request_id"], body
    return body["error"]["message"]


def _count(queue) -> int:
    return queue.store.count_cases(ALL)


def _stored_images_are(queue, case_id: str, fixtures, pair) -> None:
    for role, name in zip(("selfie", "document"), pair):
        image = queue.store.get_image(case_id, role)
        assert image is not None and image.media_type == "image/jpeg" and image.data == (fixtures / name).read_bytes()


def test_json_review_pair_is_queued_with_its_images(service, queue, fixtures):
    before = _count(queue)
    body = _ok(_json(service, fixtures, REVIEW_PAIR, queue_review="review", review_batch="branch 7 / morning",
                     review_reference="kyc-0042 é"), "REVIEW")
    assert body["reasons"] == ["MULTIPLE_FACES_IN_SELFIE"] and body["review_case_id"]
    case = queue.store.get_case(body["review_case_id"])
    assert _count(queue) == before + 1
    assert case.source == "api" and case.status == "OPEN" and case.engine_decision == "REVIEW"
    assert case.batch == "branch 7 / morning" and case.reference == "kyc-0042 é"
    assert case.model == "sface-2021dec-int8bq" and case.reasons == body["reasons"]
    assert case.similarity == body["similarity"] and case.distance == body["distance"]
    assert case.threshold == body["threshold"] and list(case.review_band) == body["review_band"]
    _stored_images_are(queue, case.case_id, fixtures, REVIEW_PAIR)
    # the evidence the console shows: the compared faces, and the second face of the selfie (drawn in grey)
    assert case.evidence["selfie_face"] == body["selfie_face"] and case.evidence["document_face"] == body["document_face"]
    assert case.evidence["selfie_faces"] == body["selfie_faces"] == 2
    [other] = case.evidence["other_faces"]["selfie"]
    assert set(other) == {"left", "top", "width", "height"} and 0 < other["width"] < 1 and 0 < other["height"] < 1
    assert other != {k: body["selfie_face"]["bounding_box"][k] for k in other}  # not the compared face
    assert "other_faces" not in body  # the response keeps its documented shape


def test_multipart_review_pair_is_queued(service, queue, fixtures):
    body = _ok(_multipart(service, fixtures, NO_DOC_FACE, queue_review="review", review_batch="uploads",
                          review_reference="ref-7"), "REVIEW")
    assert body["reasons"] == ["NO_FACE_ON_DOCUMENT"]
    case = queue.store.get_case(body["review_case_id"])
    assert case.source == "api" and case.batch == "uploads" and case.reference == "ref-7"
    assert case.similarity is None and case.distance is None and case.evidence["document_faces"] == 0
    _stored_images_are(queue, case.case_id, fixtures, NO_DOC_FACE)
    # without labels: none stored, and each call is a case of its own
    again = _ok(_multipart(service, fixtures, NO_DOC_FACE, queue_review="review"), "REVIEW")
    assert again["review_case_id"] != body["review_case_id"]
    case = queue.store.get_case(again["review_case_id"])
    assert case.batch is None and case.reference is None


@pytest.mark.parametrize("send", [_json, _multipart], ids=["json", "multipart"])
def test_only_the_decisions_of_the_mode_are_queued(service, queue, fixtures, send):
    before = _count(queue)
    # MATCH is never queued
    for mode in ("review", "review_or_no_match"):
        assert _ok(send(service, fixtures, MATCH_PAIR, queue_review=mode), "MATCH").get("review_case_id") is None
    # queue_review=none, or no queue_review at all: a REVIEW pair is not kept
    assert _ok(send(service, fixtures, REVIEW_PAIR, queue_review="none"), "REVIEW").get("review_case_id") is None
    assert _ok(send(service, fixtures, REVIEW_PAIR, review_batch="b"), "REVIEW").get("review_case_id") is None
    # NO_MATCH only with review_or_no_match
    assert _ok(send(service, fixtures, NO_MATCH_PAIR, queue_review="review"), "NO_MATCH").get("review_case_id") is None
    assert _count(queue) == before
    body = _ok(send(service, fixtures, NO_MATCH_PAIR, queue_review="review_or_no_match"), "NO_MATCH")
    case = queue.store.get_case(body["review_case_id"])
    assert case.engine_decision == "NO_MATCH" and case.similarity == body["similarity"] and case.source == "api"
    _stored_images_are(queue, case.case_id, fixtures, NO_MATCH_PAIR)
    assert _count(queue) == before + 1


@pytest.mark.parametrize("send", [_json, _multipart], ids=["json", "multipart"])
@pytest.mark.parametrize("fields, named", [
    ({"queue_review": "always"}, "queue_review"),
    ({"queue_review": ""}, "queue_review"),
    ({"queue_review": "review", "review_batch": "bad\x01label"}, "review_batch"),
    ({"queue_review": "review", "review_batch": "line\nfeed"}, "review_batch"),
    ({"queue_review": "review", "review_batch": "ends in a line feed\n"}, "review_batch"),
    ({"queue_review": "review", "review_reference": "tab\there"}, "review_reference"),
    ({"queue_review": "review", "review_reference": "x" * 201}, "review_reference"),
    ({"queue_review": "review", "review_batch": ""}, "review_batch"),
])
def test_invalid_review_parameters_are_400(service, queue, fixtures, send, fields, named):
    before = _count(queue)
    message = _error(send(service, fixtures, REVIEW_PAIR, **fields))
    assert named in message
    assert _count(queue) == before


def test_openapi_documents_queue_review_and_the_case_id(service):
    spec = httpx.get(service.url + "/openapi.json", timeout=TIMEOUT).json()
    verify = spec["paths"]["/v1/verify"]["post"]
    components = spec.get("components", {}).get("schemas", {})

    def resolve(schema: dict) -> dict:
        while "$ref" in schema:
            schema = components[schema["$ref"].rsplit("/", 1)[1]]
        return schema

    for content_type in ("application/json", "multipart/form-data"):
        schema = resolve(verify["requestBody"]["content"][content_type]["schema"])
        defs = schema.get("$defs", {})
        properties = schema["properties"]
        queue_review = properties["queue_review"]
        queue_review = defs.get(queue_review.get("$ref", "#/$defs/-").rsplit("/", 1)[1], queue_review)
        assert queue_review["enum"] == ["none", "review", "review_or_no_match"], content_type
        assert queue_review.get("default", properties["queue_review"].get("default")) == "none"
        assert "console" in (properties["queue_review"].get("description") or queue_review.get("description"))
        assert {"review_batch", "review_reference"} <= set(properties), content_type
    response = resolve(verify["responses"]["200"]["content"]["application/json"]["schema"])
    assert "review_case_id" in response["properties"]
    assert "/console" in response["properties"]["review_case_id"]["description"]
