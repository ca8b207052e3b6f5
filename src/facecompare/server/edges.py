"""The service's own edges against browsers (issue 22): which ``Host`` names it answers (DNS rebinding), and which
REST requests a web page may not make on a visitor's behalf.

* DNS rebinding: a page on ``evil.example`` whose name is made to resolve to 127.0.0.1 talks to the service as if it
  were its own origin (the browser sends ``Host: evil.example:PORT``). So a ``Host`` that is a name must be
  ``localhost`` or one of FACECOMPARE_ALLOWED_HOSTS; an IP address is always accepted (no name, nothing to rebind).
  With authentication on and FACECOMPARE_ALLOWED_HOSTS unset, any name is accepted (callers must sign or carry a
  key; the console's cookies belong to its own name).
* Forged REST calls (:func:`check_browser_request`): a page may POST a ``text/plain`` body without asking (no CORS
  preflight). A REST body must be ``application/json`` or ``multipart/form-data``, and a request that changes
  something and carries ``Origin`` must come from the service's own origin (or FACECOMPARE_CONSOLE_ORIGINS).
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from urllib.parse import urlsplit

from ..errors import FaceCompareError, InvalidParameterException

LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


class ForbiddenOriginError(FaceCompareError):
    code = "AccessDeniedException"
    http_status = 403
    default_message = "Requests from another web site's pages are refused."


class UnsupportedMediaTypeError(InvalidParameterException):
    rest_status = 415


def host_name(host: str) -> str:
    """The name of a Host header, without its port, lowercased (``[::1]:80`` -> ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(host: str | None, allowed: frozenset[str], auth: bool) -> bool:
    if not host:
        return True  # HTTP/1.0 without Host: no browser sends that
    name = host_name(host)
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    if name in LOOPBACK_NAMES or name in allowed:
        return True
    return auth and not allowed


class HostGuard:
    """ASGI middleware: a request whose Host is a name the service does not answer to is a 400, in the AWS shape
    on ``POST /`` and the REST shape elsewhere; the name is not echoed."""

    def __init__(self, app, allowed_hosts: frozenset[str], auth: bool) -> None:
        self.app = app
        self.allowed = frozenset(name.lower() for name in allowed_hosts)
        self.auth = auth

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = next((value.decode("latin-1") for name, value in scope.get("headers", ()) if name == b"host"), None)
        if host_allowed(host, self.allowed, self.auth):
            await self.app(scope, receive, send)
            return
        message = ("This service does not answer to that Host name; add it to FACECOMPARE_ALLOWED_HOSTS if it is "
                   "one of the service's own names.")
        request_id = str(uuid.uuid4())
        if scope.get("path") == "/":
            body = {"__type": "InvalidParameterException", "Message": message}
            content_type = b"application/x-amz-json-1.1"
        else:
            body = {"error": {"type": "InvalidParameterException", "message": message}, "request_id": request_id}
            content_type = b"application/json"
        data = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": 400,
                    "headers": [(b"content-type", content_type), (b"content-length", str(len(data)).encode()),
                                (b"x-request-id", request_id.encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": data})


def check_browser_request(method: str, headers, scheme: str, allowed_origins: frozenset[str]) -> None:
    """Refuse a REST request a web page could make without the browser asking first: one that changes something
    from another origin (Origin present and not the service's own), or whose body is not JSON or multipart."""
    if method in ("GET", "HEAD", "OPTIONS"):
        return
    origin = headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin) if origin != "null" else None
        own = parts is not None and (
            f"{parts.scheme}://{parts.netloc}".lower() in allowed_origins
            or (parts.netloc.lower() == headers.get("host", "").lower() and parts.scheme in ("http", "https")))
        if not own:
            raise ForbiddenOriginError()
    content_type = headers.get("content-type")
    has_body = headers.get("content-length", "0").strip() not in ("", "0") or "transfer-encoding" in headers
    if content_type is None and not has_body:
        return
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in ("application/json", "multipart/form-data"):
        raise UnsupportedMediaTypeError("The request body must be application/json or multipart/form-data (set "
                                        "Content-Type).")
