"""AWS Signature Version 4 verification for requests signed by boto3 (service ``rekognition``).

Two phases, so that an unauthenticated request never makes the server buffer its body:

* :func:`verify_headers` checks everything that does not need the body (one well-formed ``Authorization``,
  known access key, service and region scope, date and clock skew, required signed headers, no duplicated
  security-relevant header) and returns a :class:`PendingSignature`;
* :meth:`PendingSignature.verify_payload` hashes the body and checks the signature itself (boto3's Rekognition
  requests carry no ``X-Amz-Content-SHA256``, so the payload hash needs the body).

:func:`verify` runs both for callers that already hold the body.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, unquote_to_bytes

from ..errors import FaceCompareError

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = dt.timedelta(minutes=5)
DEFAULT_REGION = "us-east-1"
# Headers that boto3 always signs for this service and that decide what the request does: without them in
# SignedHeaders the operation (x-amz-target), the freshness (x-amz-date) or the addressee (host) could be
# rewritten after signing. botocore's SigV4Auth signs every header but a small blacklist (user-agent, expect,
# connection, x-amzn-trace-id, ...), so boto3 always meets this; content-type and any x-amz-* header are
# required only when the request has them (botocore then signs them too; AWS's documented rule).
REQUIRED_SIGNED = ("host", "x-amz-date", "x-amz-target")
# Headers that must occur at most once (besides every header named in SignedHeaders): a second copy could be
# the one the signature was checked on while the other is acted upon.
SINGLE_VALUED = ("authorization", "x-amz-target", "x-amz-date", "host", "x-amz-content-sha256",
                 "x-amz-security-token", "content-type")
_SIGNED_NAME = {"host": "'Host' or ':authority'", "x-amz-date": "'X-Amz-Date'", "x-amz-target": "'X-Amz-Target'",
                "content-type": "'Content-Type'"}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DATE = re.compile(r"^\d{8}$")
_HEADER_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+$")
_BAD_SIGNATURE = ("The request signature we calculated does not match the signature you provided. Check your AWS "
                  "Secret Access Key and signing method. Consult the service documentation for details.")


class AuthError(FaceCompareError):
    """An authentication failure; ``code`` is the AWS error type boto3 sees."""

    http_status = 400

    def __init__(self, code: str, message: str, status: int = 400, lower_message: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = status


def load_keys(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Access keys: ``FACECOMPARE_AUTH_KEYS="AKID:SECRET,AKID2:SECRET2"`` and/or a file named by
    ``FACECOMPARE_AUTH_KEYS_FILE`` (JSON object {access_key: secret}, or lines ``access_key secret``)."""
    environ = os.environ if environ is None else environ
    keys: dict[str, str] = {}
    for item in filter(None, (environ.get("FACECOMPARE_AUTH_KEYS") or "").split(",")):
        access, _, secret = item.strip().partition(":")
        if access and secret:
            keys[access] = secret
    path = environ.get("FACECOMPARE_AUTH_KEYS_FILE")
    if path:
        where = f"FACECOMPARE_AUTH_KEYS_FILE={path[:200]!r}"
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{where}: cannot read it ({type(exc).__name__})") from None
        if text.lstrip().startswith("{"):
            try:
                loaded = json.loads(text)
            except ValueError as exc:
                raise ValueError(f"{where}: not valid JSON ({str(exc)[:100]})") from None
            if not isinstance(loaded, dict) or not all(isinstance(v, str) and v for v in loaded.values()):
                raise ValueError(f"{where}: the JSON must be an object of access key -> secret strings")
            keys.update({str(k): v for k, v in loaded.items()})
        else:
            for number, line in enumerate(text.splitlines(), start=1):
                parts = line.split()
                if not parts or parts[0].startswith("#"):
                    continue
                if len(parts) != 2:  # a key silently skipped would surface only as clients' signature errors
                    raise ValueError(f"{where} line {number}: expected 'ACCESS_KEY SECRET' (two fields), "
                                     f"found {len(parts)}")
                keys[parts[0]] = parts[1]
    return keys


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _text(value: bytes | str) -> str:
    return value.decode("latin-1") if isinstance(value, bytes | bytearray) else value


