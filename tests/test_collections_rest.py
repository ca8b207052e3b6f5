"""The REST API's collection routes against a real ``facecompare serve`` (its uvicorn protocol, the API key, the
pipeline) on a SQLite store: the whole lifecycle on real faces (multipart and JSON bodies, paging, search by
image and by face id, erasure), the errors in the REST shape with their statuses, and the OpenAPI document."""

from __future__ import annotations

import base64
import uuid

import httpx
import pytest

from conftest import ServeProcess

ACCESS, SECRET = "AKIDCOLLRESTTEST", "coll-rest-secret"
API_KEY = "coll-rest-key"
KEY = {"X-API-Key": API_KEY}
TIMEOUT = httpx.Timeout(60.0)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = tmp_path_factory.mktemp("coll-rest")
    running = ServeProcess(root, access=ACCESS, secret=SECRET, api_key_name="coll", api_key=API_KEY,
                           env={"FACECOMPARE_COLLECTIONS": f"sqlite:///{root / 'collections.db'}"})
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def _file(fixtures, name: str) -> tuple[str, bytes, str]:
    return (name, (fixtures / name).read_bytes(), "image/jpeg")


def _b64(fixtures, name: str) -> str:
    return base64.b64encode((fixtures / name).read_bytes()).decode()


def _call(service, method: str, path: str, headers: dict | None = None, **kwargs) -> httpx.Response:
    return httpx.request(method, service.url + path, headers={**KEY, **(headers or {})}, timeout=TIMEOUT, **kwargs)


