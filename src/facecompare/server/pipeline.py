"""The request path every call takes, whatever its surface (:meth:`Pipeline.serve`):

1. authentication, from the headers alone (the surface's; the AWS surface refuses an over-long declared
   body first), so that a bad or missing key never makes the service read a body;
2. capacity: a request that could not be served now is refused before its body is read;
3. parsing: the body, read within the limits (BodyGuard counts it and gives it a deadline), into one
   operation and its validated parameters (the surface's);
4. dispatch: the operation's handler, run on the bounded engine queue;
5. the response, and around it all :meth:`Pipeline.instrumented`: request id, typed errors in the surface's
   shape (never a bare 500), metrics and one JSON log line.

A surface (:class:`Surface`) supplies steps 1 and 3, its response and its error shape: ``aws_api`` for the
Rekognition protocol, ``rest_api`` for the native API."""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from ..engine import Verifier
from ..errors import FaceCompareError, ImageTooLargeException, InternalServerError, InvalidS3ObjectException
from ..memory import released_after_large_work
from ..sources import ImageReader
from ..storage import S3Reader
from .config import ServerConfig, s3_allowed
from .limits import OVER_CAPACITY, EngineQueue, OverCapacityError, ThrottlingError
from .logs import exception_fields, json_log
from .metrics import Metrics
from .protocol_errors import ProtocolError

CLIENT_CLOSED_REQUEST = 499  # the status label of a request whose client went away mid-body
NOT_JSON = object()
NOT_JSON_MESSAGE = "The request body is not valid JSON (or is nested more deeply than a request can be)."

ErrorResponse = Callable[[FaceCompareError, str], Response]  # a surface's error shape
Work = Callable[[str, dict], Awaitable[Response]]  # (request id, context) -> response
Handler = Callable[["Pipeline", Any], dict]  # one operation: (pipeline, its parameters) -> the response body


@dataclass
class Call:
    """A parsed request: the operation's handler and its validated parameters."""

    handler: Handler
    params: Any


class Surface(Protocol):
    """One protocol the service speaks; :meth:`Pipeline.serve` runs its steps in order."""

    name: str  # the log line's ``surface``

    def error(self, exc: FaceCompareError, request_id: str) -> Response:
        """A typed error in this surface's shape."""

    def authenticate(self, request: Request) -> Any:
        """Refuse a request from its headers alone (before its body is read); what it returns is given to
        :meth:`parse` (the AWS surface: the signature's pending payload check)."""

    def operation_hint(self, request: Request) -> str | None:
        """The operation, if the headers name it: the label of a request refused before its body is read."""

    async def parse(self, request: Request, auth: Any, context: dict) -> Call:
        """Read the body (within the limits) and parse it into one operation; name it in ``context``."""

    def respond(self, result: dict, request_id: str) -> Response:
        """The response to a handler's result."""


#: who makes the current request (the REST key's name or the SigV4 access key id; None with authentication off)
CALLER: contextvars.ContextVar[str | None] = contextvars.ContextVar("facecompare_caller", default=None)


def parse_json(body: bytes) -> object:
    """The JSON value of a request body (an empty body is ``{}``), or ``NOT_JSON``: malformed, not UTF-8, an
    integer of more than 4300 digits (ValueError), or nested so deeply that the parser would recurse past
    Python's limit (RecursionError, which is not a ValueError: it used to reach the catch-all as a 500)."""
    try:
        return json.loads(body or b"{}")
    except (ValueError, RecursionError):
        return NOT_JSON


def typed_error(exc: Exception) -> FaceCompareError | None:
    """The typed error a request failed with, or None for a bug. Besides our own errors, an HTTP-level error
    that Starlette raises while reading the request (an ``HTTPException`` with a 4xx status) keeps its status,
    as InvalidParameterException in the surface's shape."""
    if isinstance(exc, FaceCompareError):
        return exc
    if isinstance(exc, HTTPException) and 400 <= exc.status_code < 500:
        return ProtocolError("InvalidParameterException",
                                 f"Request has invalid parameters: {str(exc.detail)[:200]}", exc.status_code)
    return None


def _run_releasing(fn, *args):
    """Run ``fn``; the request's decoded images die with its frame, after the engine's own release. When they
    were large, give their memory back to the system too."""
    with released_after_large_work():
        return fn(*args)


