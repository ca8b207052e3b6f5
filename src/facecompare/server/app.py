"""The ASGI application: AWS JSON 1.1 at ``POST /`` (boto3's ``rekognition`` client), native REST under
``/v1``, health and readiness probes, Prometheus metrics. Stateless: run as many replicas as you like.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import sys
import threading
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..engine import MAX_FACES, Verifier, check_threshold, verification_dict
from ..errors import FaceCompareError, ImageTooLargeException, InternalServerError, InvalidParameterException
from ..memory import released_after_large_work
from ..rekognition import compare_faces_response, detect_faces_response
from ..settings import Settings
from ..storage import S3Reader
from . import aws, sigv4

log = logging.getLogger("facecompare.server")
AWS_CONTENT_TYPE = "application/x-amz-json-1.1"


@dataclass
class ServerConfig:
    auth: bool = True  # verify SigV4 on the AWS endpoint and API keys on /v1
    access_keys: dict[str, str] = field(default_factory=dict)  # SigV4 access key -> secret
    region: str = sigv4.DEFAULT_REGION  # the region SigV4 credential scopes must name (FACECOMPARE_REGION)
    api_key_hashes: set[str] = field(default_factory=set)  # sha256 hex of the /v1 API keys
    max_body_bytes: int = 16 * 1024 * 1024  # two 5 MiB images in base64 fit
    request_timeout: float = 60.0
    concurrency: int = 2  # engine calls at once (the rest wait)
    warm: bool = True

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> ServerConfig:
        environ = os.environ if environ is None else environ
        config = cls(
            auth=environ.get("FACECOMPARE_AUTH", "on").lower() not in ("off", "none", "0", "false"),
            access_keys=sigv4.load_keys(environ),
            region=(environ.get("FACECOMPARE_REGION") or "").strip() or sigv4.DEFAULT_REGION,
            api_key_hashes=load_api_key_hashes(environ.get("FACECOMPARE_API_KEYS_FILE")),
            max_body_bytes=int(environ.get("FACECOMPARE_MAX_BODY_BYTES", 16 * 1024 * 1024)),
            request_timeout=float(environ.get("FACECOMPARE_REQUEST_TIMEOUT", 60)),
            concurrency=int(environ.get("FACECOMPARE_CONCURRENCY", 2)),
        )
        for k, v in overrides.items():
            if v is not None:
                setattr(config, k, v)
        return config


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def load_api_key_hashes(path: str | None) -> set[str]:
    """One SHA-256 hex digest per line (``name:digest`` also accepted); the keys themselves are never stored."""
    if not path:
        return set()
    hashes = set()
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            hashes.add(line.rsplit(":", 1)[-1].lower())
    return hashes


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("facecompare_requests_total", "Requests by operation and status",
                                ["operation", "status"], registry=self.registry)
        self.errors = Counter("facecompare_errors_total", "Errors by type", ["type"], registry=self.registry)
        self.latency = Histogram("facecompare_request_seconds", "Request latency by operation", ["operation"],
                                 buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60),
                                 registry=self.registry)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


def _json_log(**fields) -> None:
    log.info(json.dumps({"ts": round(time.time(), 3), **fields}, separators=(",", ":")))


def create_app(settings: Settings | None = None, config: ServerConfig | None = None,
               verifier: Verifier | None = None, s3: S3Reader | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    config = config or ServerConfig.from_env()
    verifier = verifier or Verifier(settings)
    s3 = s3 or S3Reader()
    metrics = Metrics()
    limiter = anyio.CapacityLimiter(max(1, config.concurrency))
    ready = threading.Event()
    if config.auth and not config.access_keys and not config.api_key_hashes:
        raise SystemExit(
            "facecompare serve: authentication is on but no keys are configured. Set FACECOMPARE_AUTH_KEYS="
            "AKID:SECRET (SigV4, for boto3) and/or FACECOMPARE_API_KEYS_FILE (REST), or run with --no-auth "
            "for local development only."
        )

    @asynccontextmanager
    async def lifespan(app):
        if config.warm:
            await anyio.to_thread.run_sync(verifier.warm)
        ready.set()
        _json_log(event="ready", auth=config.auth)
        yield
        _json_log(event="shutdown")

    def check_declared_length(request: Request) -> None:
        """Refuse a body whose Content-Length is over the limit before reading any of it."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > config.max_body_bytes:
            raise ImageTooLargeException(
                f"Request body of {int(declared):,} bytes is over the limit of {config.max_body_bytes:,}."
            )

    async def read_body(request: Request) -> bytes:
        check_declared_length(request)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > config.max_body_bytes:
                raise ImageTooLargeException(f"Request body is over the limit of {config.max_body_bytes:,} bytes.")
            chunks.append(chunk)
        return b"".join(chunks)

    def run_releasing(fn, *args):
        # the request's decoded images die with ``fn``'s frame, after the engine's own release: when they were
        # large, give their memory back too
        with released_after_large_work():
            return fn(*args)

    async def run_engine(fn, *args):
        try:
            with anyio.fail_after(config.request_timeout):
                return await anyio.to_thread.run_sync(run_releasing, fn, *args, limiter=limiter,
                                                      abandon_on_cancel=True)
        except TimeoutError:
            raise InternalServerError(f"Internal server error: the request took longer than "
                                      f"{config.request_timeout:g} s.") from None

    def load_image(source: tuple[str, object]):
        kind, value = source
        if kind == "bytes":
            return verifier.load(value)
        bucket, key, version = value
        return verifier.load(s3.read(bucket, key, version))

    # -- AWS JSON 1.1 ----------------------------------------------------------------------------------------

    def aws_error(exc: FaceCompareError, request_id: str) -> Response:
        body = {"__type": exc.code, "Message": exc.message}
        if isinstance(exc, sigv4.AuthError):
            body = {"__type": exc.code, "message": exc.message}
        return Response(json.dumps(body), status_code=exc.http_status, media_type=AWS_CONTENT_TYPE,
                        headers={"x-amzn-RequestId": request_id})

    def do_compare(params: dict) -> dict:
        source = load_image(params["source"])
        target = load_image(params["target"])
        comparison = verifier.compare(source, target, params["threshold"], params["quality_filter"])
        return compare_faces_response(comparison)

    def do_detect(params: dict) -> dict:
        image = load_image(params["image"])
        return detect_faces_response(verifier.analyze(image, embed=0, max_faces=MAX_FACES), params["attributes"])

    async def instrumented(surface: str, operation: str, work, error_response) -> Response:
        """Run one request: request id, typed errors (never a bare 500), metrics and one JSON log line.
        ``work(request_id, context)`` may name the operation in ``context`` once it knows it."""
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        context = {"operation": operation, "status": 200}
        try:
            return await work(request_id, context)
        except FaceCompareError as exc:
            context["status"] = exc.http_status
            metrics.errors.labels(exc.code).inc()
            return error_response(exc, request_id)
        except Exception:  # a bug: answer in the surface's error shape, keep serving, log without request data
            context["status"] = 500
            metrics.errors.labels("InternalServerError").inc()
            log.exception("unhandled error (request %s)", request_id)
            return error_response(InternalServerError(), request_id)
        finally:
            elapsed = time.perf_counter() - started
            metrics.requests.labels(context["operation"], str(context["status"])).inc()
            metrics.latency.labels(context["operation"]).observe(elapsed)
            _json_log(request_id=request_id, surface=surface, operation=context["operation"],
                      status=context["status"], ms=round(1000 * elapsed, 1))

    async def aws_endpoint(request: Request) -> Response:
        async def work(request_id: str, context: dict) -> Response:
            # Authentication before the body: an unsigned or wrongly signed request is refused from its
            # headers (and an over-long Content-Length from that header), so it never makes us buffer a body.
            check_declared_length(request)
            pending = None
            if config.auth:
                pending = sigv4.verify_headers(request.method, request.url.path, request.headers.raw,
                                               config.access_keys, region=config.region,
                                               query=request.scope.get("query_string", b""))
            body = await read_body(request)
            if pending is not None:
                pending.verify_payload(body)  # the payload hash needs the body (boto3 sends no x-amz-content-sha256)
            operation = context["operation"] = aws.operation_from_target(request.headers.get("x-amz-target"))
            try:
                payload = json.loads(body or b"{}")
            except (ValueError, UnicodeDecodeError):
                raise aws.ProtocolError("SerializationException", "The request body is not valid JSON.") from None
            if operation == "CompareFaces":
                result = await run_engine(do_compare, aws.parse_compare(payload))
            else:
                result = await run_engine(do_detect, aws.parse_detect(payload))
            return Response(json.dumps(result), media_type=AWS_CONTENT_TYPE, headers={"x-amzn-RequestId": request_id})

        return await instrumented("aws", "unknown", work, aws_error)

    # -- native REST -----------------------------------------------------------------------------------------

    def rest_error(exc: FaceCompareError, request_id: str, status: int | None = None) -> JSONResponse:
        return JSONResponse({"error": {"type": exc.code, "message": exc.message}, "request_id": request_id},
                            status_code=status or exc.http_status, headers={"x-request-id": request_id})

    def check_api_key(request: Request) -> None:
        if not config.auth:
            return
        key = request.headers.get("x-api-key") or ""
        bearer = request.headers.get("authorization", "")
        if not key and bearer.lower().startswith("bearer "):
            key = bearer[7:].strip()
        if not key or hash_api_key(key) not in config.api_key_hashes:
            raise sigv4.AuthError("UnauthorizedException", "Missing or invalid API key (header X-API-Key).", 401)

    async def rest_images(request: Request, names: tuple[str, ...]) -> tuple[dict, dict]:
        """Images (bytes) by field name and the other fields, from multipart or JSON (base64)."""
        content_type = request.headers.get("content-type", "")
        fields: dict = {}
        images: dict = {}
        if content_type.startswith("multipart/form-data"):
            check_declared_length(request)
            form = await request.form(max_files=len(names), max_fields=10, max_part_size=config.max_body_bytes)
            for key, value in form.multi_items():
                if key in names and hasattr(value, "read"):
                    images[key] = await value.read()
                else:
                    fields[key] = value
        else:
            body = await read_body(request)
            try:
                payload = json.loads(body or b"{}")
            except (ValueError, UnicodeDecodeError):
                raise InvalidParameterException("The request body is not valid JSON.") from None
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

    def truthy(value) -> bool:
        return str(value).lower() in ("1", "true", "yes", "on")

    async def rest_endpoint(request: Request, operation: str) -> Response:
        async def work(request_id: str, context: dict) -> Response:
            check_api_key(request)
            if operation == "verify":
                images, fields = await rest_images(request, ("selfie", "document"))
                threshold = fields.get("threshold", 80.0)
                try:
                    threshold = float(threshold)
                except (TypeError, ValueError):
                    raise InvalidParameterException(f"threshold must be a number (got {threshold!r}).") from None
                threshold = check_threshold(threshold, "threshold")
                annotate = truthy(fields.get("annotate", False))
                result = await run_engine(rest_verify, images["selfie"], images["document"], threshold, annotate)
            else:
                images, fields = await rest_images(request, ("image",))
                result = await run_engine(rest_detect, images["image"], truthy(fields.get("annotate", False)))
            result["request_id"] = request_id
            return JSONResponse(result, headers={"x-request-id": request_id})

        return await instrumented("rest", f"v1/{operation}", work, rest_error)

    def png_b64(image) -> str:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode()

    def rest_verify(selfie: bytes, document: bytes, threshold: float, annotate: bool) -> dict:
        s, d = verifier.load(selfie), verifier.load(document)
        s_img, d_img = verifier.analyze_pair(s, d, embed_first=1, embed_second=1)
        verification = verifier.decide(s_img, d_img, threshold)
        result = verification_dict(verification)
        if annotate:
            from ..draw import annotate_verification, panel

            result["annotated_png"] = png_b64(annotate_verification(panel(s), panel(d), verification))
        return result

    def rest_detect(image: bytes, annotate: bool) -> dict:
        decoded = verifier.load(image)
        analyzed = verifier.analyze(decoded, embed=0)
        result = {"faces": detect_faces_response(analyzed)["FaceDetails"], "width": analyzed.width,
                  "height": analyzed.height, "rotation": analyzed.rotation}
        if annotate:
            from ..draw import annotate_detection, panel

            result["annotated_png"] = png_b64(annotate_detection(panel(decoded), analyzed))
        return result

    async def verify_route(request: Request) -> Response:
        return await rest_endpoint(request, "verify")

    async def detect_route(request: Request) -> Response:
        return await rest_endpoint(request, "detect")

    # -- operations ------------------------------------------------------------------------------------------

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request) -> Response:
        if ready.is_set():
            return JSONResponse({"status": "ready", "detector": verifier.detector.name,
                                 "recognizer": verifier.recognizer.name})
        return JSONResponse({"status": "loading models"}, status_code=503)

    async def metrics_route(request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    async def openapi_route(request: Request) -> Response:
        return JSONResponse(OPENAPI)

    async def docs_route(request: Request) -> Response:
        return HTMLResponse(docs_html())

    routes = [
        Route("/", aws_endpoint, methods=["POST"]),
        Route("/v1/verify", verify_route, methods=["POST"]),
        Route("/v1/detect", detect_route, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_route, methods=["GET"]),
        Route("/openapi.json", openapi_route, methods=["GET"]),
        Route("/docs", docs_route, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.verifier = verifier
    app.state.metrics = metrics
    return app


def app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory`` (each worker process builds its own app from the environment)."""
    configure_logging()
    return create_app()


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


_IMAGE = {"type": "string", "format": "binary"}
_VERIFICATION = {
    "type": "object",
    "properties": {
        "decision": {"type": "string", "enum": ["MATCH", "NO_MATCH", "REVIEW"]},
        "similarity": {"type": "number", "nullable": True},
        "distance": {"type": "number", "nullable": True},
        "threshold": {"type": "number"},
        "review_band": {"type": "array", "items": {"type": "number"}},
        "reasons": {"type": "array", "items": {"type": "string"}},
        "notes": {"type": "array", "items": {"type": "string"}},
        "selfie_face": {"type": "object", "nullable": True},
        "document_face": {"type": "object", "nullable": True},
        "annotated_png": {"type": "string", "description": "base64 PNG, when annotate=true"},
        "request_id": {"type": "string"},
    },
}
_ERROR = {"type": "object", "properties": {"error": {"type": "object", "properties": {
    "type": {"type": "string"}, "message": {"type": "string"}}}, "request_id": {"type": "string"}}}
OPENAPI = {
    "openapi": "3.0.3",
    "info": {"title": "facecompare", "version": "0.1.0",
             "description": "Offline selfie-versus-ID-document verification. The AWS Rekognition protocol "
                            "(CompareFaces, DetectFaces) is served at POST / for boto3; this is the native API."},
    "components": {"securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}},
    "security": [{"apiKey": []}],
    "paths": {
        "/v1/verify": {"post": {
            "summary": "KYC decision for a selfie and an ID-document photo",
            "requestBody": {"content": {
                "multipart/form-data": {"schema": {"type": "object", "required": ["selfie", "document"],
                                                   "properties": {"selfie": _IMAGE, "document": _IMAGE,
                                                                  "threshold": {"type": "number", "default": 80},
                                                                  "annotate": {"type": "boolean", "default": False}}}},
                "application/json": {"schema": {"type": "object", "required": ["selfie", "document"],
                                                "properties": {"selfie": {"type": "string", "format": "byte"},
                                                               "document": {"type": "string", "format": "byte"},
                                                               "threshold": {"type": "number", "default": 80},
                                                               "annotate": {"type": "boolean", "default": False}}}},
            }},
            "responses": {"200": {"description": "decision", "content": {"application/json": {"schema": _VERIFICATION}}},
                          "400": {"description": "invalid input", "content": {"application/json": {"schema": _ERROR}}},
                          "401": {"description": "missing or invalid API key"}},
        }},
        "/v1/detect": {"post": {
            "summary": "Faces in an image (boxes, landmarks, pose, quality)",
            "requestBody": {"content": {
                "multipart/form-data": {"schema": {"type": "object", "required": ["image"],
                                                   "properties": {"image": _IMAGE, "annotate": {"type": "boolean"}}}},
                "application/json": {"schema": {"type": "object", "required": ["image"],
                                                "properties": {"image": {"type": "string", "format": "byte"},
                                                               "annotate": {"type": "boolean"}}}},
            }},
            "responses": {"200": {"description": "faces"}, "400": {"description": "invalid input"}},
        }},
        "/healthz": {"get": {"summary": "the process is alive", "security": [], "responses": {"200": {"description": "alive"}}}},
        "/readyz": {"get": {"summary": "models loaded and warmed", "security": [],
                            "responses": {"200": {"description": "ready"}, "503": {"description": "loading"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "security": [], "responses": {"200": {"description": "metrics"}}}},
    },
}


def docs_html() -> str:
    """A self-contained page (no CDN: the service runs offline) listing the native API from the OpenAPI spec."""
    rows = []
    for path, methods in OPENAPI["paths"].items():
        for method, op in methods.items():
            rows.append(f"<tr><td><code>{method.upper()} {path}</code></td><td>{op['summary']}</td></tr>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>facecompare API</title>"
        "<style>body{font-family:sans-serif;max-width:900px;margin:2em auto}td{padding:4px 12px}"
        "pre{background:#f4f4f4;padding:1em;overflow:auto}</style></head><body>"
        f"<h1>facecompare API</h1><p>{OPENAPI['info']['description']}</p>"
        "<table>" + "".join(rows) + "</table>"
        "<h2>Example</h2><pre>curl -H 'X-API-Key: KEY' -F selfie=@selfie.jpg -F document=@id_card.jpg "
        "http://127.0.0.1:8080/v1/verify</pre>"
        "<p>Machine-readable specification: <a href='/openapi.json'>/openapi.json</a></p></body></html>"
    )
