"""SigV4 verification as strict as AWS: requests are signed by botocore's own signer (exactly what boto3 sends),
then tampered with. Most tests call the verifier directly at a fixed time; the last ones drive the running
server over raw HTTP."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import socket
import time
from unittest import mock
from urllib.parse import urlsplit

import boto3
import botocore.auth
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from facecompare.server import sigv4
from facecompare.server.app import ServerConfig, create_app
from facecompare.server.sigv4 import AuthError, verify, verify_headers
from facecompare.storage import S3Reader

ACCESS, SECRET = "AKIDSIGV4TEST", "sigv4-test-secret"
KEYS = {ACCESS: SECRET}
HOST = "127.0.0.1:8080"
T = dt.datetime(2025, 3, 14, 12, 0, 0, tzinfo=dt.UTC)  # signing time of every botocore-signed request below
DETECT = "RekognitionService.DetectFaces"
COMPARE = "RekognitionService.CompareFaces"
BODY = b'{"Image": {"Bytes": "/9j/4GZha2VqcGVnYnl0ZXM="}}'


class _Signer(SigV4Auth):
    """botocore's signer, optionally leaving some headers out of SignedHeaders (the signature stays valid over
    what it does sign): how a hand-rolled client would produce ``SignedHeaders=host`` and the like."""

    def __init__(self, credentials, service, region, omit=()):
        super().__init__(credentials, service, region)
        self.omit = omit

    def headers_to_sign(self, request):
        headers = super().headers_to_sign(request)
        for name in self.omit:
            del headers[name]
        return headers


def sign(body: bytes = BODY, target: str = DETECT, *, query: str = "", access: str = ACCESS, secret: str = SECRET,
         service: str = "rekognition", region: str = "us-east-1", at: dt.datetime = T, omit=(),
         extra: dict[str, str] | None = None) -> dict:
    """A request signed by botocore at ``at``: method, path, query, raw header pairs and body, ready for verify."""
    url = f"http://{HOST}/" + (f"?{query}" if query else "")
    headers = {"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1", **(extra or {})}
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    with mock.patch.object(botocore.auth, "get_current_datetime", lambda: at.replace(tzinfo=None)):  # its clock
        _Signer(Credentials(access, secret), service, region, omit).add_auth(request)
    pairs = [("Host", HOST), *request.headers.items(), ("Content-Length", str(len(body)))]
    return {"method": "POST", "path": "/", "query": urlsplit(url).query, "headers": pairs, "body": body}


def check(req: dict, *, now: dt.datetime = T, region: str = "us-east-1", **changes) -> str:
    req = {**req, **changes}
    return verify(req["method"], req["path"], req["headers"], req["body"], KEYS, region=region, query=req["query"],
                  now=now)


def refused(req: dict, code: str, match: str | None = None, **kwargs) -> AuthError:
    with pytest.raises(AuthError, match=match) as error:
        check(req, **kwargs)
    assert error.value.code == code
    return error.value


def header(req: dict, name: str) -> str:
    values = [v for k, v in req["headers"] if k.lower() == name]
    assert len(values) == 1
    return values[0]


def replace_header(req: dict, name: str, value: str) -> list[tuple[str, str]]:
    return [(k, value if k.lower() == name else v) for k, v in req["headers"]]


def signed_names(req: dict) -> list[str]:
    return header(req, "authorization").split("SignedHeaders=")[1].split(",")[0].split(";")


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_):
        yield self.data


# -- what boto3 sends passes ------------------------------------------------------------------------------------


def test_real_boto3_client_requests_pass_and_sign_the_required_headers():
    """The unmodified boto3 client (requests captured just before they would go on the wire) signs host,
    x-amz-date, x-amz-target and content-type, and its requests pass the verifier at the current time."""
    client = boto3.client("rekognition", endpoint_url=f"http://{HOST}", region_name="us-east-1",
                          aws_access_key_id=ACCESS, aws_secret_access_key=SECRET,
                          config=Config(retries={"max_attempts": 1}))
    sent = []

    def capture(request, **_):
        sent.append(request)
        return AWSResponse(request.url, 200, {}, _Raw(b"{}"))  # answered here: nothing leaves the process

    client.meta.events.register("before-send.rekognition", capture)
    client.detect_faces(Image={"Bytes": b"\xff\xd8\xff\xe0 not really a jpeg"}, Attributes=["ALL"])
    client.compare_faces(SourceImage={"S3Object": {"Bucket": "kyc", "Name": "a.jpg"}},
                         TargetImage={"Bytes": b"\x89PNG..."}, SimilarityThreshold=90)
    assert len(sent) == 2
    for request, target in zip(sent, (DETECT, COMPARE), strict=True):
        pairs = [("Host", HOST), *((k, v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items())]
        req = {"method": request.method, "path": "/", "query": "", "headers": pairs, "body": request.body}
        assert {"host", "x-amz-date", "x-amz-target", "content-type"} <= set(signed_names(req))
        assert header(req, "x-amz-target") == target
        assert check(req, now=dt.datetime.now(dt.UTC)) == ACCESS
        # and the same request with one body byte changed does not
        refused(req, "InvalidSignatureException", "signature we calculated", now=dt.datetime.now(dt.UTC),
                body=request.body.replace(b"a", b"b", 1))


def test_valid_botocore_signed_request_passes():
    assert check(sign()) == ACCESS
    assert check(sign(b"{}", COMPARE)) == ACCESS


def test_header_phase_needs_no_body():
    req = sign()
    pending = verify_headers("POST", "/", req["headers"], KEYS, now=T)
    assert pending.verify_payload(BODY) == ACCESS
    with pytest.raises(AuthError):
        pending.verify_payload(BODY + b" ")


def test_headers_must_be_raw_pairs_not_a_mapping():
    req = sign()
    with pytest.raises(TypeError, match="duplicated"):
        verify("POST", "/", dict(req["headers"]), BODY, KEYS, now=T)


# -- missing, malformed, unknown ----------------------------------------------------------------------------------


def test_missing_authorization_is_missing_authentication_token():
    req = sign()
    headers = [(k, v) for k, v in req["headers"] if k.lower() != "authorization"]
    error = refused(req, "MissingAuthenticationTokenException", headers=headers)
    assert error.http_status == 403


@pytest.mark.parametrize("mangle", [
    lambda a: "garbage",
    lambda a: "Bearer abcdef",
    lambda a: a.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"),
    lambda a: a.split(", Signature=")[0],  # no Signature
    lambda a: a.replace("SignedHeaders=", "Signedheaders="),
    lambda a: a[:-1],  # 63 hex digits
    lambda a: a.replace("/aws4_request", ""),  # credential of four parts
    lambda a: a.replace("Credential=", "Credential=x/"),  # credential of six parts
    lambda a: a + ", Signature=" + "0" * 64,  # Signature twice
    lambda a: a.replace("SignedHeaders=", "SignedHeaders=Host;"),  # not lower case
], ids=["garbage", "bearer", "algorithm", "no-signature", "misspelt", "short-signature", "credential-4",
        "credential-6", "signature-twice", "upper-case-header"])
def test_malformed_authorization_is_incomplete_signature(mangle):
    req = sign()
    refused(req, "IncompleteSignatureException",
            headers=replace_header(req, "authorization", mangle(header(req, "authorization"))))


def test_unknown_access_key():
    refused(sign(access="AKIDUNKNOWN"), "UnrecognizedClientException", "security token")


def test_wrong_secret_is_a_signature_mismatch():
    refused(sign(secret="not-the-secret"), "InvalidSignatureException", "signature we calculated")


# -- scope and time ---------------------------------------------------------------------------------------------


def test_wrong_service_scope():
    refused(sign(service="comprehend"), "InvalidSignatureException", "scoped to correct service: 'rekognition'")


def test_wrong_region_scope():
    error = refused(sign(region="eu-west-1"), "InvalidSignatureException",
                    "Credential should be scoped to a valid region")
    assert "eu-west-1" in error.message and error.http_status == 400
    # the configured region is the one accepted
    assert check(sign(region="eu-west-1"), region="eu-west-1") == ACCESS
    refused(sign(), "InvalidSignatureException", "valid region", region="eu-west-1")


def test_region_is_configured_from_the_environment():
    assert ServerConfig.from_env({}).region == "us-east-1"
    assert ServerConfig.from_env({"FACECOMPARE_REGION": "eu-central-1"}).region == "eu-central-1"


def test_credential_date_must_match_x_amz_date():
    at = dt.datetime(2025, 3, 14, 0, 1, 0, tzinfo=dt.UTC)
    req = sign(at=at)
    # one minute earlier is still within the 5-minute window, but on the day before the credential's
    headers = replace_header(req, "x-amz-date", "20250313T235900Z")
    refused(req, "InvalidSignatureException", "Date in Credential scope does not match", now=at, headers=headers)


def test_date_more_than_five_minutes_away_is_refused():
    req = sign()
    assert check(req, now=T + dt.timedelta(minutes=5)) == ACCESS  # the edge of the window is still accepted
    assert check(req, now=T - dt.timedelta(minutes=5)) == ACCESS
    refused(req, "InvalidSignatureException", "Signature expired", now=T + dt.timedelta(minutes=5, seconds=1))
    refused(req, "InvalidSignatureException", "Signature not yet current", now=T - dt.timedelta(minutes=5, seconds=1))


def test_missing_or_malformed_x_amz_date():
    req = sign()
    refused(req, "IncompleteSignatureException", "X-Amz-Date",
            headers=replace_header(req, "x-amz-date", "Fri, 14 Mar 2025 12:00:00 GMT"))


# -- headers that must be signed ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name, shown", [("host", "'Host' or ':authority'"), ("x-amz-target", "'X-Amz-Target'"),
                                         ("x-amz-date", "'X-Amz-Date'"), ("content-type", "'Content-Type'")])
def test_required_header_not_signed_is_refused(name, shown):
    """A signature that is valid over the headers it names, but leaves out one that decides what the request is:
    without the rule the verifier would accept it (and the header could be rewritten after signing)."""
    req = sign(omit=(name,))
    assert name not in signed_names(req)
    error = refused(req, "InvalidSignatureException")
    assert error.message == f"{shown} must be a 'SignedHeader' in the AWS Authorization."


def test_signed_host_alone_is_refused_and_target_cannot_be_rewritten():
    req = sign(omit=("x-amz-target", "x-amz-date", "content-type"))
    assert signed_names(req) == ["host"]
    refused(req, "InvalidSignatureException", "SignedHeader")
    refused(req, "InvalidSignatureException", "SignedHeader", headers=replace_header(req, "x-amz-target", COMPARE))


def test_unsigned_x_amz_header_is_refused():
    req = sign()
    refused(req, "InvalidSignatureException", "'x-amz-security-token'.* must be a 'SignedHeader'",
            headers=[*req["headers"], ("X-Amz-Security-Token", "token-added-after-signing")])


def test_signed_header_missing_from_request_is_refused():
    req = sign(extra={"X-Custom": "1"})
    assert "x-custom" in signed_names(req) and check(req) == ACCESS
    headers = [(k, v) for k, v in req["headers"] if k.lower() != "x-custom"]
    refused(req, "IncompleteSignatureException", "does not exist in the HTTP request", headers=headers)


# -- duplicated headers -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("position", ["after", "before"])
def test_duplicate_x_amz_target_is_refused(position):
    req = sign(target=DETECT)
    extra = ("X-Amz-Target", COMPARE)
    headers = [*req["headers"], extra] if position == "after" else [extra, *req["headers"]]
    refused(req, "InvalidSignatureException", "more than one 'x-amz-target'", headers=headers)


@pytest.mark.parametrize("name", ["x-amz-date", "host", "content-type", "x-amz-target"])
def test_duplicate_security_relevant_header_is_refused(name):
    req = sign()
    headers = [*req["headers"], (name.title(), header(req, name))]  # even the same value twice
    refused(req, "InvalidSignatureException", f"more than one '{name}'", headers=headers)
    # refused before the Authorization header is even parsed
    refused(req, "InvalidSignatureException", f"more than one '{name}'",
            headers=[(k, "AWS4-HMAC-SHA256 nonsense" if k.lower() == "authorization" else v) for k, v in headers])


def test_duplicate_signed_custom_header_is_refused():
    req = sign(extra={"X-Custom": "1"})
    refused(req, "InvalidSignatureException", "more than one 'x-custom'", headers=[*req["headers"], ("X-Custom", "2")])


def test_duplicate_unsigned_header_is_harmless():
    req = sign()
    assert check(req, headers=[*req["headers"], ("Accept", "a"), ("Accept", "b")]) == ACCESS


@pytest.mark.parametrize("order", ["garbage-first", "garbage-last"])
def test_duplicate_authorization_is_refused(order):
    req = sign()
    valid = ("Authorization", header(req, "authorization"))
    others = [(k, v) for k, v in req["headers"] if k.lower() != "authorization"]
    garbage = ("Authorization", "garbage")
    headers = [*others, garbage, valid] if order == "garbage-first" else [*others, valid, garbage]
    refused(req, "IncompleteSignatureException", "more than one Authorization", headers=headers)
    # and two copies of the valid one too
    refused(req, "IncompleteSignatureException", "more than one Authorization", headers=[*others, valid, valid])


# -- body, target and query altered after signing ---------------------------------------------------------------


def test_body_altered_after_signing():
    refused(sign(), "InvalidSignatureException", "signature we calculated", body=BODY.replace(b"/9j", b"/8j"))


def test_target_altered_after_signing():
    req = sign(target=DETECT)
    refused(req, "InvalidSignatureException", "signature we calculated",
            headers=replace_header(req, "x-amz-target", COMPARE))


def test_x_amz_content_sha256():
    digest = hashlib.sha256(BODY).hexdigest()
    req = sign(extra={"X-Amz-Content-SHA256": digest})
    assert "x-amz-content-sha256" in signed_names(req)
    assert check(req) == ACCESS
    # the body changed after signing: the declared hash no longer matches it
    refused(req, "InvalidSignatureException", "x-amz-content-sha256", body=BODY + b" ")
    # a declared hash that was signed but is not the body's
    refused(sign(extra={"X-Amz-Content-SHA256": hashlib.sha256(b"other").hexdigest()}), "InvalidSignatureException",
            "x-amz-content-sha256")
    # unsigned payloads are not accepted: the body carries the images
    refused(sign(extra={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}), "InvalidSignatureException", "unsigned")


def test_declared_payload_hash_lets_the_header_phase_check_the_signature():
    req = sign(secret="not-the-secret", extra={"X-Amz-Content-SHA256": hashlib.sha256(BODY).hexdigest()})
    with pytest.raises(AuthError, match="signature we calculated"):
        verify_headers("POST", "/", req["headers"], KEYS, now=T)  # no body given


def test_valid_request_with_query_string_passes():
    req = sign(query="b=2&a=1&a=0&c=x%2Fy%20z&d=")
    assert check(req) == ACCESS
    assert check(req, query="a=0&d=&c=x%2Fy%20z&b=2&a=1") == ACCESS  # order does not matter, as for AWS


@pytest.mark.parametrize("query", ["a=1&b=3", "a=1&b=2&c=3", "a=1", "a=1&b=2%20", "a=1&b=", "a=1&b"])
def test_query_altered_after_signing(query):
    req = sign(query="a=1&b=2")
    assert check(req) == ACCESS
    refused(req, "InvalidSignatureException", "signature we calculated", query=query)


def test_query_added_after_signing():
    refused(sign(), "InvalidSignatureException", "signature we calculated", query="Action=CompareFaces")


def test_canonical_query_matches_botocore():
    params = [("b", "2"), ("a", "1"), ("a", "0"), ("c", "x/y z~"), ("d", ""), ("é", "ü+")]
    expected = SigV4Auth(Credentials("a", "b"), "rekognition", "us-east-1")._canonical_query_string_params(params)
    assert sigv4.canonical_query("b=2&a=1&a=0&c=x%2fy%20z~&d&%C3%A9=%C3%BC%2B") == expected
    assert sigv4.canonical_query("") == ""


# -- end to end: the running server over raw HTTP ----------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_server(verifier):
    from test_server import _Server

    config = ServerConfig(auth=True, access_keys=dict(KEYS), max_body_bytes=16 * 1024 * 1024, request_timeout=60,
                          warm=False)
    with _Server(create_app(verifier.settings, config, verifier=verifier, s3=S3Reader())) as running:
        yield running


def _signed_http(url: str, body: bytes, target: str) -> list[tuple[str, str]]:
    request = AWSRequest(method="POST", url=url + "/", data=body,
                         headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials(ACCESS, SECRET), "rekognition", "us-east-1").add_auth(request)
    return list(request.headers.items())


def test_server_refuses_a_second_x_amz_target(auth_server, fixtures):
    image = (fixtures / "obama.jpg").read_bytes()
    body = json.dumps({"Image": {"Bytes": __import__("base64").b64encode(image).decode()}}).encode()
    headers = _signed_http(auth_server.url, body, DETECT)
    ok = httpx.post(auth_server.url + "/", content=body, headers=headers, timeout=60)
    assert ok.status_code == 200 and len(ok.json()["FaceDetails"]) == 1  # the signed request as sent is served
    for forged in ([*headers, ("X-Amz-Target", COMPARE)], [("X-Amz-Target", COMPARE), *headers]):
        response = httpx.post(auth_server.url + "/", content=body, headers=forged, timeout=60)
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/x-amz-json-1.1" and response.headers["x-amzn-requestid"]
        assert response.json()["__type"] == "InvalidSignatureException"
        assert "x-amz-target" in response.json()["message"]


def test_server_refuses_wrong_region_from_boto3(auth_server):
    client = boto3.client("rekognition", endpoint_url=auth_server.url, region_name="eu-west-1",
                          aws_access_key_id=ACCESS, aws_secret_access_key=SECRET,
                          config=Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as error:
        client.detect_faces(Image={"Bytes": b"\xff\xd8\xff"})
    assert error.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert "valid region" in error.value.response["Error"]["Message"]


def _raw_request(url: str, headers: list[tuple[str, str]], declared: int, sent: bytes, wait: float) -> bytes:
    """Send the headers with Content-Length ``declared`` but only ``sent`` bytes of body; what arrives in ``wait``
    seconds (b"" if nothing)."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    lines = ["POST / HTTP/1.1", f"Host: {host}:{port}", *(f"{k}: {v}" for k, v in headers if k.lower() != "host"),
             f"Content-Length: {declared}"]
    with socket.create_connection((host, port), timeout=wait) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + sent)
        received = b""
        deadline = time.monotonic() + wait
        try:
            while b"\r\n\r\n" not in received or len(received.split(b"\r\n\r\n", 1)[1]) < _length(received):
                conn.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = conn.recv(65536)
                if not chunk:
                    break
                received += chunk
        except TimeoutError:
            pass
        return received


