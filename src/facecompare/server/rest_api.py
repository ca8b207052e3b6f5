"""The native REST API: ``POST /v1/verify`` and ``POST /v1/detect``, multipart/form-data or JSON with base64.

FastAPI routes: their OpenAPI operations (request bodies, responses, errors, the API key) are generated from
the pydantic models of :mod:`.rest_models`, which also validate the requests. Its steps of the request path
(:meth:`.pipeline.Pipeline.serve`): authentication is the API key; parsing is the body (multipart or JSON,
within the limits) into the operation's model; dispatch is one handler per operation. Errors are ``{"error":
{"type", "message"}, "request_id"}``."""

from __future__ import annotations

import base64
import io

from fastapi import APIRouter, Security
from fastapi.security import APIKeyHeader
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..engine import verification_dict
from ..errors import FaceCompareError, InvalidParameterException
from ..rekognition import detect_faces_response
from . import sigv4
from .config import hash_api_key
from .pipeline import NOT_JSON, NOT_JSON_MESSAGE, Call, Pipeline, parse_json, retry_headers
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


def rest_error(exc: FaceCompareError, request_id: str, status: int | None = None) -> JSONResponse:
    retry = retry_headers(exc)
    return JSONResponse({"error": {"type": exc.code, "message": exc.message}, "request_id": request_id},
                        status_code=status or getattr(exc, "rest_status", exc.http_status),
                        headers={"x-request-id": request_id, **({"Retry-After": retry["Retry-After"]}
                                                                if retry else {})})


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
    if params.annotate:
        from ..draw import annotate_verification, panel

        result["annotated_png"] = png_b64(annotate_verification(panel(s), panel(d), verification))
    return result


def detect(pipeline: Pipeline, params: DetectJson | DetectForm) -> dict:
    verifier = pipeline.verifier
    decoded = verifier.load(params.image)
    analyzed = verifier.analyze(decoded, embed=0)
    result = {"faces": detect_faces_response(analyzed)["FaceDetails"], "width": analyzed.width,
              "height": analyzed.height, "rotation": analyzed.rotation}
    if params.annotate:
        from ..draw import annotate_detection, panel

        result["annotated_png"] = png_b64(annotate_detection(panel(decoded), analyzed))
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
        return router

    # the API key parameter only puts the scheme in the document: the check is authenticate(), in the pipeline
    async def verify_route(self, request: Request, api_key: str | None = Security(API_KEY)) -> Response:
        return await self.pipeline.serve(self, request, "v1/verify")

    async def detect_route(self, request: Request, api_key: str | None = Security(API_KEY)) -> Response:
        return await self.pipeline.serve(self, request, "v1/detect")

    error = staticmethod(rest_error)

    def authenticate(self, request: Request) -> None:
        self.check_api_key(request)

    def operation_hint(self, request: Request) -> str | None:
        return None  # the route named it

    async def parse(self, request: Request, auth: None, context: dict) -> Call:
        json_model, form_model, images, handler = OPERATIONS[context["operation"].removeprefix("v1/")]
        return Call(handler, await self.params(request, json_model, form_model, images))

    @staticmethod
    def respond(result: dict, request_id: str) -> Response:
        result["request_id"] = request_id
        return JSONResponse(result, headers={"x-request-id": request_id})

    def check_api_key(self, request: Request) -> None:
        config = self.pipeline.config
        if not config.auth:
            return
        key = request.headers.get("x-api-key") or ""
        bearer = request.headers.get("authorization", "")
        if not key and bearer.lower().startswith("bearer "):
            key = bearer[7:].strip()
        if not key or hash_api_key(key) not in config.api_key_hashes:
            raise sigv4.AuthError("UnauthorizedException", "Missing or invalid API key (header X-API-Key).", 401)

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