@dataclass
class Pipeline:
    """What every handler shares (settings, the verifier, S3, metrics, the engine queue, readiness) and the
    steps of the request path that do not depend on the surface."""

    config: ServerConfig
    verifier: Verifier
    s3: S3Reader
    metrics: Metrics = field(default_factory=Metrics)
    ready: threading.Event = field(default_factory=threading.Event)
    engine: EngineQueue = field(init=False)
    images: ImageReader = field(init=False, repr=False)
    _collections: Any = field(init=False, default=None, repr=False)
    _collections_lock: threading.Lock = field(init=False, default_factory=threading.Lock, repr=False)
    _review: Any = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        self.engine = EngineQueue(self.config.concurrency, self.config.queue_limit)
        self.metrics.watch_engine(self.engine)
        from .sigv4 import ReplayGuard

        self.images = ImageReader(self.s3, self.verifier.settings)  # S3 objects (the one reader of sources.py)
        self.replays = ReplayGuard()  # SigV4 signatures accepted in the skew window (aws_api refuses a second use)

    @property
    def collections(self):
        """The face collections (:class:`facecompare.collections.service.Collections`) over the store of
        ``config.collections_url``, opened on first use (a service that never touches a collection never opens or
        creates the database)."""
        if self._collections is None:
            with self._collections_lock:
                if self._collections is None:
                    from ..collections import open_store
                    from ..collections.service import Collections

                    self._collections = Collections(self.verifier, open_store(self.config.collections_url),
                                                    max_faces_per_collection=self.config.collection_max_faces,
                                                    approximate_above=self.config.collection_approximate_above)
        return self._collections

    @property
    def review(self):
        """The review queue (:class:`facecompare.review.service.ReviewQueue`) in the collections' database, opened
        on first use (by a verify call that asks for queueing, or the console)."""
        if self._review is None:
            with self._collections_lock:
                if self._review is None:
                    from ..review.service import ReviewQueue
                    from ..review.store import open_review_store

                    self._review = ReviewQueue(open_review_store(self.config.collections_url),
                                               self.config.review_retention_days,
                                               max_concurrent_hashes=self.config.console_max_sign_ins)
        return self._review

    def purge_expired_reviews(self) -> int:
        """Erase the images of review cases past their retention (run every few minutes by the service). A SQLite
        file that does not exist yet is not created for it."""
        url = self.config.collections_url
        if self._review is None and url.startswith("sqlite:"):
            from ..collections.sqlite import path_from_url

            if not Path(path_from_url(url)).exists():
                return 0
        return len(self.review.purge())

    def close(self) -> None:
        """Release the collection and review stores' connections (at shutdown)."""
        if self._collections is not None:
            self._collections.store.close()
        if self._review is not None:
            self._review.store.close()

    # -- limits ----------------------------------------------------------------------------------------------

    def check_declared_length(self, request: Request) -> None:
        """Refuse a body whose Content-Length is over the limit before reading any of it."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.config.max_body_bytes:
            raise ImageTooLargeException(
                f"Request body of {int(declared):,} bytes is over the limit of {self.config.max_body_bytes:,}."
            )

    async def read_body(self, request: Request) -> bytes:
        """The whole body. BodyGuard counts it as it streams (chunked too) and refuses it past the limit, and
        bounds the time it may take to arrive."""
        self.check_declared_length(request)
        return b"".join([chunk async for chunk in request.stream()])

    def check_capacity(self, request: Request) -> None:
        """Refuse at once, before the body is read, a request that could not be served now: one on a connection
        over the worker's cap (503), or one that would find the engine's queue full (ThrottlingException).
        The body is then never read (BodyGuard closes the connection after the answer)."""
        if request.scope.get(OVER_CAPACITY):
            self.metrics.throttled.labels("connections").inc()
            raise OverCapacityError(f"{OverCapacityError.default_message} The server has too many connections "
                                    f"open; retry after {OverCapacityError.retry_after} s.")
        if self.engine.full():
            self.metrics.throttled.labels("queue").inc()
            raise self.engine.refusal()

    # -- dispatch --------------------------------------------------------------------------------------------

    async def run_engine(self, fn, *args):
        """Run ``fn`` in a thread, at most FACECOMPARE_CONCURRENCY at once; at most FACECOMPARE_MAX_QUEUE
        requests wait for a thread, and one more is refused at once (ThrottlingException) and its body freed."""
        try:
            with self.engine.admit():
                with anyio.fail_after(self.config.request_timeout):
                    return await anyio.to_thread.run_sync(_run_releasing, fn, *args,
                                                          limiter=self.engine.limiter, abandon_on_cancel=True)
        except ThrottlingError:
            self.metrics.throttled.labels("queue").inc()
            raise
        except TimeoutError:
            raise InternalServerError(f"Internal server error: the request took longer than "
                                      f"{self.config.request_timeout:g} s.") from None

    def check_s3_access(self, bucket: str, key: str) -> None:
        """FACECOMPARE_S3_ACCESS: the caller of this request (CALLER) may have this object read, or the answer is
        what Rekognition says when the caller lacks the permission (nothing tells whether the object exists)."""
        if not s3_allowed(self.config.s3_access, CALLER.get(), bucket, key):
            raise InvalidS3ObjectException("Unable to get object metadata from S3. Check object key, region and/or "
                                           "access permissions.")

    def image_bytes(self, source: tuple[str, object]) -> bytes:
        """The encoded bytes of a parsed source (IndexFaces hashes them for its idempotent ids)."""
        kind, value = source
        if kind == "bytes":
            return value
        bucket, key, version = value
        self.check_s3_access(bucket, key)
        return self.images.object_bytes(bucket, key, version)

    def load_image(self, source: tuple[str, object]):
        """An image from a parsed source: ``('bytes', data)`` or ``('s3', (bucket, key, version))``."""
        kind, value = source
        if kind == "bytes":
            return self.verifier.load(value)
        bucket, key, version = value
        self.check_s3_access(bucket, key)
        return self.images.load_object(self.verifier, bucket, key, version)

    # -- the path --------------------------------------------------------------------------------------------

    async def serve(self, surface: Surface, request: Request, operation: str = "unknown") -> Response:
        """One request through the steps of the module's docstring. ``operation`` is its label until the
        surface names it (the REST routes know it from the path; the AWS surface from X-Amz-Target)."""

        async def work(request_id: str, context: dict) -> Response:
            auth = surface.authenticate(request)  # 1. authentication, from the headers
            # who called, for the log line: the REST key's name or the SigV4 access key id (never a key itself)
            context["key"] = auth if isinstance(auth, str) else getattr(auth, "access_key", None)
            CALLER.set(context["key"])  # for FACECOMPARE_S3_ACCESS (read in the engine thread: contexts are copied)
            try:  # 2. capacity, before the body
                self.check_capacity(request)
            except ThrottlingError:
                with suppress(FaceCompareError):
                    context["operation"] = surface.operation_hint(request) or context["operation"]
                raise
            call = await surface.parse(request, auth, context)  # 3. parsing (the body, within the limits)
            result = await self.run_engine(call.handler, self, call.params)  # 4. dispatch
            return surface.respond(result, request_id)  # 5. the response (its log line: instrumented)

        return await self.instrumented(surface.name, operation, work, surface.error)

    # -- response and log line -------------------------------------------------------------------------------

    async def instrumented(self, surface: str, operation: str, work: Work, error_response: ErrorResponse) -> Response:
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
                json_log(logging.ERROR, event="internal_error", request_id=request_id, **exception_fields(exc))
                error = InternalServerError()
            if "signature" in context:  # a request that failed may be retried with the same signature
                self.replays.forget(context["signature"])
            if "stored_signature" in context:  # ... whichever worker or replica the retry reaches
                with suppress(Exception):  # the store may be what failed: the signature then expires with the window
                    await anyio.to_thread.run_sync(self.collections.store.forget_signature,
                                                   context["stored_signature"])
            response = error_response(error, request_id)
            context["status"] = response.status_code  # a surface's own status (REST: 429 for throttling)
            context["error"] = error.code
            self.metrics.errors.labels(error.code).inc()
            return response
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.requests.labels(context["operation"], str(context["status"])).inc()
            self.metrics.latency.labels(context["operation"]).observe(elapsed)
            json_log(request_id=request_id, surface=surface, operation=context["operation"],
                     status=context["status"], **({"error": context["error"]} if "error" in context else {}),
                     key=context.get("key"), ms=round(1000 * elapsed, 1))
