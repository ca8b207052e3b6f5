"""The native REST API: ``POST /v1/verify`` and ``POST /v1/detect``, multipart/form-data or JSON with base64, and
the face collections under ``/v1/collections`` (create, list, describe, delete; index, list and erase faces;
search by image or by face id), which call the pipeline's one
:class:`~facecompare.collections.service.Collections`. Their path and query parameters are read in the pipeline,
after the API key, and declared in the document by hand (:func:`_query_parameters`); an unknown collection is a
404 and an existing one a 409 (AWS answers both with a 400).

FastAPI routes: their OpenAPI operations (request bodies, responses, errors, the API key) are generated from
the pydantic models of :mod:`.rest_models`, which also validate the requests. Its steps of the request path
(:meth:`.pipeline.Pipeline.serve`): authentication is the API key; parsing is the body (multipart or JSON,
within the limits) into the operation's model; dispatch is one handler per operation. Errors are ``{"error":
{"type", "message"}, "request_id"}``."""

from __future__ import annotations

import base64
import io
import re

from fastapi import APIRouter, Security
from fastapi.security import APIKeyHeader
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..engine import other_faces, verification_dict
from ..errors import InvalidParameterException, quote_input
from ..rekognition import compared_face, detect_faces_response
from ..review.service import queue_mode
from . import sigv4
from .config import hash_api_key
from .edges import check_browser_request
from .pipeline import NOT_JSON, NOT_JSON_MESSAGE, Call, Pipeline, parse_json
from .protocol_errors import rest_error
from .rest_models import (
    COLLECTION_ID_PATTERN,
    FACE_ID_PATTERN,
    MAX_QUERY_FACE_IDS,
    USER_ID_PATTERN,
    CollectionCreate,
    CollectionCreated,
    CollectionDeleted,
    CollectionDescription,
    CollectionList,
    DeleteFacesJson,
    DetectForm,
    Detection,
    DetectJson,
    Error,
    FaceList,
    FacesDeleted,
    FacesQuery,
    IndexForm,
    IndexJson,
    IndexResult,
    ListQuery,
    SearchForm,
    SearchJson,
    SearchResult,
    TagKeysJson,
    Tags,
    TagsJson,
    UserCreate,
    UserCreated,
    UserDeleted,
    UserFacesChanged,
    UserFacesJson,
    UserList,
    UserSearchForm,
    UserSearchJson,
    UserSearchResult,
    UsersQuery,
    Verification,
    VerifyForm,
    VerifyJson,
    rest_flag,
    rest_threshold,
    validate,
)

__all__ = ["RestApi", "rest_error", "rest_flag", "rest_threshold"]

MAX_FORM_FIELDS = 10  # multipart fields besides the files, at most