def _error(response: httpx.Response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["type"] == kind and body["request_id"], body
    return body["error"]["message"]


def test_collection_lifecycle(service, fixtures):
    r = _call(service, "POST", "/v1/collections", json={"collection_id": "people", "tags": {"team": "kyc"}})
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["collection_id"] == "people" and created["face_count"] == 0
    assert created["face_model_version"] == "sface-2021dec-int8bq" and created["tags"] == {"team": "kyc"}
    _error(_call(service, "POST", "/v1/collections", json={"collection_id": "people"}), 409,
           "ResourceAlreadyExistsException")
    assert _call(service, "POST", "/v1/collections", json={"collection_id": "other"}).status_code == 200

    # index: multipart, JSON with base64, and an image with two faces of which only the largest is kept
    r = _call(service, "POST", "/v1/collections/people/faces", files={"image": _file(fixtures, "Colin_Powell_0001.jpg")},
              data={"external_image_id": "colin-1"})
    assert r.status_code == 200, r.text
    colin1 = r.json()["faces"][0]["face"]
    assert colin1["external_image_id"] == "colin-1" and r.json()["unindexed"] == []
    assert r.json()["faces"][0]["detail"]["BoundingBox"]["Width"] > 0
    r = _call(service, "POST", "/v1/collections/people/faces",
              json={"image": _b64(fixtures, "Colin_Powell_0002.jpg"), "external_image_id": "colin-2"})
    assert r.status_code == 200, r.text
    colin2 = r.json()["faces"][0]["face"]
    r = _call(service, "POST", "/v1/collections/people/faces", files={"image": _file(fixtures, "Serena_Williams_0001.jpg")})
    serena = r.json()["faces"][0]["face"]
    assert serena["external_image_id"] is None
    r = _call(service, "POST", "/v1/collections/people/faces", files={"image": _file(fixtures, "two_people.jpg")},
              data={"max_faces": "1", "quality_filter": "NONE"})
    assert r.status_code == 200, r.text
    two = r.json()
    assert len(two["faces"]) == 1 and [u["reasons"] for u in two["unindexed"]] == [["EXCEEDS_MAX_FACES"]]
    # indexing the same image again under the same external id stores nothing new and gives the same ids
    r = _call(service, "POST", "/v1/collections/people/faces", files={"image": _file(fixtures, "Colin_Powell_0001.jpg")},
              data={"external_image_id": "colin-1"})
    assert r.json()["faces"][0]["face"]["face_id"] == colin1["face_id"]

    r = _call(service, "GET", "/v1/collections/people")
    assert r.status_code == 200 and r.json()["face_count"] == 4
    listed = _call(service, "GET", "/v1/collections", params={"max_results": 1})
    assert [c["collection_id"] for c in listed.json()["collections"]] == ["other"] and listed.json()["next_token"]
    rest = _call(service, "GET", "/v1/collections", params={"next_token": listed.json()["next_token"]})
    assert [c["collection_id"] for c in rest.json()["collections"]] == ["people"] and "next_token" not in rest.json()

    # list faces a page at a time, and only some ids
    ids, token = [], None
    while True:
        r = _call(service, "GET", "/v1/collections/people/faces",
                  params={"max_results": 3, **({"next_token": token} if token else {})})
        assert r.status_code == 200, r.text
        ids += [f["face_id"] for f in r.json()["faces"]]
        token = r.json().get("next_token")
        if not token:
            break
    assert len(ids) == 4 and ids == sorted(ids) and {colin1["face_id"], colin2["face_id"], serena["face_id"]} <= set(ids)
    r = _call(service, "GET", "/v1/collections/people/faces",
              params=[("face_id", colin1["face_id"]), ("face_id", serena["face_id"])])
    assert sorted(f["face_id"] for f in r.json()["faces"]) == sorted([colin1["face_id"], serena["face_id"]])

    # search by image (its largest face) and by a stored face (which is left out of its own matches)
    r = _call(service, "POST", "/v1/collections/people/search", files={"image": _file(fixtures, "Colin_Powell_0002.jpg")},
              data={"threshold": "80"})
    assert r.status_code == 200, r.text
    found = r.json()
    assert {m["face"]["face_id"] for m in found["matches"]} == {colin1["face_id"], colin2["face_id"]}
    assert found["searched_face"]["BoundingBox"]["Width"] > 0
    similarities = [m["similarity"] for m in found["matches"]]
    assert similarities == sorted(similarities, reverse=True) and min(similarities) >= 80
    r = _call(service, "POST", "/v1/collections/people/search", json={"face_id": colin1["face_id"]})
    assert r.status_code == 200, r.text
    assert r.json()["searched_face_id"] == colin1["face_id"]
    assert [m["face"]["face_id"] for m in r.json()["matches"]] == [colin2["face_id"]]
    r = _call(service, "POST", "/v1/collections/people/search",
              json={"image": _b64(fixtures, "Tony_Blair_0001.jpg"), "threshold": 80})
    assert r.status_code == 200 and r.json()["matches"] == []

    # erase: faces (an unknown id is reported, not an error), then the collection
    unknown = str(uuid.uuid4())
    r = _call(service, "DELETE", "/v1/collections/people/faces", json={"face_ids": [serena["face_id"], unknown]})
    assert r.status_code == 200, r.text
    assert r.json()["deleted"] == [serena["face_id"]] and r.json()["not_found"] == [unknown]
    assert _call(service, "GET", "/v1/collections/people").json()["face_count"] == 3
    r = _call(service, "DELETE", "/v1/collections/people")
    assert r.status_code == 200 and r.json()["deleted"] is True
    _error(_call(service, "GET", "/v1/collections/people"), 404, "ResourceNotFoundException")
    _error(_call(service, "GET", "/v1/collections/people/faces"), 404, "ResourceNotFoundException")
    assert [c["collection_id"] for c in _call(service, "GET", "/v1/collections").json()["collections"]] == ["other"]


def test_collection_errors(service, fixtures):
    # the API key comes first: no key is a 401 on every route, whatever the rest of the request
    for method, path in (("POST", "/v1/collections"), ("GET", "/v1/collections"), ("GET", "/v1/collections/x"),
                         ("DELETE", "/v1/collections/x"), ("POST", "/v1/collections/x/faces"),
                         ("GET", "/v1/collections/x/faces?max_results=oops"), ("DELETE", "/v1/collections/x/faces"),
                         ("POST", "/v1/collections/x/search")):
        r = httpx.request(method, service.url + path, timeout=TIMEOUT)
        _error(r, 401, "UnauthorizedException")
    r = httpx.get(service.url + "/v1/collections", headers={"X-API-Key": "wrong"}, timeout=TIMEOUT)
    _error(r, 401, "UnauthorizedException")

    assert _call(service, "POST", "/v1/collections", json={"collection_id": "errs"}).status_code == 200
    message = _error(_call(service, "POST", "/v1/collections", json={"collection_id": "bad id!"}), 400,
                     "InvalidParameterException")
    assert "collection_id" in message
    _error(_call(service, "GET", "/v1/collections/bad%20id"), 400, "InvalidParameterException")
    _error(_call(service, "GET", "/v1/collections", params={"max_results": "many"}), 400, "InvalidParameterException")
    _error(_call(service, "GET", "/v1/collections", params={"max_results": 5000}), 400, "InvalidParameterException")
    _error(_call(service, "GET", "/v1/collections/errs/faces", params={"next_token": "forged"}), 400,
           "InvalidPaginationTokenException")
    _error(_call(service, "GET", "/v1/collections/missing"), 404, "ResourceNotFoundException")
    _error(_call(service, "POST", "/v1/collections/missing/faces", files={"image": _file(fixtures, "biden.jpg")}), 404,
           "ResourceNotFoundException")
    _error(_call(service, "DELETE", "/v1/collections/missing"), 404, "ResourceNotFoundException")

    message = _error(_call(service, "POST", "/v1/collections/errs/faces", json={}), 400, "InvalidParameterException")
    assert "image" in message
    _error(_call(service, "POST", "/v1/collections/errs/faces", json={"image": "%%%"}), 400, "InvalidParameterException")
    _error(_call(service, "POST", "/v1/collections/errs/faces", files={"image": ("x.jpg", b"junk", "image/jpeg")}), 400,
           "InvalidImageFormatException")
    _error(_call(service, "POST", "/v1/collections/errs/faces", json={"image": _b64(fixtures, "biden.jpg"),
                                                                       "quality_filter": "SOMETIMES"}),
           400, "InvalidParameterException")
    _error(_call(service, "POST", "/v1/collections/errs/faces", json={"image": _b64(fixtures, "biden.jpg"),
                                                                       "external_image_id": "has space"}),
           400, "InvalidParameterException")
    # an image without a face indexes nothing (200), but cannot be searched with
    r = _call(service, "POST", "/v1/collections/errs/faces", files={"image": _file(fixtures, "id_back_mrz_only_che.jpg")})
    assert r.status_code == 200 and r.json()["faces"] == [] and r.json()["unindexed"] == []
    _error(_call(service, "POST", "/v1/collections/errs/search", files={"image": _file(fixtures, "id_back_mrz_only_che.jpg")}),
           400, "InvalidParameterException")
    message = _error(_call(service, "POST", "/v1/collections/errs/search", json={"threshold": 90}), 400,
                     "InvalidParameterException")
    assert "exactly one of image" in message
    _error(_call(service, "POST", "/v1/collections/errs/search",
                 json={"face_id": str(uuid.uuid4()), "image": _b64(fixtures, "biden.jpg")}), 400, "InvalidParameterException")
    _error(_call(service, "POST", "/v1/collections/errs/search", json={"face_id": "not-a-uuid"}), 400,
           "InvalidParameterException")
    _error(_call(service, "POST", "/v1/collections/errs/search", json={"face_id": str(uuid.uuid4())}), 400,
           "InvalidParameterException")
    _error(_call(service, "POST", "/v1/collections/errs/search", json={"face_id": str(uuid.uuid4()), "threshold": 101}),
           400, "InvalidParameterException")
    _error(_call(service, "DELETE", "/v1/collections/errs/faces", json={"face_ids": []}), 400, "InvalidParameterException")
    _error(_call(service, "DELETE", "/v1/collections/errs/faces", content=b"{not json",
                 headers={"content-type": "application/json"}), 400, "InvalidParameterException")
    # the service still answers after all that
    assert _call(service, "GET", "/v1/collections/errs").json()["face_count"] == 0


def test_openapi_declares_the_collection_routes(service):
    doc = httpx.get(service.url + "/openapi.json", timeout=TIMEOUT).json()
    expected = {("/v1/collections", "post"): "CollectionCreated", ("/v1/collections", "get"): "CollectionList",
                ("/v1/collections/{collection_id}", "get"): "CollectionDescription",
                ("/v1/collections/{collection_id}", "delete"): "CollectionDeleted",
                ("/v1/collections/{collection_id}/faces", "post"): "IndexResult",
                ("/v1/collections/{collection_id}/faces", "get"): "FaceList",
                ("/v1/collections/{collection_id}/faces", "delete"): "FacesDeleted",
                ("/v1/collections/{collection_id}/search", "post"): "SearchResult"}
    for (path, method), model in expected.items():
        operation = doc["paths"][path][method]
        responses = operation["responses"]
        assert responses["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/" + model)
        assert {"400", "401"} <= set(responses) and "422" not in responses
        assert responses["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
        if "{collection_id}" in path:
            assert "404" in responses
            assert any(p["name"] == "collection_id" and p["in"] == "path" for p in operation["parameters"])
        assert operation["security"] == [{"apiKey": []}]
    assert "409" in doc["paths"]["/v1/collections"]["post"]["responses"]
    index = doc["paths"]["/v1/collections/{collection_id}/faces"]["post"]["requestBody"]["content"]
    assert set(index) == {"multipart/form-data", "application/json"}
    assert index["application/json"]["schema"]["properties"]["image"]["format"] == "byte"
    query = {p["name"] for p in doc["paths"]["/v1/collections/{collection_id}/faces"]["get"]["parameters"]}
    assert query == {"collection_id", "max_results", "next_token", "face_id", "user_id"}
    face = doc["components"]["schemas"]["StoredFace"]["properties"]
    assert "embedding" not in face and {"face_id", "image_id", "bounding_box", "confidence"} <= set(face)


# -- fuzzing: schemathesis on the collection routes of the document -----------------------------------------------

FUZZ_EXAMPLES = 30  # per operation and generation mode


@pytest.mark.fuzz
@pytest.mark.parametrize("mode", ["positive", "negative"])
@pytest.mark.parametrize("path, method", [("/v1/collections", "POST"), ("/v1/collections", "GET"),
                                          ("/v1/collections/{collection_id}", "GET"),
                                          ("/v1/collections/{collection_id}", "DELETE"),
                                          ("/v1/collections/{collection_id}/faces", "POST"),
                                          ("/v1/collections/{collection_id}/faces", "GET"),
                                          ("/v1/collections/{collection_id}/faces", "DELETE"),
                                          ("/v1/collections/{collection_id}/search", "POST")])
def test_collection_routes_conform_to_their_openapi_document(service, fixtures, path, method, mode):
    """Bodies, paths and queries generated from /openapi.json (valid and invalid), a fixture photo in the image
    of some valid ones and an existing collection in some paths, so that requests reach the engine and the
    store. Every response: no 5xx, a status, content type, headers and body the document declares, invalid input
    refused with a 4xx, no API key refused."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, assume, given, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        ignored_auth,
        negative_data_rejection,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
              response_schema_conformance, negative_data_rejection, ignored_auth]
    photos = [(fixtures / n).read_bytes() for n in ("Colin_Powell_0001.jpg", "two_people.jpg", "id_back_mrz_only_che.jpg")]
    _call(service, "POST", "/v1/collections", json={"collection_id": "fuzzed"})  # 200, or 409 once it exists
    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    operation = schemathesis.openapi.from_url(service.url + "/openapi.json")[path][method]
    statuses = []

    @given(case=operation.as_strategy(generation_mode=generation), photo=st.one_of(st.none(), st.integers(0, 2)),
           existing=st.booleans())
    @settings(max_examples=FUZZ_EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def fuzz(case, photo, existing):
        if generation is GenerationMode.POSITIVE:
            if existing and case.path_parameters and "collection_id" in case.path_parameters:
                case.path_parameters["collection_id"] = "fuzzed"
            if photo is not None and isinstance(case.body, dict) and "image" in case.body:
                data = photos[photo]
                case.body["image"] = base64.b64encode(data).decode() if case.media_type == "application/json" else data
        # a request line over h11's 16 KiB is cut by the protocol before any route (tests/test_limits.py)
        assume(len(str(case.query or "")) + len(str(case.path_parameters or "")) < 8000)
        response = case.call_and_validate(base_url=service.url, headers=KEY, checks=checks, timeout=60)
        statuses.append(response.status_code)

    fuzz()
    assert len(statuses) >= FUZZ_EXAMPLES // 3, statuses
    assert all(s < 500 for s in statuses)
