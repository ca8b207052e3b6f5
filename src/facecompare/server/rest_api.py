"""The native REST API: ``POST /v1/verify`` and ``POST /v1/detect``, multipart/form-data or JSON with base64, and
the face collections under ``/v1/collections`` (create, list, describe, delete; index, list and erase faces;
search by image or by face id; users; tags), which call the pipeline's one
:class:`~facecompare.collections.service.Collections` (their handlers: :mod:`.rest_collections`). Their path and
query parameters are read in the pipeline, after the API key, and declared in the document by hand
(:mod:`.rest_openapi`); an unknown collection is a 404 and an existing one a 409 (AWS answers both with a 400).

FastAPI routes: their OpenAPI operations (request bodies, responses, errors, the API key) are generated from
the pydantic models of :mod:`.rest_models` and :mod:`.rest_collection_models`, which also validate the
requests. Its steps of the request path (:meth:`.pipeline.Pipeline.serve`): authentication is the API key;
parsing is the body (multipart or JSON, within the limits) into the operation's model; dispatch is one handler
per operation. Errors are ``{"error": {"type", "message"}, "request_id"}`` (:func:`.protocol_errors.rest_error`)."""

from __future__ import annotations

import base64
import io
import re

from fastapi import APIRouter, Security
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import InvalidParameterException, quote_input
from ..native import verification_dict
from ..rekognition import detect_faces_response
from ..review.service import queue_mode, verify_and_queue
from . import sigv4
from .config import hash_api_key
from .edges import check_browser_request
from .pipeline import NOT_JSON, NOT_JSON_MESSAGE, Call, Pipeline, parse_json
from .protocol_errors import rest_error
from .rest_collection_models import (
    COLLECTION_ID_PATTERN,
    USER_ID_PATTERN,
    CollectionCreate,
    CollectionCreated,
    CollectionDeleted,
    CollectionDescription,
    CollectionList,
    DeleteFacesJson,
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
)
from .rest_collections import COLLECTION_OPERATIONS
from .rest_models import (
    DetectForm,
    Detection,
    DetectJson,
    Error,
    Verification,
    VerifyForm,
    VerifyJson,
    rest_flag,
    rest_threshold,
    validate,
)
from .rest_openapi import (
    API_KEY,
    COLLECTION_ID_PARAMETER,
    ERROR_RESPONSES,
    NOT_FOUND_RESPONSES,
    USER_ID_PARAMETER,
    json_body,
    query_parameters,
    request_body,
)

__all__ = ["RestApi", "rest_error", "rest_flag", "rest_threshold"]

MAX_FORM_FIELDS = 10  # multipart fields besides the files, at most

def png_b64(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


# -- one handler per operation: validated parameters in, the response out (run in an engine thread) ------------

def verify(pipeline: Pipeline, params: VerifyJson | VerifyForm) -> dict:
    verifier = pipeline.verifier
    s, d = verifier.load(params.selfie), verifier.load(params.document)
    verified = verify_and_queue(verifier, s, d, params.threshold, queue_mode(params.queue_review),
                                lambda: pipeline.review, lambda: (params.selfie, params.document), source="api",
                                batch=params.review_batch, reference=params.review_reference)
    verification = verified.verification
    result = verification_dict(verification)
    if verified.case is not None:
        result["review_case_id"] = verified.case.case_id
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
              query_parameters(ListQuery), False)
        route("/v1/collections/{collection_id}", "describe_collection", "GET", CollectionDescription,
              "Describe a collection")
        route("/v1/collections/{collection_id}", "delete_collection", "DELETE", CollectionDeleted,
              "Delete a collection and erase all its faces")
        route("/v1/collections/{collection_id}/faces", "index_faces", "POST", IndexResult,
              "Index the faces of an image (the largest first)", request_body(IndexJson, IndexForm))
        route("/v1/collections/{collection_id}/faces", "list_faces", "GET", FaceList,
              "List a collection's faces, a page at a time", query_parameters(FacesQuery))
        route("/v1/collections/{collection_id}/faces", "delete_faces", "DELETE", FacesDeleted,
              "Erase faces from a collection", json_body(DeleteFacesJson))
        route("/v1/collections/{collection_id}/search", "search_faces", "POST", SearchResult,
              "Search a collection with an image's largest face, or with a face of the collection",
              request_body(SearchJson, SearchForm))
        users = "/v1/collections/{collection_id}/users"
        route(users, "create_user", "POST", UserCreated, "Create a user (Rekognition's CreateUser)",
              json_body(UserCreate), conflict=True)
        route(users, "list_users", "GET", UserList, "List a collection's users, a page at a time",
              query_parameters(UsersQuery))
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
