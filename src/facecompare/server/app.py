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
import traceback
import uuid
import warnings
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..engine import MAX_FACES, Verifier, check_threshold, verification_dict
from ..errors import (
    FaceCompareError,
    ImageTooLargeException,
    InternalServerError,
    InvalidParameterException,
    quote_input,
)
from ..rekognition import compare_faces_response, detect_faces_response
from ..settings import Settings
from ..storage import S3Reader
from . import aws, sigv4
from .limits import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    OVER_CAPACITY,
    BodyGuard,
    EngineQueue,
    OverCapacityError,
    ThrottlingError,
    env_number,
)

log = logging.getLogger("facecompare.server")
_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off", ""})
AWS_CONTENT_TYPE = "application/x-amz-json-1.1"
CLIENT_CLOSED_REQUEST = 499  # the status label of a request whose client went away mid-body


@dataclass
class ServerConfig:
    auth: bool = True  # verify SigV4 on the AWS endpoint and API keys on /v1
    access_keys: dict[str, str] = field(default_factory=dict)  # SigV4 access key -> secret
    region: str = sigv4.DEFAULT_REGION  # the region SigV4 credential scopes must name (FACECOMPARE_REGION)
    api_key_hashes: set[str] = field(default_factory=set)  # sha256 hex of the /v1 API keys
    max_body_bytes: int = 16 * 1024 * 1024  # two 5 MiB images in base64 fit
    request_timeout: float = 60.0
    concurrency: int = 2  # engine calls at once (the rest wait)
    max_queue: int | None = None  # engine calls waiting at most, beyond that ThrottlingException; None: 4 x concurrency
    body_timeout: float = DEFAULT_BODY_TIMEOUT  # the whole body must arrive within this time of the headers
    # for uvicorn and its protocol (``facecompare serve``, protocol.py), not used by the app itself:
    max_connections: int | None = 64  # per worker; a request on a connection over it is answered 503
    header_timeout: float = DEFAULT_HEADER_TIMEOUT  # a request's headers must be in within this time
    keepalive_timeout: float = 5.0  # an idle keep-alive connection is closed after this time
    warm: bool = True

    @property
    def queue_limit(self) -> int:
        return 4 * max(1, self.concurrency) if self.max_queue is None else self.max_queue

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> ServerConfig:
        environ = os.environ if environ is None else environ
        config = cls(
            auth=environ.get("FACECOMPARE_AUTH", "on").lower() not in ("off", "none", "0", "false"),
            access_keys=sigv4.load_keys(environ),
            region=(environ.get("FACECOMPARE_REGION") or "").strip() or sigv4.DEFAULT_REGION,
            api_key_hashes=load_api_key_hashes(environ.get("FACECOMPARE_API_KEYS_FILE")),
            max_body_bytes=env_number(environ, "FACECOMPARE_MAX_BODY_BYTES", 16 * 1024 * 1024, int, minimum=1),
            request_timeout=env_number(environ, "FACECOMPARE_REQUEST_TIMEOUT", 60.0, float, minimum=0.1),
            concurrency=env_number(environ, "FACECOMPARE_CONCURRENCY", 2, int, minimum=1),
            max_queue=env_number(environ, "FACECOMPARE_MAX_QUEUE", None, int, minimum=0),
            body_timeout=env_number(environ, "FACECOMPARE_BODY_TIMEOUT", DEFAULT_BODY_TIMEOUT, float, minimum=0.1),
            max_connections=env_number(environ, "FACECOMPARE_MAX_CONNECTIONS", 64, int, minimum=1,
                                       allow_none=True),
            header_timeout=env_number(environ, "FACECOMPARE_HEADER_TIMEOUT", DEFAULT_HEADER_TIMEOUT, float,
                                      minimum=0.1),
            keepalive_timeout=env_number(environ, "FACECOMPARE_KEEPALIVE_TIMEOUT", 5.0, float, minimum=0.1),
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
        self.throttled = Counter("facecompare_throttled_total",
                                 "Requests refused at once with ThrottlingException, by reason: queue (too many "
                                 "requests waiting for the engine), connections (over FACECOMPARE_MAX_CONNECTIONS)",
                                 ["reason"], registry=self.registry)
        self.registry.register(_ConnectionsCollector())

    def watch_engine(self, engine: EngineQueue) -> None:
        from prometheus_client import Gauge

        Gauge("facecompare_engine_running", "Engine calls running in this worker",
              registry=self.registry).set_function(lambda: engine.running)
        Gauge("facecompare_engine_waiting", "Requests waiting for the engine in this worker (at most "
              "FACECOMPARE_MAX_QUEUE)", registry=self.registry).set_function(lambda: engine.waiting)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class _ConnectionsCollector:
    """``facecompare_connections_closed_total{reason}``: connections the worker's HTTP protocol closed on a
    timeout (``protocol.CLOSED``; stays empty when the app runs under another server than ``facecompare
    serve``)."""

    def collect(self):
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily("facecompare_connections_closed", "Connections the server closed on a "
                                     "timeout, by reason: header_timeout (a request's headers not complete in "
                                     "time), send_timeout (the client stopped reading)", labels=["reason"])
        protocol = sys.modules.get("facecompare.server.protocol")
        for reason, count in sorted((protocol.CLOSED if protocol else {}).items()):
            family.add_metric([reason], count)
        yield family


_NOT_JSON = object()
NOT_JSON_MESSAGE = "The request body is not valid JSON (or is nested more deeply than a request can be)."


def parse_json(body: bytes) -> object:
    """The JSON value of a request body (an empty body is ``{}``), or ``_NOT_JSON``: malformed, not UTF-8, an
    integer of more than 4300 digits (ValueError), or nested so deeply that the parser would recurse past
    Python's limit (RecursionError, which is not a ValueError: it used to reach the catch-all as a 500)."""
    try:
        return json.loads(body or b"{}")
    except (ValueError, RecursionError):
        return _NOT_JSON


def typed_error(exc: Exception) -> FaceCompareError | None:
    """The typed error a request failed with, or None for a bug. Besides our own errors, an HTTP-level error
    that Starlette raises while reading the request (an ``HTTPException`` with a 4xx status) keeps its status,
    as InvalidParameterException in the surface's shape."""
    if isinstance(exc, FaceCompareError):
        return exc
    if isinstance(exc, HTTPException) and 400 <= exc.status_code < 500:
        return aws.ProtocolError("InvalidParameterException",
                                 f"Request has invalid parameters: {str(exc.detail)[:200]}", exc.status_code)
    return None


def _json_log(level: int = logging.INFO, **fields) -> None:
    log.log(level, json.dumps({"ts": round(time.time(), 3), **fields}, separators=(",", ":")))


def _exception_fields(exc: BaseException) -> dict:
    """Where an exception happened: its type and one ``file:line in function`` per frame. Not its message, nor
    the source lines' values: a bug's message may quote the request (an image's bytes, an object key)."""
    frames = [f"{frame.filename}:{frame.lineno} in {frame.name}"
              for frame in traceback.extract_tb(exc.__traceback__, limit=30)]
    return {"error_type": type(exc).__qualname__, "traceback": frames}


class JsonLogFormatter(logging.Formatter):
    """One JSON object per record, for uvicorn's records and any other library's: time, level, logger, the
    message cut to 300 characters, and an exception as :func:`_exception_fields` (never a text traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
                  "message": record.getMessage()[:300]}
        if record.exc_info and record.exc_info[1] is not None:
            fields.update(_exception_fields(record.exc_info[1]))
        return json.dumps(fields, separators=(",", ":"))


# uvicorn's logging (``uvicorn.run(log_config=...)``): its records on stderr as JSON lines like ours. Its access
# log is off (``facecompare serve`` runs at level warning): the service logs each request itself.
UVICORN_LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": JsonLogFormatter}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
    "loggers": {"uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
                "uvicorn.error": {"level": "INFO"},
                "uvicorn.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
}


def create_app(settings: Settings | None = None, config: ServerConfig | None = None,
               verifier: Verifier | None = None, s3: S3Reader | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    config = config or ServerConfig.from_env()
    verifier = verifier or Verifier(settings)
    s3 = s3 or S3Reader()
    metrics = Metrics()
    engine = EngineQueue(config.concurrency, config.queue_limit)
    metrics.watch_engine(engine)
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
        """The whole body. BodyGuard counts it as it streams (chunked too) and refuses it past the limit, and
        bounds the time it may take to arrive."""
        check_declared_length(request)
        return b"".join([chunk async for chunk in request.stream()])

    def check_capacity(request: Request) -> None:
        """Refuse at once, before the body is read, a request that could not be served now: one on a connection
        over the worker's cap (503), or one that would find the engine's queue full (ThrottlingException).
        The body is then never read (BodyGuard closes the connection after the answer)."""
        if request.scope.get(OVER_CAPACITY):
            metrics.throttled.labels("connections").inc()
            raise OverCapacityError(f"{OverCapacityError.default_message} The server has too many connections "
                                    f"open; retry after {OverCapacityError.retry_after} s.")
        if engine.full():
            metrics.throttled.labels("queue").inc()
            raise engine.refusal()

    async def run_engine(fn, *args):
        """Run ``fn`` in a thread, at most FACECOMPARE_CONCURRENCY at once; at most FACECOMPARE_MAX_QUEUE
        requests wait for a thread, and one more is refused at once (ThrottlingException) and its body freed."""
        try:
            with engine.admit():
                with anyio.fail_after(config.request_timeout):
                    return await anyio.to_thread.run_sync(fn, *args, limiter=engine.limiter,
                                                          abandon_on_cancel=True)
        except ThrottlingError:
            metrics.throttled.labels("queue").inc()
            raise
        except TimeoutError:
            raise InternalServerError(f"Internal server error: the request took longer than "
                                      f"{config.request_timeout:g} s.") from None

    def retry_headers(exc: FaceCompareError) -> dict[str, str]:
        seconds = getattr(exc, "retry_after", None)
        if seconds is None:
            return {}
        # Retry-After for any HTTP client; x-amz-retry-after (milliseconds) is what botocore's standard retry
        # mode reads to lengthen its backoff
        return {"Retry-After": str(seconds), "x-amz-retry-after": str(int(1000 * seconds))}

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
                        headers={"x-amzn-RequestId": request_id, **retry_headers(exc)})

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
        except ClientDisconnect:
            # The client closed the connection before sending the whole body: not our error, and nobody is left
            # to answer. Counted under its own status, 499 (nginx's "client closed request"), in the one
            # requests counter: dashboards of totals and of the 4xx/5xx ratios stay right, no traceback and no
            # error type are logged, and the response below is never sent.
            context["status"] = CLIENT_CLOSED_REQUEST
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        except Exception as exc:
            error = typed_error(exc)
            if error is None:  # a bug: answer in the surface's error shape, keep serving, log without request data
                _json_log(logging.ERROR, event="internal_error", request_id=request_id, **_exception_fields(exc))
                error = InternalServerError()
            response = error_response(error, request_id)
            context["status"] = response.status_code  # a surface's own status (REST: 429 for throttling)
            context["error"] = error.code
            metrics.errors.labels(error.code).inc()
            return response
        finally:
            elapsed = time.perf_counter() - started
            metrics.requests.labels(context["operation"], str(context["status"])).inc()
            metrics.latency.labels(context["operation"]).observe(elapsed)
            _json_log(request_id=request_id, surface=surface, operation=context["operation"],
                      status=context["status"], **({"error": context["error"]} if "error" in context else {}),
                      ms=round(1000 * elapsed, 1))

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
            try:
                check_capacity(request)
            except ThrottlingError:
                with suppress(aws.ProtocolError):  # name the operation if the header can (the body is never read)
                    context["operation"] = aws.operation_from_target(request.headers.get("x-amz-target"))
                raise
            body = await read_body(request)
            if pending is not None:
                pending.verify_payload(body)  # the payload hash needs the body (boto3 sends no x-amz-content-sha256)
            operation = context["operation"] = aws.operation_from_target(request.headers.get("x-amz-target"))
            payload = parse_json(body)
            if payload is _NOT_JSON:
                raise aws.ProtocolError("SerializationException", NOT_JSON_MESSAGE)
            if operation == "CompareFaces":
                result = await run_engine(do_compare, aws.parse_compare(payload))
            else:
                result = await run_engine(do_detect, aws.parse_detect(payload))
            return Response(json.dumps(result), media_type=AWS_CONTENT_TYPE, headers={"x-amzn-RequestId": request_id})

        return await instrumented("aws", "unknown", work, aws_error)

    # -- native REST -----------------------------------------------------------------------------------------

    def rest_error(exc: FaceCompareError, request_id: str, status: int | None = None) -> JSONResponse:
        retry = retry_headers(exc)
        return JSONResponse({"error": {"type": exc.code, "message": exc.message}, "request_id": request_id},
                            status_code=status or getattr(exc, "rest_status", exc.http_status),
                            headers={"x-request-id": request_id, **({"Retry-After": retry["Retry-After"]}
                                                                    if retry else {})})

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
            try:
                form = await request.form(max_files=len(names), max_fields=10, max_part_size=config.max_body_bytes)
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
            payload = parse_json(await read_body(request))
            if payload is _NOT_JSON:
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

    async def rest_endpoint(request: Request, operation: str) -> Response:
        async def work(request_id: str, context: dict) -> Response:
            check_api_key(request)
            check_capacity(request)
            if operation == "verify":
                images, fields = await rest_images(request, ("selfie", "document"))
                threshold = rest_threshold(fields.get("threshold", 80.0))
                annotate = rest_flag(fields.get("annotate", False), "annotate")
                result = await run_engine(rest_verify, images["selfie"], images["document"], threshold, annotate)
            else:
                images, fields = await rest_images(request, ("image",))
                result = await run_engine(rest_detect, images["image"], rest_flag(fields.get("annotate", False),
                                                                                   "annotate"))
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
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[
        Middleware(BodyGuard, max_body_bytes=config.max_body_bytes, body_timeout=config.body_timeout)])
    app.state.verifier = verifier
    app.state.metrics = metrics
    return app


def app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory`` (each worker process builds its own app from the environment)."""
    configure_logging()
    return create_app()


def configure_logging() -> None:
    """The service's stderr: one JSON object per line. Its own lines (one per request, one per internal
    error) are JSON already; any other library's records go through :class:`JsonLogFormatter`; warnings are
    filtered or turned into JSON lines (:func:`capture_warnings`). Idempotent."""
    if not any(getattr(h, "_facecompare", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._facecompare = True
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    root = logging.getLogger()
    if not any(getattr(h, "_facecompare", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLogFormatter())
        handler._facecompare = True
        root.addHandler(handler)
    # python-multipart logs each malformed body it is fed (a warning) before it raises; that request is
    # answered with a 400 and logged by the service already.
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    capture_warnings()


def capture_warnings() -> None:
    """Keep the warnings module off stderr, where it writes two plain-text lines per warning.

    Pillow's warnings about a client's image are dropped, not turned into errors, because each is about data
    that already gets its typed answer or is deliberately tolerated:

    * ``DecompressionBombWarning`` (a header over 89 MP): it is over FACECOMPARE_MAX_PIXELS (64 MP by
      default), so the header check right after refuses it with ImageTooLargeException; if an operator raised
      the limit that far, the image is allowed by choice. Over 179 MP Pillow raises DecompressionBombError,
      which is ImageTooLargeException as well.
    * EXIF warnings ("Possibly corrupt EXIF data", "Corrupt EXIF data", "Truncated File Read", "Tag data
      larger than file"): only the orientation tag is read, and unreadable EXIF counts as none
      (``images.decode_bytes``). A truncated or corrupt image itself is an exception, not a warning:
      InvalidImageFormatException.

    Any other warning becomes one JSON line (category, origin, message cut to 200 characters)."""
    from PIL import Image

    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    warnings.filterwarnings("ignore", module=r"PIL\.")
    warnings.showwarning = _warning_as_json


def _warning_as_json(message, category, filename, lineno, file=None, line=None) -> None:
    _json_log(logging.WARNING, event="warning", category=getattr(category, "__name__", str(category)),
              origin=f"{filename}:{lineno}", message=str(message)[:200])


_IMAGE = {"type": "string", "format": "binary", "minLength": 1}  # an empty file is refused (400)
_IMAGE_B64 = {"type": "string", "format": "byte", "minLength": 1}  # and so is an empty base64 string
_THRESHOLD = {"type": "number", "minimum": 0, "maximum": 100, "default": 80}
_ANNOTATE = {"type": "boolean", "default": False}
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
_ERROR = {"type": "object", "required": ["error", "request_id"], "properties": {
    "error": {"type": "object", "required": ["type", "message"], "properties": {
        "type": {"type": "string", "description": "a Rekognition error type, e.g. InvalidParameterException"},
        "message": {"type": "string"}}},
    "request_id": {"type": "string"}}}


def _error_response(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


_ERROR_RESPONSES = {"400": {"$ref": "#/components/responses/BadRequest"},
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "429": {"$ref": "#/components/responses/Throttled"},
                    "500": {"$ref": "#/components/responses/InternalError"},
                    "503": {"$ref": "#/components/responses/OverCapacity"}}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
OPENAPI = {
    "openapi": "3.0.3",
    "info": {"title": "facecompare", "version": "0.1.0",
             "description": "Offline selfie-versus-ID-document verification. The AWS Rekognition protocol "
                            "(CompareFaces, DetectFaces) is served at POST / for boto3; this is the native API."},
    "components": {
        "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        "schemas": {"Error": _ERROR},
        "responses": {
            "BadRequest": _error_response("invalid input: a malformed body, a bad parameter, an image that is not "
                                          "JPEG/PNG, too large, too small or has no face; a body over the size "
                                          "limit (ImageTooLargeException) or that did not arrive in time "
                                          "(RequestTimeoutException)"),
            "Throttled": {**_error_response("ThrottlingException: too many requests are waiting for the engine; "
                                            "retry after Retry-After seconds"), "headers": _RETRY_AFTER},
            "OverCapacity": {**_error_response("ThrottlingException: the server has too many connections open; "
                                               "retry after Retry-After seconds"), "headers": _RETRY_AFTER},
            "Unauthorized": _error_response("missing or invalid API key (UnauthorizedException)"),
            "InternalError": _error_response("internal error, or the request took longer than the timeout "
                                             "(InternalServerError)"),
        },
    },
    "security": [{"apiKey": []}],
    "paths": {
        "/v1/verify": {"post": {
            "summary": "KYC decision for a selfie and an ID-document photo",
            "requestBody": {"required": True, "content": {
                "multipart/form-data": {"schema": {"type": "object", "required": ["selfie", "document"],
                                                   "properties": {"selfie": _IMAGE, "document": _IMAGE,
                                                                  "threshold": _THRESHOLD, "annotate": _ANNOTATE}}},
                "application/json": {"schema": {"type": "object", "required": ["selfie", "document"],
                                                "properties": {"selfie": _IMAGE_B64, "document": _IMAGE_B64,
                                                               "threshold": _THRESHOLD, "annotate": _ANNOTATE}}},
            }},
            "responses": {"200": {"description": "decision", "content": {"application/json": {"schema": _VERIFICATION}}},
                          **_ERROR_RESPONSES},
        }},
        "/v1/detect": {"post": {
            "summary": "Faces in an image (boxes, landmarks, pose, quality)",
            "requestBody": {"required": True, "content": {
                "multipart/form-data": {"schema": {"type": "object", "required": ["image"],
                                                   "properties": {"image": _IMAGE, "annotate": _ANNOTATE}}},
                "application/json": {"schema": {"type": "object", "required": ["image"],
                                                "properties": {"image": _IMAGE_B64, "annotate": _ANNOTATE}}},
            }},
            "responses": {"200": {"description": "faces"}, **_ERROR_RESPONSES},
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