# the document's API key (the check itself is RestApi.check_api_key, in the pipeline, before the body)
API_KEY = APIKeyHeader(name="X-API-Key", scheme_name="apiKey", auto_error=False,
                       description="an API key (`facecompare api-key`); `Authorization: Bearer KEY` works too")
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
ERROR_RESPONSES = {
    400: {"model": Error, "description": "invalid input: a malformed body, a bad parameter, an image that is not "
                                         "JPEG/PNG, too large, too small or has no face; a body over the size limit "
                                         "(ImageTooLargeException) or that did not arrive in time "
                                         "(RequestTimeoutException)"},
    401: {"model": Error, "description": "missing or invalid API key (UnauthorizedException)"},
    429: {"model": Error, "headers": _RETRY_AFTER,
          "description": "ThrottlingException: too many requests are waiting for the engine; retry after "
                         "Retry-After seconds"},
    500: {"model": Error, "description": "internal error, or the request took longer than the timeout "
                                         "(InternalServerError)"},
    503: {"model": Error, "headers": _RETRY_AFTER,
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


def png_b64(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


# -- one handler per operation: validated parameters in, the response out (run in an engine thread) ------------

def verify(pipeline: Pipeline, params: VerifyJson | VerifyForm) -> dict:
    verifier = pipeline.verifier
    s, d = verifier.load(params.selfie), verifier.load(params.document)
    s_img, d_img = verifier.analyze_pair(s, d, embed_first=1, embed_second=1)
    verification = verifier.decide(s_img, d_img, params.threshold)
    result = verification_dict(verification)
    if verification.decision in queue_mode(params.queue_review):
        case, _ = pipeline.review.queue({**result, "other_faces": other_faces(verification)}, verifier.recognizer.name,
                                        params.selfie, params.document, source="api",
                                        batch=params.review_batch, reference=params.review_reference)
        result["review_case_id"] = case.case_id
    if params.annotate:
        from ..draw import annotate_verification, panel

        result["annotated_png"] = png_b64(annotate_verification(panel(s, verification.selfie), panel(d, verification.document),
                                                                        verification))
    return result


def detect(pipeline: Pipeline, params: DetectJson | DetectForm) -> dict:
    verifier = pipeline.verifier
    decoded = verifier.load(params.image)
    analyzed = verifier.analyze(decoded, embed=0)
    result = {"faces": detect_faces_response(analyzed)["FaceDetails"], "width": analyzed.width,
              "height": analyzed.height, "rotation": analyzed.rotation}
    if params.annotate:
        from ..draw import annotate_detection, panel

        result["annotated_png"] = png_b64(annotate_detection(panel(decoded, analyzed), analyzed))
    return result


# -- collections (1:N search) ----------------------------------------------------------------------------------


def _box(box) -> dict:
    width, height, left, top = box
    return {"width": round(float(width), 6), "height": round(float(height), 6), "left": round(float(left), 6),
            "top": round(float(top), 6)}


def stored_face_dict(face) -> dict:
    """A :class:`~facecompare.collections.store.StoredFace` as the REST API shows it (never its embedding)."""
    return {"face_id": face.face_id, "image_id": face.image_id, "external_image_id": face.external_image_id,
            "bounding_box": _box(face.bounding_box), "confidence": round(float(face.confidence), 4),
            "indexed_at": round(float(face.indexed_at), 3), "user_id": face.user_id}


def collection_dict(info) -> dict:
    return {"collection_id": info.collection_id, "face_model_version": info.model, "face_count": info.face_count,
            "created_at": round(float(info.created_at), 3), "tags": dict(info.tags), "user_count": info.user_count}


def create_collection(pipeline: Pipeline, params: dict) -> dict:
    body: CollectionCreate = params["body"]
    return collection_dict(pipeline.collections.create_collection(body.collection_id, body.tags))


def list_collections(pipeline: Pipeline, params: dict) -> dict:
    query: ListQuery = params["query"]
    infos, token = pipeline.collections.list_collections(query.next_token, query.max_results)
    return {"collections": [collection_dict(i) for i in infos], **({"next_token": token} if token else {})}


def describe_collection(pipeline: Pipeline, params: dict) -> dict:
    return collection_dict(pipeline.collections.describe_collection(params["collection_id"]))


def delete_collection(pipeline: Pipeline, params: dict) -> dict:
    pipeline.collections.delete_collection(params["collection_id"])
    return {"collection_id": params["collection_id"], "deleted": True}


def index_faces(pipeline: Pipeline, params: dict) -> dict:
    body: IndexJson = params["body"]
    collections = pipeline.collections
    result = collections.index_faces(params["collection_id"], pipeline.verifier.load(body.image),
                                     external_image_id=body.external_image_id, max_faces=body.max_faces,
                                     quality_filter=body.quality_filter)
    return {"faces": [{"face": stored_face_dict(r.stored), "detail": compared_face(r.face)} for r in result.records],
            "unindexed": [{"face": compared_face(u.face), "reasons": list(u.reasons)} for u in result.unindexed],
            "face_model_version": collections.model_version, "image_width": result.image_width,
            "image_height": result.image_height}


def list_faces(pipeline: Pipeline, params: dict) -> dict:
    query: FacesQuery = params["query"]
    collections = pipeline.collections
    faces, token = collections.list_faces(params["collection_id"], query.next_token, query.max_results,
                                          query.face_ids, user_id=query.user_id)
    return {"faces": [stored_face_dict(f) for f in faces], **({"next_token": token} if token else {}),
            "face_model_version": collections.model_version}


def delete_faces(pipeline: Pipeline, params: dict) -> dict:
    body: DeleteFacesJson = params["body"]
    deleted, refused = pipeline.collections.delete_faces_with_reasons(params["collection_id"], body.face_ids)
    return {"deleted": list(deleted), "not_found": [r.face_id for r in refused if r.reason == "FACE_NOT_FOUND"],
            "associated": [{"face_id": r.face_id, "user_id": r.user_id} for r in refused
                           if r.reason == "ASSOCIATED_TO_AN_EXISTING_USER"]}


def search_faces(pipeline: Pipeline, params: dict) -> dict:
    body: SearchJson = params["body"]
    collections = pipeline.collections
    if body.face_id is not None:
        matches = collections.search_faces(params["collection_id"], body.face_id, max_faces=body.max_faces,
                                           threshold=body.threshold)
        searched = {"searched_face_id": body.face_id}
    else:
        result = collections.search_faces_by_image(params["collection_id"], pipeline.verifier.load(body.image),
                                                   max_faces=body.max_faces, threshold=body.threshold,
                                                   quality_filter=body.quality_filter)
        matches = result.matches
        searched = {"searched_face": compared_face(result.searched_face)}
    return {**searched, "matches": [{"similarity": round(float(m.similarity), 4), "face": stored_face_dict(m.face)}
                                    for m in matches],
            "face_model_version": collections.model_version}


# -- users (Rekognition's Users API) and tags ----------------------------------------------------------------


def user_dict(user) -> dict:
    return {"user_id": user.user_id, "status": user.status}


def create_user(pipeline: Pipeline, params: dict) -> dict:
    body: UserCreate = params["body"]
    return user_dict(pipeline.collections.create_user(params["collection_id"], body.user_id,
                                                      body.client_request_token))


def list_users(pipeline: Pipeline, params: dict) -> dict:
    query: UsersQuery = params["query"]
    users, token = pipeline.collections.list_users(params["collection_id"], query.next_token, query.max_results)
    return {"users": [user_dict(u) for u in users], **({"next_token": token} if token else {})}


def delete_user(pipeline: Pipeline, params: dict) -> dict:
    pipeline.collections.delete_user(params["collection_id"], params["user_id"])
    return {"user_id": params["user_id"], "deleted": True}


def _refusals(refused, low=()) -> list[dict]:
    return [{"face_id": r.face_id, "reason": r.reason, "user_id": r.user_id} for r in refused] + [
        {"face_id": f, "reason": "LOW_MATCH_CONFIDENCE", "similarity": round(float(c), 4)} for f, c in low]


def associate_faces(pipeline: Pipeline, params: dict) -> dict:
    body: UserFacesJson = params["body"]
    result = pipeline.collections.associate_faces(params["collection_id"], params["user_id"], body.face_ids,
                                                  user_match_threshold=body.user_match_threshold,
                                                  client_request_token=body.client_request_token)
    return {"changed": result.associated, "refused": _refusals(result.refused, result.low_confidence),
            "user": user_dict(result.user)}


def disassociate_faces(pipeline: Pipeline, params: dict) -> dict:
    body: UserFacesJson = params["body"]
    change = pipeline.collections.disassociate_faces(params["collection_id"], params["user_id"], body.face_ids,
                                                     client_request_token=body.client_request_token)
    return {"changed": change.changed, "refused": _refusals(change.refused), "user": user_dict(change.user)}


def search_users(pipeline: Pipeline, params: dict) -> dict:
    body: UserSearchJson = params["body"]
    collections = pipeline.collections
    out: dict = {}
    if body.image is not None:
        result = collections.search_users_by_image(params["collection_id"], pipeline.verifier.load(body.image),
                                                   user_match_threshold=body.threshold, max_users=body.max_users,
                                                   quality_filter=body.quality_filter)
        matches = result.matches
        if result.searched_face is not None:
            out["searched_face"] = compared_face(result.searched_face)
        out["unsearched"] = [{"face": compared_face(f), "reasons": list(r)} for f, r in result.unsearched]
    else:
        matches = collections.search_users(params["collection_id"], user_id=body.user_id, face_id=body.face_id,
                                           user_match_threshold=body.threshold, max_users=body.max_users)
        out["searched_face_id" if body.face_id else "searched_user_id"] = body.face_id or body.user_id
    return {**out, "matches": [{"similarity": round(float(m.similarity), 4), "user": user_dict(m.user)}
                               for m in matches], "face_model_version": collections.model_version}


def tag_collection(pipeline: Pipeline, params: dict) -> dict:
    body: TagsJson = params["body"]
    return {"tags": pipeline.collections.tag_collection(params["collection_id"], body.tags)}


def untag_collection(pipeline: Pipeline, params: dict) -> dict:
    body: TagKeysJson = params["body"]
    return {"tags": pipeline.collections.untag_collection(params["collection_id"], body.keys)}


def list_tags(pipeline: Pipeline, params: dict) -> dict:
    return {"tags": pipeline.collections.collection_tags(params["collection_id"])}


# operation -> (what its parameters come from: "body" (JSON, or multipart with the images), "json" (JSON only),
# "query" or nothing; its JSON model, its multipart model, its image fields, its handler)
COLLECTION_OPERATIONS = {
    "create_collection": ("json", CollectionCreate, None, (), create_collection),
    "list_collections": ("query", ListQuery, None, (), list_collections),
    "describe_collection": (None, None, None, (), describe_collection),
    "delete_collection": (None, None, None, (), delete_collection),
    "index_faces": ("body", IndexJson, IndexForm, ("image",), index_faces),
    "list_faces": ("query", FacesQuery, None, (), list_faces),
    "delete_faces": ("json", DeleteFacesJson, None, (), delete_faces),
    "search_faces": ("body", SearchJson, SearchForm, ("image",), search_faces),
    "create_user": ("json", UserCreate, None, (), create_user),
    "list_users": ("query", UsersQuery, None, (), list_users),
    "delete_user": (None, None, None, (), delete_user),
    "associate_faces": ("json", UserFacesJson, None, (), associate_faces),
    "disassociate_faces": ("json", UserFacesJson, None, (), disassociate_faces),
    "search_users": ("body", UserSearchJson, UserSearchForm, ("image",), search_users),
    "tag_collection": ("json", TagsJson, None, (), tag_collection),
    "untag_collection": ("json", TagKeysJson, None, (), untag_collection),
    "list_tags": (None, None, None, (), list_tags),
}


COLLECTION_ID_PARAMETER = {"name": "collection_id", "in": "path", "required": True,
                           "description": "the collection's id (1-255 characters of [a-zA-Z0-9_.-])",
                           "schema": {"type": "string", "pattern": COLLECTION_ID_PATTERN}}
USER_ID_PARAMETER = {"name": "user_id", "in": "path", "required": True,
                     "description": "the user's id (1-128 characters of [a-zA-Z0-9_.-:])",
                     "schema": {"type": "string", "pattern": USER_ID_PATTERN}}


def _query_parameters(model) -> dict:
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


# operation -> (its JSON model, its multipart model, its image fields, its handler)
OPERATIONS = {
    "verify": (VerifyJson, VerifyForm, ("selfie", "document"), verify),
    "detect": (DetectJson, DetectForm, ("image",), detect),
}


class RestApi:
    """The REST surface (:class:`.pipeline.Surface`) and its FastAPI routes."""

    name = "rest"

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def router(self) -> APIRouter:
        router = APIRouter(responses=ERROR_RESPONSES)
        router.add_api_route("/v1/verify", self.verify_route, methods=["POST"], response_model=None, operation_id="verify",
                             summary="KYC decision for a selfie and an ID-document photo",
                             responses={200: {"model": Verification, "description": "the decision"}},
                             openapi_extra=request_body(VerifyJson, VerifyForm))
        router.add_api_route("/v1/detect", self.detect_route, methods=["POST"], response_model=None, operation_id="detect",
                             summary="Faces in an image (boxes, landmarks, pose, quality)",
                             responses={200: {"model": Detection, "description": "the faces"}},
                             openapi_extra=request_body(DetectJson, DetectForm))
        self._collection_routes(router)
        return router

    def _collection_routes(self, router: APIRouter) -> None:
        def route(path: str, operation: str, method: str, model, summary: str, extra: dict | None = None,
                  not_found: bool = True, conflict: bool = False) -> None:
            async def endpoint(request: Request, api_key: str | None = Security(API_KEY)) -> Response:
                return await self.pipeline.serve(self, request, f"v1/{operation}")

            responses = {200: {"model": model, "description": summary.lower()}}
            if not_found:
                responses.update(NOT_FOUND_RESPONSES)
            if conflict:
                responses[409] = {"model": Error, "description": "a collection of that id exists "
                                                                 "(ResourceAlreadyExistsException)"}
            extra = dict(extra or {})
            if "{collection_id}" in path:  # read in the pipeline, after the API key (so not a FastAPI parameter)
                extra["parameters"] = [COLLECTION_ID_PARAMETER, *(
                    [USER_ID_PARAMETER] if "{user_id}" in path else []), *extra.get("parameters", [])]
            router.add_api_route(path, endpoint, methods=[method], response_model=None, operation_id=operation,
                                 summary=summary, responses=responses, openapi_extra=extra, tags=["collections"])

        route("/v1/collections", "create_collection", "POST", CollectionCreated,
              "Create a collection (bound to the service's recognizer)", json_body(CollectionCreate), False, True)
        route("/v1/collections", "list_collections", "GET", CollectionList, "List the collections, a page at a time",
              _query_parameters(ListQuery), False)
        route("/v1/collections/{collection_id}", "describe_collection", "GET", CollectionDescription,
              "Describe a collection")
        route("/v1/collections/{collection_id}", "delete_collection", "DELETE", CollectionDeleted,
              "Delete a collection and erase all its faces")
        route("/v1/collections/{collection_id}/faces", "index_faces", "POST", IndexResult,
              "Index the faces of an image (the largest first)", request_body(IndexJson, IndexForm))
        route("/v1/collections/{collection_id}/faces", "list_faces", "GET", FaceList,
              "List a collection's faces, a page at a time", _query_parameters(FacesQuery))
        route("/v1/collections/{collection_id}/faces", "delete_faces", "DELETE", FacesDeleted,
              "Erase faces from a collection", json_body(DeleteFacesJson))
        route("/v1/collections/{collection_id}/search", "search_faces", "POST", SearchResult,
              "Search a collection with an image's largest face, or with a face of the collection",
              request_body(SearchJson, SearchForm))
        users = "/v1/collections/{collection_id}/users"
        route(users, "create_user", "POST", UserCreated, "Create a user (Rekognition's CreateUser)",
              json_body(UserCreate), conflict=True)
        route(users, "list_users", "GET", UserList, "List a collection's users, a page at a time",
              _query_parameters(UsersQuery))
        route(users + "/search", "search_users", "POST", UserSearchResult,
              "Search the users with an image's largest face, a face of the collection or a user",
              request_body(UserSearchJson, UserSearchForm))
        route(users + "/{user_id}", "delete_user", "DELETE", UserDeleted,
              "Delete a user (its faces stay in the collection, associated to nobody)")
        route(users + "/{user_id}/faces", "associate_faces", "POST", UserFacesChanged,
              "Associate faces to a user (at most 100 per user)", json_body(UserFacesJson))
        route(users + "/{user_id}/faces", "disassociate_faces", "DELETE", UserFacesChanged,
              "Disassociate faces from a user", json_body(UserFacesJson))
        tags = "/v1/collections/{collection_id}/tags"
        route(tags, "list_tags", "GET", Tags, "A collection's tags")
        route(tags, "tag_collection", "POST", Tags, "Set tags on a collection (at most 200)", json_body(TagsJson))
        route(tags, "untag_collection", "DELETE", Tags, "Remove tags from a collection", json_body(TagKeysJson))


    # the API key parameter only puts the scheme in the document: the check is authenticate(), in the pipeline
    async def verify_route(self, request: Request, api_key: str | None = Security(API_KEY)) -> Response:
        return await self.pipeline.serve(self, request, "v1/verify")

    async def detect_route(self, request: Request, api_key: str | None = Security(API_KEY)) -> Response:
        return await self.pipeline.serve(self, request, "v1/detect")

    error = staticmethod(rest_error)

    def authenticate(self, request: Request) -> str | None:
        """The API key's name (for the log line), after the checks against forged browser requests (edges.py)."""
        check_browser_request(request.method, request.headers, request.url.scheme,
                              self.pipeline.config.console_origins)
        return self.check_api_key(request)

    def operation_hint(self, request: Request) -> str | None:
        return None  # the route named it

    async def parse(self, request: Request, auth: None, context: dict) -> Call:
        operation = context["operation"].removeprefix("v1/")
        if operation in COLLECTION_OPERATIONS:
            return await self.collection_call(request, operation)
        json_model, form_model, images, handler = OPERATIONS[operation]
        return Call(handler, await self.params(request, json_model, form_model, images))

    async def collection_call(self, request: Request, operation: str) -> Call:
        source, json_model, form_model, images, handler = COLLECTION_OPERATIONS[operation]
        params: dict = {}
        if "collection_id" in request.path_params:
            collection_id = request.path_params["collection_id"]
            if not re.match(COLLECTION_ID_PATTERN, collection_id):
                raise InvalidParameterException(f"Request has invalid parameters: collection id "
                                                f"{quote_input(collection_id)} is not 1-255 characters of "
                                                "[a-zA-Z0-9_.-].")
            params["collection_id"] = collection_id
        if "user_id" in request.path_params:
            user_id = request.path_params["user_id"]
            if not re.match(USER_ID_PATTERN, user_id):
                raise InvalidParameterException(f"Request has invalid parameters: user id {quote_input(user_id)} is "
                                                "not 1-128 characters of [a-zA-Z0-9_.-:].")
            params["user_id"] = user_id
        if source == "query":
            query = dict(request.query_params)
            unknown = sorted(set(query) - set(json_model.model_fields) - {"face_id"} | ({"face_ids"} & set(query)))
            if unknown:
                raise InvalidParameterException(f"Request has invalid parameters: unknown query parameter(s) "
                                                f"{quote_input(unknown)}.")
            if "face_id" in request.query_params:
                query["face_ids"] = request.query_params.getlist("face_id")
            params["query"] = validate(json_model, query, ())
        elif source == "json":
            if request.headers.get("content-type", "").startswith("multipart/form-data"):
                raise InvalidParameterException("This operation takes a JSON body (application/json).")
            params["body"] = await self.params(request, json_model, None, ())
        elif source == "body":
            params["body"] = await self.params(request, json_model, form_model, images)
        return Call(handler, params)

    @staticmethod
    def respond(result: dict, request_id: str) -> Response:
        result["request_id"] = request_id
        return JSONResponse(result, headers={"x-request-id": request_id})

    def check_api_key(self, request: Request) -> str | None:
        config = self.pipeline.config
        if not config.auth:
            return
        key = request.headers.get("x-api-key") or ""
        bearer = request.headers.get("authorization", "")
        if not key and bearer.lower().startswith("bearer "):
            key = bearer[7:].strip()
        digest = hash_api_key(key) if key else ""
        if not key or digest not in config.api_key_hashes:
            raise sigv4.AuthError("UnauthorizedException", "Missing or invalid API key (header X-API-Key).", 401)
        return config.api_key_names.get(digest) or f"key-{digest[:8]}"

    async def params(self, request: Request, json_model, form_model, images: tuple[str, ...]):
        """The request's parameters as the operation's model: multipart/form-data (files for the images), or
        JSON (base64 for the images)."""
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            return validate(form_model, await self.form_fields(request, images), images)
        payload = parse_json(await self.pipeline.read_body(request))
        if payload is NOT_JSON:
            raise InvalidParameterException(NOT_JSON_MESSAGE)
        if not isinstance(payload, dict):
            raise InvalidParameterException("The request body must be a JSON object.")
        return validate(json_model, payload, images)

    async def form_fields(self, request: Request, images: tuple[str, ...]) -> dict:
        """The fields of a multipart body, parsed by Starlette (python-multipart) within the limits: at most
        one file per image and MAX_FORM_FIELDS other fields, each part within FACECOMPARE_MAX_BODY_BYTES; an
        image is the bytes of a file (a text field of that name does not count)."""
        self.pipeline.check_declared_length(request)
        try:
            form = await request.form(max_files=len(images), max_fields=MAX_FORM_FIELDS,
                                      max_part_size=self.pipeline.config.max_body_bytes)
        except (HTTPException, MultiPartException) as exc:  # no boundary, a broken part, too many parts
            detail = exc.detail if isinstance(exc, HTTPException) else exc.message
            raise InvalidParameterException(
                f"Request has invalid parameters: the multipart/form-data body is malformed ({detail})"
            ) from None
        # the parts were counted against FACECOMPARE_MAX_BODY_BYTES as they streamed (BodyGuard), so what
        # Starlette spooled (to disk past 1 MiB a file) is bounded; the spool files go when the form closes
        fields: dict = {}
        try:
            for key, value in form.multi_items():
                if key in images and hasattr(value, "read"):
                    fields[key] = await value.read()
                elif key not in images:
                    fields[key] = value  # a text field, or a file where a text field belongs (refused)
        finally:
            await form.close()
        return fields