def _length(received: bytes) -> int:
    for line in received.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _status_and_json(received: bytes) -> tuple[int, dict]:
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_server_refuses_unauthenticated_request_before_reading_its_body(auth_server):
    """Content-Length of 8 MB, 1 byte sent: the auth error comes back at once, so the server did not wait for
    (let alone buffer) the body. A correctly signed request with the same truncated body is, by contrast, still
    waiting for its body, which shows the early answer is the header phase's doing."""
    declared = 8 * 1024 * 1024
    base = [("X-Amz-Target", DETECT), ("Content-Type", "application/x-amz-json-1.1")]
    unknown = SigV4Auth(Credentials("AKIDUNKNOWN", SECRET), "rekognition", "us-east-1")
    request = AWSRequest(method="POST", url=auth_server.url + "/", data=b"{", headers=dict(base))
    unknown.add_auth(request)
    cases = [(base, "MissingAuthenticationTokenException", 403),
             ([*base, ("Authorization", "garbage")], "IncompleteSignatureException", 400),
             (list(request.headers.items()), "UnrecognizedClientException", 400),
             ([*_signed_http(auth_server.url, b"{", DETECT), ("X-Amz-Target", COMPARE)], "InvalidSignatureException",
              400)]
    for headers, code, status in cases:
        started = time.monotonic()
        received = _raw_request(auth_server.url, headers, declared, b"{", wait=10)
        assert received, f"no answer in 10 s for {code}: the server is waiting for the body"
        assert time.monotonic() - started < 5
        answer_status, answer = _status_and_json(received)
        assert (answer_status, answer["__type"]) == (status, code)
    # a well-signed request (signed over the 1-byte body it claims to be the start of) gets no answer while the
    # rest of its body has not arrived
    assert _raw_request(auth_server.url, _signed_http(auth_server.url, b"{", DETECT), declared, b"{", wait=1.5) == b""
