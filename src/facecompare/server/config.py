"""The service's settings (``ServerConfig``, from FACECOMPARE_* variables) and the REST API keys' hashes."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigurationError
from ..settings import env_number
from . import sigv4
from .limits import DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class ServerConfig:
    auth: bool = True  # verify SigV4 on the AWS endpoint and API keys on /v1
    access_keys: dict[str, str] = field(default_factory=dict)  # SigV4 access key -> secret
    region: str = sigv4.DEFAULT_REGION  # the region SigV4 credential scopes must name (FACECOMPARE_REGION)
    api_key_hashes: set[str] = field(default_factory=set)  # sha256 hex of the /v1 API keys
    api_key_names: dict[str, str] = field(default_factory=dict)  # sha256 hex -> the name beside it in the file
    #: the Host names the service answers to besides IP addresses and localhost (FACECOMPARE_ALLOWED_HOSTS,
    #: comma-separated; DNS rebinding). Empty: any name with authentication on, none with it off
    allowed_hosts: frozenset[str] = frozenset()
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
    #: console password checks (argon2id, 64 MiB each) at once per worker (FACECOMPARE_CONSOLE_MAX_SIGN_INS);
    #: a sign-in beyond them is a 429 before anything is hashed
    console_max_sign_ins: int = 2
    #: the proxies whose X-Forwarded-For is believed (FACECOMPARE_TRUSTED_PROXIES: addresses or networks,
    #: comma-separated); empty (the default): the client is the connection's peer address, headers are ignored
    trusted_proxies: tuple = ()
    #: refuse a second use of an accepted SigV4 signature within the clock-skew window (FACECOMPARE_SIGV4_REPLAY=
    #: refuse, the default; allow: as AWS, which accepts replays within the window)
    refuse_replays: bool = True
    #: which S3 objects each caller may have read (FACECOMPARE_S3_ACCESS): caller name (a REST key's name, a SigV4
    #: access key id, or * for any) -> (bucket, key prefix) pairs. None (unset): every caller reads whatever the
    #: service's own S3 credentials reach; once set, a caller or object without a rule is refused
    s3_access: dict[str, tuple[tuple[str, str], ...]] | None = None
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
        except ValueError as exc:
            raise ConfigurationError(f"{exc}.", setting="FACECOMPARE_AUTH_KEYS_FILE") from None
        try:
            api_key_names = load_api_keys(environ.get("FACECOMPARE_API_KEYS_FILE"))
        except ValueError as exc:
            raise ConfigurationError(f"{exc}.", setting="FACECOMPARE_API_KEYS_FILE") from None
        from ..errors import InvalidParameterException
        from ..review.service import retention_days_from_env

        try:
            retention_days = retention_days_from_env(environ)
        except InvalidParameterException as exc:
            raise ConfigurationError(exc.message, setting="FACECOMPARE_REVIEW_RETENTION_DAYS") from None
        config = cls(
            auth=environ.get("FACECOMPARE_AUTH", "on").lower() not in ("off", "none", "0", "false"),
            access_keys=access_keys,
            region=(environ.get("FACECOMPARE_REGION") or "").strip() or sigv4.DEFAULT_REGION,
            api_key_hashes=set(api_key_names),
            api_key_names=api_key_names,
            allowed_hosts=frozenset(name.strip().lower().rstrip(".") for name in
                                    environ.get("FACECOMPARE_ALLOWED_HOSTS", "").split(",") if name.strip()),
            max_body_bytes=env_number(environ, "FACECOMPARE_MAX_BODY_BYTES", 16 * 1024 * 1024, int, minimum=1),
            request_timeout=env_number(environ, "FACECOMPARE_REQUEST_TIMEOUT", 60.0, float, minimum=0.1),
            concurrency=env_number(environ, "FACECOMPARE_CONCURRENCY", 2, int, minimum=1),
            max_queue=env_number(environ, "FACECOMPARE_MAX_QUEUE", None, int, minimum=0),
            body_timeout=body_timeout_setting(environ),
            max_connections=env_number(environ, "FACECOMPARE_MAX_CONNECTIONS", 64, int, minimum=1,
                                       allow_none=True),
            header_timeout=header_timeout_setting(environ),
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
            console_max_sign_ins=env_number(environ, "FACECOMPARE_CONSOLE_MAX_SIGN_INS", 2, int, minimum=1),
            trusted_proxies=trusted_proxies(environ.get("FACECOMPARE_TRUSTED_PROXIES", "")),
            refuse_replays=replay_setting(environ.get("FACECOMPARE_SIGV4_REPLAY", "")),
            s3_access=s3_access_rules(environ.get("FACECOMPARE_S3_ACCESS", "")),
            aws_extra_formats=on_off(environ, "FACECOMPARE_AWS_EXTRA_FORMATS", False),
        )
        for k, v in overrides.items():
            if v is not None:
                setattr(config, k, v)
        return config


def header_timeout_setting(environ) -> float:
    """FACECOMPARE_HEADER_TIMEOUT: seconds a request's headers have to arrive (uvicorn's protocol, protocol.py)."""
    return env_number(environ, "FACECOMPARE_HEADER_TIMEOUT", DEFAULT_HEADER_TIMEOUT, float, minimum=0.1)


def body_timeout_setting(environ) -> float:
    """FACECOMPARE_BODY_TIMEOUT: seconds a request's body has to arrive (BodyGuard), and a response's reader has to
    make room (protocol.py)."""
    return env_number(environ, "FACECOMPARE_BODY_TIMEOUT", DEFAULT_BODY_TIMEOUT, float, minimum=0.1)


def connection_timeouts(environ: dict[str, str] | None = None) -> tuple[float, float]:
    """(header timeout, send timeout) for uvicorn's protocol, which starts before any app (and ServerConfig) exists
    in the worker: the same two variables as ``ServerConfig.header_timeout`` and ``body_timeout``."""
    environ = os.environ if environ is None else environ
    return header_timeout_setting(environ), body_timeout_setting(environ)


def on_off(environ, name: str, default: bool) -> bool:
    """An on/off variable (on, true, yes, 1 / off, false, no, 0); anything else is ConfigurationError naming it."""
    raw = (environ.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("on", "true", "yes", "1"):
        return True
    if raw in ("off", "false", "no", "0"):
        return False
    raise ConfigurationError(f"{name}={raw[:40]!r}: use on or off", setting=name)


def console_origins(value: str) -> frozenset[str]:
    """FACECOMPARE_CONSOLE_ORIGINS: origins such as ``https://review.example.com`` separated by commas; anything
    else is ConfigurationError naming the variable."""
    origins = set()
    for item in filter(None, (part.strip() for part in value.split(","))):
        if not re.match(r"^https?://[^/\s?#]+\Z", item):
            raise ConfigurationError(f"FACECOMPARE_CONSOLE_ORIGINS: {item[:80]!r} is not an origin "
                                     "(scheme://host[:port], e.g. https://review.example.com, no path)",
                                     setting="FACECOMPARE_CONSOLE_ORIGINS")
        origins.add(item.lower())
    return frozenset(origins)


def s3_access_rules(value: str) -> dict[str, tuple[tuple[str, str], ...]] | None:
    """FACECOMPARE_S3_ACCESS: ``caller=bucket[/prefix][,bucket[/prefix]...]`` rules separated by ``;``. Empty:
    None (no rules: everything the service's credentials reach). Anything malformed is ConfigurationError."""
    if not value.strip():
        return None
    rules: dict[str, list[tuple[str, str]]] = {}
    for rule in filter(None, (part.strip() for part in value.split(";"))):
        caller, sep, objects = rule.partition("=")
        caller = caller.strip()
        places = [item.strip() for item in objects.split(",") if item.strip()]
        if not sep or not caller or not places:
            raise ConfigurationError("FACECOMPARE_S3_ACCESS: each rule is caller=bucket[/prefix][,...] "
                                     f"(rules separated by ';'); got {rule[:60]!r}", setting="FACECOMPARE_S3_ACCESS")
        for place in places:
            bucket, _, prefix = place.partition("/")
            if not re.match(r"^[a-z0-9][a-z0-9.-]{1,62}\Z", bucket):
                raise ConfigurationError(f"FACECOMPARE_S3_ACCESS: {bucket[:64]!r} is not a bucket name",
                                         setting="FACECOMPARE_S3_ACCESS")
            rules.setdefault(caller, []).append((bucket, prefix))
    return {caller: tuple(places) for caller, places in rules.items()}


def s3_allowed(rules: dict[str, tuple[tuple[str, str], ...]] | None, caller: str | None, bucket: str,
               key: str) -> bool:
    """Whether ``caller`` may have ``s3://bucket/key`` read: no rules at all, or a rule of its own (or of ``*``)
    naming the bucket and a prefix of the key."""
    if rules is None:
        return True
    places = (*rules.get(caller or "", ()), *rules.get("*", ())) if caller else rules.get("*", ())
    return any(bucket == b and key.startswith(prefix) for b, prefix in places)


def replay_setting(value: str) -> bool:
    value = value.strip().lower()
    if value not in ("", "refuse", "allow"):
        raise ConfigurationError(f"FACECOMPARE_SIGV4_REPLAY={value[:40]!r} is not valid: refuse (the default) or "
                                 "allow.", setting="FACECOMPARE_SIGV4_REPLAY")
    return value != "allow"


def trusted_proxies(value: str) -> tuple:
    """FACECOMPARE_TRUSTED_PROXIES: IP addresses or networks (``10.0.0.0/8``) separated by commas."""
    networks = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigurationError(f"FACECOMPARE_TRUSTED_PROXIES: {item[:80]!r} is not an IP address or network "
                                     "(e.g. 127.0.0.1 or 10.0.0.0/8)", setting="FACECOMPARE_TRUSTED_PROXIES") from None
    return tuple(networks)


def client_address(peer: str | None, forwarded_for: str | None, proxies: tuple) -> str:
    """Who a request comes from, for per-client budgets: the connection's peer, or, when the peer is a trusted
    proxy, the nearest address in X-Forwarded-For that is not one (a client can prepend anything to the header,
    so it is read from the right, and only through proxies the operator named)."""
    def trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in network for network in proxies)

    peer = peer or "-"
    if not proxies or not trusted(peer) or not forwarded_for:
        return peer
    for hop in reversed([part.strip() for part in forwarded_for.split(",")][:32]):
        if hop and not trusted(hop):
            return hop[:64]
    return peer


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def load_api_key_hashes(path: str | None) -> set[str]:
    """One SHA-256 hex digest per line (``name:digest`` also accepted); the keys themselves are never stored.

    Raises ValueError for a file that cannot be read or a line that is not a digest (a key pasted instead of
    its hash would otherwise be accepted and never match)."""
    return set(load_api_keys(path))


def load_api_keys(path: str | None) -> dict[str, str]:
    """The API keys file as {digest: name} (the name before the last ':', empty when the line has none): the name
    is what the request log says made a call. Errors as :func:`load_api_key_hashes`."""
    if not path:
        return {}
    where = f"FACECOMPARE_API_KEYS_FILE={path[:200]!r}"
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where}: cannot read it ({type(exc).__name__})") from None
    keys: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, digest = line.rpartition(":")
            digest = digest.strip().lower()
            if not _SHA256_HEX.match(digest):
                raise ValueError(f"{where} line {number}: expected 'name:sha256' as `facecompare api-key` prints "
                                 "it (64 hexadecimal digits after the last ':'), not the key itself")
            keys[digest] = "".join(c for c in name.strip() if c.isprintable())[:64]
    return keys


