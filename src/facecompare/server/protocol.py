"""uvicorn's h11 protocol with the connection limits uvicorn lacks or answers in the wrong shape.

* A header timeout (FACECOMPARE_HEADER_TIMEOUT). uvicorn waits for a request's headers forever: a new
  connection that sends nothing, or sends its headers a byte at a time, holds a connection slot (and counts
  against the cap below) for as long as the client likes, and on a keep-alive connection the first byte of
  the next request stops the keep-alive timeout for good. Here a request's headers must be complete within
  the timeout of its first byte (of the connection's opening, for a new connection), or the connection is
  closed; an idle keep-alive connection is still uvicorn's (FACECOMPARE_KEEPALIVE_TIMEOUT). A connection the
  server closed must finish closing (the client reading what was left to send) within the header timeout
  too, or it is dropped.
* A send timeout (FACECOMPARE_BODY_TIMEOUT). uvicorn waits forever for a client that stops reading its
  responses (pipelined requests whose answers fill the socket buffers): here, when the buffers are full, the
  client has that long to make room, or the connection is dropped.
* The connection cap (uvicorn's ``limit_concurrency``, set from FACECOMPARE_MAX_CONNECTIONS). uvicorn answers a
  request over it with a plain-text 503 (and counts the connection it arrives on, so only ``limit - 1``
  connections are served). Here the request goes to the app flagged ``OVER_CAPACITY`` in its scope, and the
  app answers 503 in the surface's error shape (ThrottlingException, Retry-After) and counts it in /metrics;
  at most ``limit`` connections are served.

``facecompare serve`` runs uvicorn with ``http="facecompare.server.protocol:FaceCompareH11Protocol"``.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.h11_impl import H11Protocol

from .config import connection_timeouts
from .limits import OVER_CAPACITY

# reason -> connections this worker closed or dropped on a timeout: header_timeout (no complete request headers
# in time), send_timeout (the client stopped reading what the server had to send)
CLOSED: Counter[str] = Counter()


class _TimedFlowControl(FlowControl):
    """uvicorn's write flow control, with a bound on how long a response waits for the client to read."""

    def __init__(self, transport, timeout: float) -> None:
        super().__init__(transport)
        self.timeout = timeout

    async def drain(self) -> None:
        try:
            await asyncio.wait_for(self._is_writable_event.wait(), self.timeout)
        except TimeoutError:
            CLOSED["send_timeout"] += 1
            self._transport.abort()  # connection_lost follows: it marks the request disconnected and sets the event
            await self._is_writable_event.wait()


class FaceCompareH11Protocol(H11Protocol):
    _header_timeout: float | None = None  # read once per worker process (config.connection_timeouts)
    _send_timeout: float | None = None

    def __init__(self, config, server_state, app_state, _loop=None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        if FaceCompareH11Protocol._header_timeout is None:
            FaceCompareH11Protocol._header_timeout, FaceCompareH11Protocol._send_timeout = connection_timeouts()
        self.max_connections = self.limit_concurrency
        self.limit_concurrency = None  # over the cap, the app answers (see _flag_over_capacity)
        self._inner_app = self.app
        self.app = self._flag_over_capacity
        self._header_timer: asyncio.TimerHandle | None = None

    async def _flag_over_capacity(self, scope, receive, send) -> None:
        # this request's own task and connection are counted already, hence ">" where uvicorn has ">="
        cap = self.max_connections
        if cap is not None and (len(self.connections) > cap or len(self.tasks) > cap):
            scope[OVER_CAPACITY] = True
        await self._inner_app(scope, receive, send)

    # -- the header timeout -----------------------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.flow = _TimedFlowControl(transport, self._send_timeout)
        self._watch_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # starts the keep-alive timeout, and the next pipelined request if any
        if self.transport.is_closing():
            self._watch_headers()  # drop the connection if the close cannot finish
        elif not self._handling_request():
            self._stop_header_timer()  # idle: the keep-alive timeout applies until the next request's first byte

    def timeout_keep_alive_handler(self) -> None:
        super().timeout_keep_alive_handler()
        self._watch_headers()  # drop the connection if the close cannot finish

    def connection_lost(self, exc) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def _handling_request(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _watch_headers(self) -> None:
        """Arm the timer when a request starts arriving (once: more bytes do not extend it), or when the
        connection is closing; stop it once the request's headers are in and the app has it."""
        if self._handling_request():
            self._stop_header_timer()
        elif self._header_timer is None:
            self._header_timer = self.loop.call_later(self._header_timeout, self._header_timed_out)

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self._handling_request():
            return
        if self.transport.is_closing():  # closed, but the client has not read what was left to send
            CLOSED["send_timeout"] += 1
            self.transport.abort()
            return
        CLOSED["header_timeout"] += 1
        self.transport.close()
        self._watch_headers()  # and if the close cannot finish (unread data), drop it after one more timeout
