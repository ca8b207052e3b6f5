"""Users and tags through the REST API (``/v1/collections/{id}/users...``, ``/tags``) against a real ``facecompare
serve`` on SQLite: the KYC "enrol once, verify later" flow on real faces, the errors in the REST shape with their
statuses, the routes in /openapi.json, and schemathesis on them (the collection routes' fuzz test, reused)."""

from __future__ import annotations

import base64

import pytest

from test_collections_rest import _call, _error, service  # noqa: F401 (a fixture)
from test_collections_rest import test_collection_routes_conform_to_their_openapi_document as conform


def _b64(fixtures, name: str) -> str:
    return base64.b64encode((fixtures / f"{name}.jpg").read_bytes()).decode()


def _index(service, fixtures, name: str) -> str:  # noqa: F811
    r = _call(service, "POST", "/v1/collections/kyc-rest/faces", json={"image": _b64(fixtures, name),
                                                                        "max_faces": 1})
    assert r.status_code == 200, r.text
    return r.json()["faces"][0]["face"]["face_id"]


def test_enrol_once_verify_later(service, fixtures):  # noqa: F811
    assert _call(service, "POST", "/v1/collections", json={"collection_id": "kyc-rest"}).status_code == 200
    portrait, serena = _index(service, fixtures, "Colin_Powell_0001"), _index(service, fixtures, "Serena_Williams_0001")
    created = _call(service, "POST", "/v1/collections/kyc-rest/users", json={"user_id": "customer-1"})
    assert created.status_code == 200 and created.json()["status"] == "CREATED", created.text
    _error(_call(service, "POST", "/v1/collections/kyc-rest/users", json={"user_id": "customer-1"}), 409,
           "ConflictException")
    linked = _call(service, "POST", "/v1/collections/kyc-rest/users/customer-1/faces",
                   json={"face_ids": [portrait, serena]}).json()
    assert linked["changed"] == [portrait, serena] and linked["user"] == {"user_id": "customer-1", "status": "ACTIVE"}
    assert _call(service, "GET", "/v1/collections/kyc-rest").json()["user_count"] == 1
    assert _call(service, "DELETE", "/v1/collections/kyc-rest/users/customer-1/faces",
                 json={"face_ids": [serena]}).json()["changed"] == [serena]
    later = _call(service, "POST", "/v1/collections/kyc-rest/users/search",
                  files={"image": ("selfie.jpg", (fixtures / "Colin_Powell_0002.jpg").read_bytes(), "image/jpeg")})
    assert later.status_code == 200, later.text
    assert [m["user"]["user_id"] for m in later.json()["matches"]] == ["customer-1"]
    assert later.json()["matches"][0]["similarity"] >= 80 and later.json()["searched_face"]["Confidence"] > 90
    by_face = _call(service, "POST", "/v1/collections/kyc-rest/users/search", json={"face_id": serena}).json()
    assert by_face["searched_face_id"] == serena and by_face["matches"] == []
    listed = _call(service, "GET", "/v1/collections/kyc-rest/faces", params={"user_id": "customer-1"}).json()
    assert [(f["face_id"], f["user_id"]) for f in listed["faces"]] == [(portrait, "customer-1")]
    kept = _call(service, "DELETE", "/v1/collections/kyc-rest/faces", json={"face_ids": [portrait]}).json()
    assert kept["deleted"] == [] and kept["associated"] == [{"face_id": portrait, "user_id": "customer-1"}]
    users = _call(service, "GET", "/v1/collections/kyc-rest/users", params={"max_results": 1}).json()
    assert users["users"] == [{"user_id": "customer-1", "status": "ACTIVE"}] and "next_token" not in users
    assert _call(service, "DELETE", "/v1/collections/kyc-rest/users/customer-1").json()["deleted"] is True
    _error(_call(service, "DELETE", "/v1/collections/kyc-rest/users/customer-1"), 404, "ResourceNotFoundException")
    _error(_call(service, "DELETE", "/v1/collections/kyc-rest/users/not%20valid"), 400, "InvalidParameterException")
    _error(_call(service, "POST", "/v1/collections/kyc-rest/users/search", json={"face_id": serena,
                                                                              "user_id": "x"}),
           400, "InvalidParameterException")
    # tags
    assert _call(service, "POST", "/v1/collections/kyc-rest/tags", json={"tags": {"team": "kyc"}}).json()["tags"] \
        == {"team": "kyc"}
    assert _call(service, "DELETE", "/v1/collections/kyc-rest/tags", json={"keys": ["team"]}).json()["tags"] == {}
    assert _call(service, "GET", "/v1/collections/kyc-rest/tags").json()["tags"] == {}
    _error(_call(service, "GET", "/v1/collections/nope/tags"), 404, "ResourceNotFoundException")
    assert _call(service, "DELETE", "/v1/collections/kyc-rest").status_code == 200


USER_ROUTES = {("/v1/collections/{collection_id}/users", "post"): "UserCreated",
               ("/v1/collections/{collection_id}/users", "get"): "UserList",
               ("/v1/collections/{collection_id}/users/search", "post"): "UserSearchResult",
               ("/v1/collections/{collection_id}/users/{user_id}", "delete"): "UserDeleted",
               ("/v1/collections/{collection_id}/users/{user_id}/faces", "post"): "UserFacesChanged",
               ("/v1/collections/{collection_id}/users/{user_id}/faces", "delete"): "UserFacesChanged",
               ("/v1/collections/{collection_id}/tags", "get"): "Tags",
               ("/v1/collections/{collection_id}/tags", "post"): "Tags",
               ("/v1/collections/{collection_id}/tags", "delete"): "Tags"}


def test_openapi_declares_the_user_routes(service):  # noqa: F811
    import httpx

    doc = httpx.get(service.url + "/openapi.json", timeout=60).json()
    for (path, method), model in USER_ROUTES.items():
        operation = doc["paths"][path][method]
        assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/" + model)
        assert {"400", "401", "404"} <= set(operation["responses"]) and operation["security"] == [{"apiKey": []}]
        names = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
        assert names == ({"collection_id", "user_id"} if "{user_id}" in path else {"collection_id"})
    search = doc["paths"]["/v1/collections/{collection_id}/users/search"]["post"]["requestBody"]["content"]
    assert set(search) == {"multipart/form-data", "application/json"}


@pytest.mark.fuzz
@pytest.mark.parametrize("mode", ["positive", "negative"])
@pytest.mark.parametrize("path, method", [(p, m.upper()) for p, m in USER_ROUTES])
def test_user_routes_conform_to_their_openapi_document(service, fixtures, path, method, mode):  # noqa: F811
    conform(service, fixtures, path, method, mode)
