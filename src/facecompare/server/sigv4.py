"""AWS Signature Version 4 verification for requests signed by boto3 (service ``rekognition``)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
from pathlib import Path
from urllib.parse import quote, unquote

from ..errors import FaceCompareError

_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$"
)
MAX_SKEW = dt.timedelta(minutes=5)


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
        text = Path(path).read_text()
        if text.lstrip().startswith("{"):
            keys.update({str(k): str(v) for k, v in json.loads(text).items()})
        else:
            for line in text.splitlines():
                parts = line.split()
                if len(parts) == 2 and not line.startswith("#"):
                    keys[parts[0]] = parts[1]
    return keys


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def verify(method: str, path: str, headers: dict[str, str], body: bytes, keys: dict[str, str],
           now: dt.datetime | None = None, service: str = "rekognition") -> str:
    """Check the request's SigV4 signature; return the access key. ``headers`` must have lower-case names.

    Raises :class:`AuthError` with the type AWS uses: ``MissingAuthenticationTokenException`` (no signature),
    ``IncompleteSignatureException`` (malformed), ``UnrecognizedClientException`` (unknown key),
    ``InvalidSignatureException`` (wrong signature or stale date).
    """
    auth = headers.get("authorization")
    if not auth:
        raise AuthError("MissingAuthenticationTokenException", "Missing Authentication Token", 403)
    match = _AUTH.match(auth.strip())
    if not match:
        raise AuthError("IncompleteSignatureException",
                        "Authorization header requires Credential, SignedHeaders and Signature (AWS4-HMAC-SHA256).")
    credential, signed_headers, signature = match.groups()
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise AuthError("IncompleteSignatureException", f"Credential {credential!r} is malformed.")
    access_key, date, region, cred_service, _ = parts
    secret = keys.get(access_key)
    if secret is None:
        raise AuthError("UnrecognizedClientException", "The security token included in the request is invalid.")
    if cred_service != service:
        raise AuthError("InvalidSignatureException", f"Credential should be scoped to correct service: '{service}'.")
    amz_date = headers.get("x-amz-date", "")
    try:
        when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise AuthError("IncompleteSignatureException", "X-Amz-Date is missing or malformed.") from None
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
        raise AuthError("InvalidSignatureException", "Date in Credential scope does not match X-Amz-Date.")
    names = signed_headers.split(";")
    if "host" not in names:
        raise AuthError("InvalidSignatureException", "'Host' must be a signed header.")
    canonical_headers = ""
    for name in names:
        value = headers.get(name)
        if value is None:
            raise AuthError("InvalidSignatureException", f"Signed header {name!r} is missing from the request.")
        canonical_headers += f"{name}:{' '.join(value.strip().split())}\n"
    payload_hash = hashlib.sha256(body).hexdigest()
    declared = headers.get("x-amz-content-sha256")
    if declared and "x-amz-content-sha256" in names and declared != "UNSIGNED-PAYLOAD":
        if declared != payload_hash:
            raise AuthError("InvalidSignatureException", "The provided x-amz-content-sha256 does not match the body.")
    canonical_path = quote(unquote(path) or "/", safe="/~")
    canonical_request = "\n".join([method.upper(), canonical_path, "", canonical_headers, signed_headers,
                                   payload_hash])
    scope = f"{date}/{region}/{cred_service}/aws4_request"
    string_to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                                hashlib.sha256(canonical_request.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), date), region), cred_service), "aws4_request")
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise AuthError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS "
            "Secret Access Key and signing method. Consult the service documentation for details.",
        )
    return access_key
