"""The native REST API: ``POST /v1/verify`` and ``POST /v1/detect``, multipart/form-data or JSON with base64.

The request path: the API key, capacity, the body (multipart or JSON, within the limits), its fields, then one
handler per operation on the engine queue. Errors are ``{"error": {"type", "message"}, "request_id"}``."""

from __future__ import annotations

import base64
import io

from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..engine import check_threshold, verification_dict
from ..errors import FaceCompareError, InvalidParameterException, quote_input
from ..rekognition import detect_faces_response
from . import sigv4
from .config import hash_api_key
from .pipeline import NOT_JSON, NOT_JSON_MESSAGE, Pipeline, parse_json, retry_headers

_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off", ""})


def rest_error(exc: FaceCompareError, request_id: str, status: int | None = None) -> JSONResponse:
    retry = retry_headers(exc)
    return JSONResponse({"error": {"type": exc.code, "message": exc.message}, "request_id": request_id},
                        status_code=status or getattr(exc, "rest_status", exc.http_status),
                        headers={"x-request-id": request_id, **({"Retry-After": retry["Retry-After"]}
                                                                if retry else {})})


def rest_threshold(value) -> float:
    """A JSON number, or a numeric string (all multipart sends), from 0 to 100."""
    if isinstance(value, str):
        try:
            value = float(value)  # "nan", "inf" and "1e400" parse; check_threshold refuses them
        except ValueError:
            raise InvalidParameterException(
                f"Request has invalid parameters: threshold must be a number from 0 to 100 "
                f"(got {quote_input(value)})."
            ) from None
    return check_threshold(value, "threshold")  # refuses booleans, NaN, infinities, huge integers


def rest_flag(value, name: str) -> bool:
    """A JSON boolean, or one of the usual strings (multipart); anything else is refused, not taken as false."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidParameterException(
        f"Request has invalid parameters: {name} must be true or false (got {quote_input(value)})."
    )


def png_b64(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


# -- one handler per operation (run in an engine thread) ----------------------------------------------------------

def verify(pipeline: Pipeline, selfie: bytes, document: bytes, threshold: float, annotate: bool) -> dict:
    verifier = pipeline.verifier
    s, d = verifier.load(selfie), verifier.load(document)
    s_img, d_img = verifier.analyze_pair(s, d, embed_first=1, embed_second=1)
    verification = verifier.decide(s_img, d_img, threshold)
    result = verification_dict(verification)
    if annotate:
        from ..draw import annotate_verification, panel

        result["annotated_png"] = png_b64(annotate_verification(panel(s), panel(d), verification))
    return result


def detect(pipeline: Pipeline, image: bytes, annotate: bool) -> dict:
    verifier = pipeline.verifier
    decoded = verifier.load(image)
    analyzed = verifier.analyze(decoded, embed=0)
    result = {"faces": detect_faces_response(analyzed)["FaceDetails"], "width": analyzed.width,
              "height": analyzed.height, "rotation": analyzed.rotation}
    if annotate:
        from ..draw import annotate_detection, panel

        result["annotated_png"] = png_b64(annotate_detection(panel(decoded), analyzed))
    return result


class RestApi:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def routes(self) -> list[Route]:
        return [Route("/v1/verify", self.verify_route, methods=["POST"]),
                Route("/v1/detect", self.detect_route, methods=["POST"])]

    async def verify_route(self, request: Request) -> Response:
        async def work(request_id: str, context: dict) -> Response:
            self.check_api_key(request)
            self.pipeline.check_capacity(request)
            images, fields = await self.images(request, ("selfie", "document"))
            threshold = rest_threshold(fields.get("threshold", 80.0))
            annotate = rest_flag(fields.get("annotate", False), "annotate")
            result = await self.pipeline.run_engine(verify, self.pipeline, images["selfie"], images["document"],
                                                    threshold, annotate)
            return self.respond(result, request_id)

        return await self.pipeline.instrumented("rest", "v1/verify", work, rest_error)

    async def detect_route(self, request: Request) -> Response:
        async def work(request_id: str, context: dict) -> Response:
            self.check_api_key(request)
            self.pipeline.check_capacity(request)
            images, fields = await self.images(request, ("image",))
            annotate = rest_flag(fields.get("annotate", False), "annotate")
            result = await self.pipeline.run_engine(detect, self.pipeline, images["image"], annotate)
            return self.respond(result, request_id)

        return await self.pipeline.instrumented("rest", "v1/detect", work, rest_error)

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

    async def images(self, request: Request, names: tuple[str, ...]) -> tuple[dict, dict]:
        """Images (bytes) by field name and the other fields, from multipart or JSON (base64)."""
        pipeline = self.pipeline
        content_type = request.headers.get("content-type", "")
        fields: dict = {}
        images: dict = {}
        if content_type.startswith("multipart/form-data"):
            pipeline.check_declared_length(request)
            try:
                form = await request.form(max_files=len(names), max_fields=10,
                                          max_part_size=pipeline.config.max_body_bytes)
            except (HTTPException, MultiPartException) as exc:  # no boundary, a broken part, too many parts
                detail = exc.detail if isinstance(exc, HTTPException) else exc.message
                raise InvalidParameterException(
                    f"Request has invalid parameters: the multipart/form-data body is malformed ({detail})"
                ) from None
            # the parts were counted against FACECOMPARE_MAX_BODY_BYTES as they streamed (BodyGuard), so what
            # Starlette spooled (to disk past 1 MiB a file) is bounded; the spool files go when the form closes
            try:
                for key, value in form.multi_items():
                    if key in names and hasattr(value, "read"):
                        images[key] = await value.read()
                    else:
                        fields[key] = value
            finally:
                await form.close()
        else:
            payload = parse_json(await pipeline.read_body(request))
            if payload is NOT_JSON:
                raise InvalidParameterException(NOT_JSON_MESSAGE)
            if not isinstance(payload, dict):
                raise InvalidParameterException("The request body must be a JSON object.")
            for name in names:
                if name in payload:
                    try:
                        images[name] = base64.b64decode(payload[name], validate=True)
                    except (ValueError, TypeError):
                        raise InvalidParameterException(f"{name} is not valid base64.") from None
            fields = {k: v for k, v in payload.items() if k not in names}
        missing = [n for n in names if n not in images]
        if missing:
            raise InvalidParameterException(
                f"Missing image field(s) {', '.join(missing)}: send multipart/form-data files or JSON with base64."
            )
        return images, fields
