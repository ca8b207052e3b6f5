"""What one client, or many at once, can make a worker hold: request bodies (counted while they stream, and
given a deadline), requests waiting for the engine (a bounded queue; beyond it an immediate
ThrottlingException) and, with :mod:`facecompare.server.protocol`, connections.

The uvicorn-level limits (header timeout, connection cap) live in ``protocol.py``; this module is the
app-level half and has no uvicorn import, so ``create_app`` under any ASGI server gets it."""

from __future__ import annotations

from contextlib import contextmanager

import anyio

from ..errors import FaceCompareError, ImageTooLargeException

OVER_CAPACITY = "facecompare.over_capacity"  # scope key: the request arrived over the worker's connection cap
DEFAULT_HEADER_TIMEOUT = 10.0  # FACECOMPARE_HEADER_TIMEOUT
DEFAULT_BODY_TIMEOUT = 30.0  # FACECOMPARE_BODY_TIMEOUT
RETRY_AFTER_SECONDS = 1  # the hint given with every throttling answer (Retry-After; x-amz-retry-after in ms)
THROTTLING_MESSAGE = "Slow down; sudden increase in rate of requests."  # Rekognition's canonical message


class ThrottlingError(FaceCompareError):
    """Too many requests waiting for the engine in this worker. On the AWS endpoint a 400 ThrottlingException
    (boto3 retries it by itself, with backoff); on the REST API a 429. Both carry Retry-After."""

    code = "ThrottlingException"
    http_status = 400
    rest_status = 429
    default_message = THROTTLING_MESSAGE
    retry_after = RETRY_AFTER_SECONDS


class OverCapacityError(ThrottlingError):
    """The request arrived on a connection over the worker's cap (FACECOMPARE_MAX_CONNECTIONS): 503 on both
    surfaces, as uvicorn's own cap answers, but in the surface's error shape."""

    http_status = 503
    rest_status = 503


class RequestTimeoutError(FaceCompareError):
    """The request body did not arrive within FACECOMPARE_BODY_TIMEOUT of its headers."""

    code = "RequestTimeoutException"
    http_status = 400
    default_message = "The request body did not arrive in time."


class EngineQueue:
    """Engine calls of one worker: at most ``concurrency`` run at once (threads), at most ``max_queue`` more
    wait for one of them; a request beyond that is refused at once with :class:`ThrottlingError` instead of
    joining a queue that grows with the load. Single event loop: no lock needed."""

    def __init__(self, concurrency: int, max_queue: int) -> None:
        self.concurrency = max(1, concurrency)
        self.max_queue = max(0, max_queue)
        self.limiter = anyio.CapacityLimiter(self.concurrency)
        self.admitted = 0  # running + waiting

    @property
    def running(self) -> int:
        return int(self.limiter.borrowed_tokens)

    @property
    def waiting(self) -> int:
        return max(0, self.admitted - self.running)

    def full(self) -> bool:
        return self.admitted >= self.concurrency + self.max_queue

    def refusal(self) -> ThrottlingError:
        return ThrottlingError(f"{THROTTLING_MESSAGE} The server is busy ({self.admitted} requests running or "
                               f"waiting, its limit); retry after {RETRY_AFTER_SECONDS} s.")

    @contextmanager
    def admit(self):
        if self.full():
            raise self.refusal()
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1


def _declared_body(headers) -> tuple[bool, int | None]:
    """(a body follows, its Content-Length if declared) from the raw request headers."""
    length, chunked = None, False
    for name, value in headers:
        if name == b"content-length" and value.strip().isdigit():
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = True
    return chunked or bool(length), length


class _Body:
    """One request's receive channel, counted and timed while the body streams."""

    def __init__(self, scope, receive, max_bytes: int, timeout: float) -> None:
        self._receive = receive
        self.max_bytes = max_bytes
        self.timeout = timeout
        expected, self.declared = _declared_body(scope.get("headers", ()))
        self.complete = not expected  # a GET or an empty POST has nothing left to read
        self.received = 0
        self.deadline = anyio.current_time() + timeout

    async def receive(self):
        if self.complete:  # after the body: only a disconnect can come, and waiting for it is the app's choice
            return await self._receive()
        try:
            with anyio.fail_after(max(0.0, self.deadline - anyio.current_time())):
                message = await self._receive()
        except TimeoutError:
            of = f" of {self.declared:,}" if self.declared is not None else ""
            raise RequestTimeoutError(
                f"The request body did not arrive in time: {self.received:,}{of} bytes in {self.timeout:g} s."
            ) from None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.max_bytes:  # counted as it streams: chunked bodies and multipart too
                raise ImageTooLargeException(f"Request body is over the limit of {self.max_bytes:,} bytes.")
            if not message.get("more_body", False):
                self.complete = True
        return message


class BodyGuard:
    """ASGI middleware: every request body is counted while it streams and refused (ImageTooLargeException,
    raised from ``receive``) as soon as it passes ``max_body_bytes``, whatever its framing (Content-Length,
    chunked, multipart); it must arrive within ``body_timeout`` of the headers (RequestTimeoutException). A
    response sent before the body was fully received (a refusal, an auth error, a throttle) says
    ``Connection: close``, so the server closes the connection instead of reading the rest of the body."""

    def __init__(self, app, max_body_bytes: int, body_timeout: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = _Body(scope, receive, self.max_body_bytes, self.body_timeout)

        async def send_closing(message) -> None:
            if message["type"] == "http.response.start" and not body.complete:
                headers = [h for h in message.get("headers", ()) if h[0].lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, body.receive, send_closing)
