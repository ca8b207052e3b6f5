"""The parts of the REST API's OpenAPI document that FastAPI does not derive from the routes: the API key scheme,
the error responses of every route, the request bodies that take JSON or multipart, and the path and query
parameters (the routes read them in the pipeline, after the API key, so FastAPI does not see them)."""

from __future__ import annotations

from fastapi.security import APIKeyHeader

from .rest_collection_models import COLLECTION_ID_PATTERN, FACE_ID_PATTERN, MAX_QUERY_FACE_IDS, USER_ID_PATTERN
from .rest_models import Error

# the document's API key (the check itself is RestApi.check_api_key, in the pipeline, before the body)
API_KEY = APIKeyHeader(name="X-API-Key", scheme_name="apiKey", auto_error=False,
                       description="an API key (`facecompare api-key`); `Authorization: Bearer KEY` works too")
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
ERROR_RESPONSES = {
    400: {"model": Error, "description": "invalid input: a malformed body, a bad parameter, an image that is not "
                                         "JPEG/PNG, too large, too small or has no face; a body over the size limit "
                                         "(ImageTooLargeException) or that did not arrive in time "
                                         "(RequestTimeoutException)"},
    401: {"model": Error, "description": "missing or invalid API key (UnauthorizedException)"},
    429: {"model": Error, "headers": RETRY_AFTER,
          "description": "ThrottlingException: too many requests are waiting for the engine; retry after "
                         "Retry-After seconds"},
    500: {"model": Error, "description": "internal error, or the request took longer than the timeout "
                                         "(InternalServerError)"},
    503: {"model": Error, "headers": RETRY_AFTER,
          "description": "ThrottlingException: the server has too many connections open; retry after "
                         "Retry-After seconds"},
}


def request_body(json_model, form_model) -> dict:
    """The OpenAPI requestBody of an operation that takes either content type, from its two models."""
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": form_model.model_json_schema()},
        "application/json": {"schema": json_model.model_json_schema()},
    }}}


NOT_FOUND_RESPONSES = {
    404: {"model": Error, "description": "no collection of that id (ResourceNotFoundException)"},
}


COLLECTION_ID_PARAMETER = {"name": "collection_id", "in": "path", "required": True,
                           "description": "the collection's id (1-255 characters of [a-zA-Z0-9_.-])",
                           "schema": {"type": "string", "pattern": COLLECTION_ID_PATTERN}}
USER_ID_PARAMETER = {"name": "user_id", "in": "path", "required": True,
                     "description": "the user's id (1-128 characters of [a-zA-Z0-9_.-:])",
                     "schema": {"type": "string", "pattern": USER_ID_PATTERN}}


def query_parameters(model) -> dict:
    """The OpenAPI query parameters of a query model (the routes read them in the pipeline, after the API key)."""
    schema = model.model_json_schema()
    parameters = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        if name == "face_ids":
            parameters.append({"name": "face_id", "in": "query", "required": False, "explode": True,
                               "description": f"only these faces (repeat the parameter, at most "
                                              f"{MAX_QUERY_FACE_IDS} times)",
                               "schema": {"type": "array", "items": {"type": "string", "pattern": FACE_ID_PATTERN},
                                          "maxItems": MAX_QUERY_FACE_IDS}})
            continue
        options = prop.pop("anyOf", None)
        if options:
            prop.update(next(o for o in options if o.get("type") != "null"))
        prop.pop("default", None)
        description = prop.pop("description", None)
        parameters.append({"name": name, "in": "query", "required": False, "schema": prop,
                           **({"description": description} if description else {})})
    return {"parameters": parameters}


def json_body(model) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}
