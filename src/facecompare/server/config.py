"""The service's settings (``ServerConfig``, from FACECOMPARE_* variables) and the REST API keys' hashes."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import sigv4
from .limits import DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, env_number

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


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
    #: where face collections live (FACECOMPARE_COLLECTIONS): ``sqlite:///path.db`` (relative to the working
    #: directory; four slashes for an absolute path) or ``postgresql://...``; opened on the first collection call
    collections_url: str = "sqlite:///facecompare-collections.db"
    #: faces per collection at most (FACECOMPARE_COLLECTION_MAX_FACES); IndexFaces beyond it is
    #: ServiceQuotaExceededException
    collection_max_faces: int = 20_000_000
    #: faces above which a collection is searched with the approximate index
    #: (FACECOMPARE_COLLECTION_APPROXIMATE_ABOVE); None (the default): always exact search
    collection_approximate_above: int | None = None
    #: days after which a review case's images are erased (FACECOMPARE_REVIEW_RETENTION_DAYS)
    review_retention_days: float = 30.0
    #: the console's cookies carry Secure (FACECOMPARE_CONSOLE_SECURE_COOKIES=off only for plain HTTP on a LAN
    #: during a trial: browsers send Secure cookies over HTTPS, and over plain HTTP to localhost only)
    console_secure_cookies: bool = True
    #: the origins (scheme://host[:port]) the console's forms may be posted from (FACECOMPARE_CONSOLE_ORIGINS,
    #: comma-separated); empty: the request's own Host
    console_origins: frozenset[str] = frozenset()
    #: the AWS endpoint accepts HEIC/HEIF, WebP, AVIF and PDF too (FACECOMPARE_AWS_EXTRA_FORMATS=on); off (the
    #: default), it keeps Rekognition's contract: JPEG and PNG, InvalidImageFormatException for the others.
    #: The REST API, the CLI and the library accept them all
    aws_extra_formats: bool = False

    @property
    def queue_limit(self) -> int:
        return 4 * max(1, self.concurrency) if self.max_queue is None else self.max_queue

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> ServerConfig:
        environ = os.environ if environ is None else environ
        try:  # a missing or malformed keys file stops the server with a message, not a traceback
            access_keys = sigv4.load_keys(environ)
            api_key_hashes = load_api_key_hashes(environ.get("FACECOMPARE_API_KEYS_FILE"))
        except ValueError as exc:
            raise SystemExit(f"facecompare serve: {exc}.") from None
        from ..errors import InvalidParameterException
        from ..review.service import retention_days_from_env

        try:
            retention_days = retention_days_from_env(environ)
        except InvalidParameterException as exc:
            raise SystemExit(f"facecompare serve: {exc.message}") from None
        config = cls(
            auth=environ.get("FACECOMPARE_AUTH", "on").lower() not in ("off", "none", "0", "false"),
            access_keys=access_keys,
            region=(environ.get("FACECOMPARE_REGION") or "").strip() or sigv4.DEFAULT_REGION,
            api_key_hashes=api_key_hashes,
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
            collections_url=(environ.get("FACECOMPARE_COLLECTIONS") or "").strip()
            or "sqlite:///facecompare-collections.db",
            collection_max_faces=env_number(environ, "FACECOMPARE_COLLECTION_MAX_FACES", 20_000_000, int, minimum=1),
            collection_approximate_above=env_number(environ, "FACECOMPARE_COLLECTION_APPROXIMATE_ABOVE", None, int,
                                                    minimum=0, allow_none=True),
            review_retention_days=retention_days,
            console_secure_cookies=environ.get("FACECOMPARE_CONSOLE_SECURE_COOKIES", "on").strip().lower()
            not in ("off", "0", "false", "no"),
            console_origins=console_origins(environ.get("FACECOMPARE_CONSOLE_ORIGINS", "")),
            aws_extra_formats=on_off(environ, "FACECOMPARE_AWS_EXTRA_FORMATS", False),
        )
        for k, v in overrides.items():
            if v is not None:
                setattr(config, k, v)
        return config


def on_off(environ, name: str, default: bool) -> bool:
    """An on/off variable (on, true, yes, 1 / off, false, no, 0); anything else stops the server naming it."""
    raw = (environ.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("on", "true", "yes", "1"):
        return True
    if raw in ("off", "false", "no", "0"):
        return False
    raise SystemExit(f"facecompare serve: {name}={raw[:40]!r}: use on or off")


def console_origins(value: str) -> frozenset[str]:
    """FACECOMPARE_CONSOLE_ORIGINS: origins such as ``https://review.example.com`` separated by commas; anything
    else stops the server with a message naming the variable."""
    origins = set()
    for item in filter(None, (part.strip() for part in value.split(","))):
        if not re.match(r"^https?://[^/\s?#]+\Z", item):
            raise SystemExit(f"facecompare serve: FACECOMPARE_CONSOLE_ORIGINS: {item[:80]!r} is not an origin "
                             "(scheme://host[:port], e.g. https://review.example.com, no path)")
        origins.add(item.lower())
    return frozenset(origins)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def load_api_key_hashes(path: str | None) -> set[str]:
    """One SHA-256 hex digest per line (``name:digest`` also accepted); the keys themselves are never stored.

    Raises ValueError for a file that cannot be read or a line that is not a digest (a key pasted instead of
    its hash would otherwise be accepted and never match)."""
    if not path:
        return set()
    where = f"FACECOMPARE_API_KEYS_FILE={path[:200]!r}"
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where}: cannot read it ({type(exc).__name__})") from None
    hashes = set()
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            digest = line.rsplit(":", 1)[-1].strip().lower()
            if not _SHA256_HEX.match(digest):
                raise ValueError(f"{where} line {number}: expected 'name:sha256' as `facecompare api-key` prints "
                                 "it (64 hexadecimal digits after the last ':'), not the key itself")
            hashes.add(digest)
    return hashes