def _header_list(headers: Iterable[tuple[bytes | str, bytes | str]]) -> list[tuple[str, str]]:
    if isinstance(headers, Mapping):
        raise TypeError("headers must be the raw (name, value) pairs as received (e.g. Starlette's "
                        "request.headers.raw), not a mapping: a mapping hides duplicated headers")
    return [(_text(name).strip().lower(), _text(value)) for name, value in headers]


def canonical_query(query: bytes | str) -> str:
    """SigV4 canonical query string: each name and value percent-decoded, then encoded with AWS's rules
    (everything but ``A-Z a-z 0-9 - _ . ~`` as upper-case ``%XX``), ``=`` always present, sorted by name then
    value; empty ``&&`` segments are ignored."""
    raw = query.encode() if isinstance(query, str) else bytes(query)
    pairs = []
    for part in raw.split(b"&"):
        if not part:
            continue
        name, _, value = part.partition(b"=")
        pairs.append((quote(unquote_to_bytes(name), safe="-_.~"), quote(unquote_to_bytes(value), safe="-_.~")))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _parse_authorization(value: str) -> tuple[str, str, str]:
    """(credential, signed_headers, signature) from ``AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
    Signature=...``; the three components may come in any order, each exactly once."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise AuthError("IncompleteSignatureException",
                        f"Unsupported AWS 'algorithm': {algorithm[:40]!r}; expected '{ALGORITHM}'.")
    components: dict[str, str] = {}
    for item in rest.split(","):
        item = item.strip()
        name, eq, component = item.partition("=")
        if not eq or not name or not component:
            raise AuthError("IncompleteSignatureException",
                            f"'{item[:60]}' not a valid key=value pair (missing equal-sign) in Authorization header.")
        if name in components:
            raise AuthError("IncompleteSignatureException", f"Authorization header has '{name[:64]}' more than once.")
        components[name] = component
    for name in ("Credential", "SignedHeaders", "Signature"):
        if name not in components:
            raise AuthError("IncompleteSignatureException", f"Authorization header requires '{name}' parameter.")
    unknown = sorted(set(components) - {"Credential", "SignedHeaders", "Signature"})
    if unknown:
        raise AuthError("IncompleteSignatureException", f"Authorization header has unknown parameter(s) {str(unknown)[:64]}.")
    if not _HEX64.match(components["Signature"]):
        raise AuthError("IncompleteSignatureException", "Signature must be 64 lower-case hexadecimal digits.")
    return components["Credential"], components["SignedHeaders"], components["Signature"]


@dataclass(frozen=True)
class PendingSignature:
    """A request whose headers passed :func:`verify_headers`; :meth:`verify_payload` finishes the check."""

    access_key: str
    signature: str
    signing_key: bytes
    amz_date: str
    scope: str
    canonical_head: str  # method, path, query, headers and signed-header list of the canonical request
    declared_sha256: str | None  # X-Amz-Content-SHA256 (signed) when the client sent it

    def _check(self, payload_hash: str) -> None:
        canonical_request = f"{self.canonical_head}\n{payload_hash}"
        string_to_sign = "\n".join([ALGORITHM, self.amz_date, self.scope,
                                    hashlib.sha256(canonical_request.encode()).hexdigest()])
        expected = hmac.new(self.signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, self.signature):
            raise AuthError("InvalidSignatureException", _BAD_SIGNATURE)

    def verify_payload(self, body: bytes) -> str:
        """Check the body against the signature; return the access key."""
        payload_hash = hashlib.sha256(body).hexdigest()
        if self.declared_sha256 is not None and not hmac.compare_digest(self.declared_sha256, payload_hash):
            raise AuthError("InvalidSignatureException",
                            "The provided x-amz-content-sha256 header does not match what was computed.")
        self._check(payload_hash)
        return self.access_key


class ReplayGuard:
    """The signatures this process accepted within the last ``window_seconds`` (the span in which SigV4's clock-skew
    check still accepts them: twice MAX_SKEW), so that a second use of one is refused (a replayed IndexFaces must not
    re-create an erased face). At most ``max_entries`` are kept, the oldest dropped first: far more than the
    requests a worker serves in the window (about 600 at 2 a second), and only signed requests can add any.
    This is the process's own, fast memory; the AWS surface then notes a first use in the collection store too
    (``aws_api.first_use_in_store``), which catches a replay sent to another worker or replica."""

    def __init__(self, window_seconds: float = 2 * MAX_SKEW.total_seconds(), max_entries: int = 100_000) -> None:
        self.window = float(window_seconds)
        self.max_entries = max(1, int(max_entries))
        self._seen: OrderedDict[str, float] = OrderedDict()  # signature -> when it is forgotten, oldest first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def first_use(self, signature: str, now: float | None = None) -> bool:
        """True (and remembered) the first time ``signature`` is seen within the window; False for a replay."""
        now = time.time() if now is None else now
        with self._lock:
            while self._seen:
                oldest, until = next(iter(self._seen.items()))
                if until > now:
                    break
                del self._seen[oldest]
            if signature in self._seen:
                return False
            self._seen[signature] = now + self.window
            while len(self._seen) > self.max_entries:
                self._seen.popitem(last=False)
            return True

    def forget(self, signature: str) -> None:
        """A request whose handling failed may be sent again (boto3 retries within one second re-send the same
        signature)."""
        with self._lock:
            self._seen.pop(signature, None)


REPLAY_MESSAGE = ("This signature was already used: the request was received before (a replay). Sign every request "
                  "anew.")


def verify_headers(method: str, path: str, headers: Iterable[tuple[bytes | str, bytes | str]],
                   keys: dict[str, str], *, region: str = DEFAULT_REGION, query: bytes | str = "",
                   now: dt.datetime | None = None, service: str = "rekognition") -> PendingSignature:
    """Everything about the signature that does not need the body.

    ``headers`` are the raw (name, value) pairs as received, duplicates kept (Starlette: ``request.headers.raw``);
    ``query`` is the raw query string. Raises :class:`AuthError` with the type AWS uses:
    ``MissingAuthenticationTokenException`` (403, no signature), ``IncompleteSignatureException`` (malformed),
    ``UnrecognizedClientException`` (unknown key), ``InvalidSignatureException`` (wrong scope, stale date,
    required header not signed, duplicated header, wrong signature).
    """
    pairs = _header_list(headers)
    counts = Counter(name for name, _ in pairs)
    values: dict[str, str] = {}
    for name, value in pairs:
        values.setdefault(name, value)
    # Two Authorization headers: AWS folds repeated headers into one comma-separated value, which is then not a
    # well-formed AWS4-HMAC-SHA256 Authorization: IncompleteSignatureException (a malformed signature, not a
    # wrong one). Checked first: the copy we would parse need not be the one another component acts on.
    if counts["authorization"] > 1:
        raise AuthError("IncompleteSignatureException",
                        "The request has more than one Authorization header; send exactly one.")
    auth = values.get("authorization", "").strip()
    if not auth:
        raise AuthError("MissingAuthenticationTokenException", "Missing Authentication Token", 403)
    # Any other repeated security-relevant header: AWS would canonicalise the comma-joined copies, which is not
    # what a single-valued signature covers, so the signature cannot match: InvalidSignatureException. Refused
    # outright here because the application acts on one copy (the operation comes from X-Amz-Target).
    _refuse_duplicates(counts, SINGLE_VALUED)
    credential, signed_headers, signature = _parse_authorization(auth)
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts) or not _DATE.match(parts[1]):
        raise AuthError("IncompleteSignatureException",
                        f"Credential '{credential[:120]}' is malformed; expected "
                        "<access key>/<YYYYMMDD>/<region>/<service>/aws4_request.")
    access_key, date, cred_region, cred_service, _ = parts
    names = signed_headers.split(";")
    if not all(_HEADER_NAME.match(name) for name in names) or len(set(names)) != len(names):
        raise AuthError("IncompleteSignatureException",
                        f"SignedHeaders '{signed_headers[:200]}' must be distinct lower-case header names joined by ';'.")
    secret = keys.get(access_key)
    if secret is None:
        raise AuthError("UnrecognizedClientException", "The security token included in the request is invalid.")
    if cred_service != service:
        raise AuthError("InvalidSignatureException", f"Credential should be scoped to correct service: '{service}'.")
    if cred_region != region:
        raise AuthError("InvalidSignatureException",
                        f"Credential should be scoped to a valid region, not '{cred_region[:40]}'.")
    amz_date = values.get("x-amz-date", "").strip()
    try:
        when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise AuthError("IncompleteSignatureException",
                        "Authorization header requires existence of a well-formed 'X-Amz-Date' header "
                        "(YYYYMMDDTHHMMSSZ).") from None
    now = now or dt.datetime.now(dt.UTC)
    if abs(now - when) > MAX_SKEW:
        raise AuthError(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than {(now - MAX_SKEW):%Y%m%dT%H%M%SZ} "
            f"({now:%Y%m%dT%H%M%SZ} - 5 min.)" if when < now else
            f"Signature not yet current: {amz_date} is still later than {(now + MAX_SKEW):%Y%m%dT%H%M%SZ} "
            f"({now:%Y%m%dT%H%M%SZ} + 5 min.)",
        )
    if amz_date[:8] != date:
        raise AuthError("InvalidSignatureException", "Date in Credential scope does not match YYYYMMDD from ISO-8601 "
                                                     "version of date from HTTP.")
    must_sign = [*REQUIRED_SIGNED, *(n for n in ("content-type",) if n in counts),
                 *sorted(n for n in counts if n.startswith("x-amz-"))]
    for name in must_sign:
        if name not in names:  # AWS's wording (DynamoDB, same protocol) for host; the same form for the others
            raise AuthError("InvalidSignatureException",
                            f"{_SIGNED_NAME.get(name, repr(name))} must be a 'SignedHeader' in the AWS Authorization.")
    for name in names:
        if name not in counts:
            raise AuthError("IncompleteSignatureException",
                            f"'{name[:64]}' is named as a SignedHeader, but it does not exist in the HTTP request.")
    _refuse_duplicates(counts, names)
    declared = values.get("x-amz-content-sha256")
    if declared is not None:
        declared = declared.strip()
        if not _HEX64.match(declared):
            # UNSIGNED-PAYLOAD and the streaming forms are S3's; the body carries the images, so it must be signed.
            raise AuthError("InvalidSignatureException",
                            "x-amz-content-sha256 must be the hex SHA-256 of the body; this service does not accept "
                            "unsigned payloads.")
    canonical_headers = "".join(f"{name}:{' '.join(values[name].split())}\n" for name in names)
    canonical_path = quote(unquote(path) or "/", safe="/~")
    canonical_head = "\n".join([method.upper(), canonical_path, canonical_query(query), canonical_headers,
                                signed_headers])
    scope = f"{date}/{cred_region}/{cred_service}/aws4_request"
    signing_key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), date), cred_region), cred_service),
                        "aws4_request")
    pending = PendingSignature(access_key, signature, signing_key, amz_date, scope, canonical_head, declared)
    if declared is not None:
        pending._check(declared)  # the signature covers the declared hash: a forgery is refused before the body
    return pending


def _refuse_duplicates(counts: Counter, names: Iterable[str]) -> None:
    for name in names:
        if counts[name] > 1:
            raise AuthError("InvalidSignatureException",
                            f"The request has more than one '{name[:64]}' header; a signed header must occur once.")


def verify(method: str, path: str, headers: Iterable[tuple[bytes | str, bytes | str]], body: bytes,
           keys: dict[str, str], *, region: str = DEFAULT_REGION, query: bytes | str = "",
           now: dt.datetime | None = None, service: str = "rekognition") -> str:
    """Both phases at once: check the request's SigV4 signature; return the access key. See :func:`verify_headers`."""
    return verify_headers(method, path, headers, keys, region=region, query=query, now=now,
                          service=service).verify_payload(body)
