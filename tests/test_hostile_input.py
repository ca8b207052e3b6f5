"""Hostile clients against the real service over raw HTTP: every bad input is a 4xx in the surface's error shape
(AWS ``{"__type", "Message"}`` on ``POST /``, REST ``{"error": {"type", "message"}, "request_id"}`` on ``/v1``),
never a 500, and the server's stderr stays one JSON object per line.

Most tests drive one dedicated ``facecompare serve`` process (the real command, its real logging) whose stderr
goes to a file; metrics are compared before and after each attack, never assumed from other tests."""

from __future__ import annotations

import base64
import io
import json
import logging
import socket
import struct
import time
import zlib
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from conftest import ServeProcess
from facecompare.server.app import ServerConfig, create_app
from facecompare.settings import Settings
from facecompare.storage import S3Reader

ACCESS, SECRET = "AKIDHOSTILETEST", "hostile-test-secret"
API_KEY = "hostile-rest-key"
TIMEOUT = httpx.Timeout(20.0)
MAX_MESSAGE = 400  # no error message may come near the size of what the client sent


class _Service(ServeProcess):
    """A ``facecompare serve`` child process with this module's keys and its stderr in a file."""

    def __init__(self, root: Path, extra_env: dict[str, str] | None = None) -> None:
        super().__init__(root, access=ACCESS, secret=SECRET, api_key_name="hostile", api_key=API_KEY, env=extra_env)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    running = _Service(tmp_path_factory.mktemp("hostile"))
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def _total(samples, name: str, **labels) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def _requests(samples, **labels) -> float:
    return _total(samples, "facecompare_requests_total", **labels)


def _json_lines(lines: list[str]) -> list[dict]:
    """Every line parsed as a JSON object (the assertion names the first line that is not)."""
    parsed = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        assert isinstance(value, dict), f"stderr line is not a JSON object: {line[:300]!r}"
        parsed.append(value)
    return parsed


def _signed_headers(url: str, body: bytes, target: str) -> dict[str, str]:
    """Headers botocore's own SigV4 signer puts on a Rekognition request with this body."""
    request = AWSRequest(method="POST", url=url + "/", data=body,
                         headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials(ACCESS, SECRET), "rekognition", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def _aws(url: str, body: bytes, target: str = "RekognitionService.CompareFaces",
         headers: dict | None = None) -> httpx.Response:
    signed = _signed_headers(url, body, target)
    signed.update(headers or {})
    return httpx.post(url + "/", content=body, headers=signed, timeout=TIMEOUT)


def _assert_aws_error(response: httpx.Response, status: int, error_type: str) -> str:
    assert response.status_code == status, response.text[:500]
    body = response.json()
    assert body["__type"] == error_type, body
    assert isinstance(body["Message"], str) and body["Message"]
    assert response.headers["x-amzn-requestid"]
    return body["Message"]


def _assert_rest_error(response: httpx.Response, status: int, error_type: str) -> str:
    assert response.status_code == status, response.text[:500]
    body = response.json()
    assert set(body) == {"error", "request_id"} and body["request_id"], body
    assert body["error"]["type"] == error_type, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["message"]


REST = {"X-API-Key": API_KEY}
TINY = "AAAA"  # valid base64 (three zero bytes): the parsers accept it, the image decoder would not


# -- 1. malformed multipart ------------------------------------------------------------------------------------

def _part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--xyz\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"


MULTIPART_ATTACKS = {
    "no boundary": ("multipart/form-data", _part("image", b"abc", "a.jpg") + b"--xyz--\r\n"),
    "part without a name": ("multipart/form-data; boundary=xyz",
                            b"--xyz\r\nContent-Disposition: form-data\r\n\r\nabc\r\n--xyz--\r\n"),
    "header line without a colon": ("multipart/form-data; boundary=xyz",
                                    b"--xyz\r\nthis is not a header\r\n\r\nabc\r\n--xyz--\r\n"),
    "not multipart at all": ("multipart/form-data; boundary=xyz", b"garbage, no boundary line"),
    "11 fields": ("multipart/form-data; boundary=xyz",
                  b"".join(_part(f"f{i}", b"1") for i in range(11)) + b"--xyz--\r\n"),
    "3 files": ("multipart/form-data; boundary=xyz",
                b"".join(_part(n, b"x", f"{n}.jpg") for n in ("selfie", "document", "image")) + b"--xyz--\r\n"),
}


@pytest.mark.parametrize("path", ["/v1/verify", "/v1/detect"])
@pytest.mark.parametrize("attack", list(MULTIPART_ATTACKS))
def test_malformed_multipart_is_400_invalid_parameter(service, path, attack):
    content_type, body = MULTIPART_ATTACKS[attack]
    operation = path.lstrip("/")
    before = service.metrics()
    r = httpx.post(service.url + path, content=body, headers={**REST, "Content-Type": content_type}, timeout=TIMEOUT)
    message = _assert_rest_error(r, 400, "InvalidParameterException")
    assert "multipart" in message.lower()
    after = service.metrics()
    assert _requests(after, operation=operation, status="400") == _requests(before, operation=operation, status="400") + 1
    assert _requests(after, status="500") == _requests(before, status="500")
    assert _total(after, "facecompare_errors_total", type="InvalidParameterException") == \
        _total(before, "facecompare_errors_total", type="InvalidParameterException") + 1


# -- 2. deeply nested JSON -------------------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_json_is_a_400_not_a_recursion_error(service, depth):
    nested = b"[" * depth + b"]" * depth
    before = service.metrics()
    _assert_aws_error(_aws(service.url, nested), 400, "SerializationException")
    wrapped = b'{"SourceImage": ' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"
    _assert_aws_error(_aws(service.url, wrapped), 400, "SerializationException")
    r = httpx.post(service.url + "/v1/verify", content=nested, headers={**REST, "Content-Type": "application/json"},
                   timeout=TIMEOUT)
    _assert_rest_error(r, 400, "InvalidParameterException")
    # nested just deep enough to parse: the members that hold it are refused without a repr() that recurses
    deep = "[" * 400 + "]" * 400
    r = _aws(service.url, f'{{"SourceImage": {{"Bytes": "{TINY}"}}, "TargetImage": {{"Bytes": "{TINY}"}}, '
                          f'"SimilarityThreshold": {deep}}}'.encode())
    _assert_aws_error(r, 400, "InvalidParameterException")
    r = _aws(service.url, f'{{"Image": {{"Bytes": "{TINY}"}}, "Attributes": {deep}}}'.encode(),
             target="RekognitionService.DetectFaces")
    _assert_aws_error(r, 400, "InvalidParameterException")
    for field in ("threshold", "annotate"):
        r = httpx.post(service.url + "/v1/verify", headers={**REST, "Content-Type": "application/json"},
                       content=f'{{"selfie": "{TINY}", "document": "{TINY}", "{field}": {deep}}}'.encode(),
                       timeout=TIMEOUT)
        _assert_rest_error(r, 400, "InvalidParameterException")
    after = service.metrics()
    assert _requests(after, status="500") == _requests(before, status="500")
    assert _requests(after, status="400") == _requests(before, status="400") + 7


# -- 3. numbers that are not numbers ---------------------------------------------------------------------------

HUGE = "1" + "0" * 400
BAD_NUMBERS = [HUGE, "-" + HUGE, "1e400", "-1e400", "NaN", "Infinity", "-Infinity", "true", "false", "null",
               '"80"', '"NaN"', "[80]", '{"v": 80}', "100.0000001", "-0.5"]


def test_aws_similarity_threshold_rejects_what_is_not_a_number_from_0_to_100(service):
    before = service.metrics()
    for raw in BAD_NUMBERS:
        body = (f'{{"SourceImage": {{"Bytes": "{TINY}"}}, "TargetImage": {{"Bytes": "{TINY}"}}, '
                f'"SimilarityThreshold": {raw}}}').encode()
        r = _aws(service.url, body)
        assert r.status_code == 400, (raw[:20], r.text[:300])
        message = _assert_aws_error(r, 400, "InvalidParameterException")
        assert "SimilarityThreshold" in message and len(message) < MAX_MESSAGE
    after = service.metrics()
    assert _requests(after, operation="CompareFaces", status="400") == \
        _requests(before, operation="CompareFaces", status="400") + len(BAD_NUMBERS)
    assert _requests(after, status="500") == _requests(before, status="500")


def test_rest_threshold_rejects_what_is_not_a_number_from_0_to_100(service):
    # a numeric string is accepted (multipart sends nothing else), so '"80"' is not among these
    bad = [raw for raw in BAD_NUMBERS if raw != '"80"'] + ['"1e400"', '"nan"', '"-inf"', f'"{HUGE}"', '"eighty"']
    before = service.metrics()
    for raw in bad:
        body = f'{{"selfie": "{TINY}", "document": "{TINY}", "threshold": {raw}}}'.encode()
        r = httpx.post(service.url + "/v1/verify", content=body, headers={**REST, "Content-Type": "application/json"},
                       timeout=TIMEOUT)
        assert r.status_code == 400, (raw[:20], r.text[:300])
        message = _assert_rest_error(r, 400, "InvalidParameterException")
        assert "threshold" in message and len(message) < MAX_MESSAGE, (raw[:20], message)
    files = {"selfie": ("s.jpg", b"x", "image/jpeg"), "document": ("d.jpg", b"x", "image/jpeg")}
    multipart = (HUGE, "1e400", "nan", "-inf", "true", "")
    for value in multipart:
        r = httpx.post(service.url + "/v1/verify", files=files, data={"threshold": value}, headers=REST,
                       timeout=TIMEOUT)
        assert "threshold" in _assert_rest_error(r, 400, "InvalidParameterException"), value[:20]
    after = service.metrics()
    assert _requests(after, operation="v1/verify", status="400") == \
        _requests(before, operation="v1/verify", status="400") + len(bad) + len(multipart)
    assert _requests(after, status="500") == _requests(before, status="500")


def test_rest_annotate_must_be_a_boolean(service):
    for raw in ('"maybe"', "[true]", "2", HUGE, '{"a": 1}'):
        body = f'{{"image": "{TINY}", "annotate": {raw}}}'.encode()
        r = httpx.post(service.url + "/v1/detect", content=body, headers={**REST, "Content-Type": "application/json"},
                       timeout=TIMEOUT)
        assert "annotate" in _assert_rest_error(r, 400, "InvalidParameterException")


# -- 4. a client that disconnects mid-body ---------------------------------------------------------------------

def _send_part_and_close(port: int, head: bytes, partial: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(head + partial)
        time.sleep(0.3)  # the server is now waiting for the rest of the body


def _disconnect_cases(service) -> dict[str, tuple[bytes, bytes, str]]:
    length = 200_000
    rest_json = (f"POST /v1/detect HTTP/1.1\r\nHost: 127.0.0.1:{service.port}\r\nX-API-Key: {API_KEY}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()
    rest_multipart = (f"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1:{service.port}\r\nX-API-Key: {API_KEY}\r\n"
                      f"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: {length}\r\n\r\n").encode()
    full = b'{"Image": {"Bytes": "' + b"A" * (length - 23) + b'"}}'
    signed = _signed_headers(service.url, full, "RekognitionService.DetectFaces")
    aws_head = (f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{service.port}\r\n".encode()
                + b"".join(f"{k}: {v}\r\n".encode() for k, v in signed.items() if k.lower() != "host")
                + f"Content-Length: {len(full)}\r\n\r\n".encode())
    return {
        "rest json": (rest_json, b'{"image": "' + b"A" * 5000, "v1/detect"),
        "rest multipart": (rest_multipart, _part("selfie", b"\xff\xd8\xff" + b"\0" * 5000, "s.jpg")[:-2], "v1/verify"),
        "aws": (aws_head, full[:5000], "unknown"),  # the operation is named once the body is read
    }


@pytest.mark.parametrize("case", ["rest json", "rest multipart", "aws"])
def test_client_disconnect_mid_body_is_counted_as_499_without_a_traceback(service, case):
    head, partial, operation = _disconnect_cases(service)[case]
    mark = service.log_mark()
    before = service.metrics()
    _send_part_and_close(service.port, head, partial)
    deadline = time.time() + 10
    while True:
        after = service.metrics()
        if _requests(after, operation=operation, status="499") > _requests(before, operation=operation, status="499"):
            break
        if time.time() > deadline or _requests(after, status="500") > _requests(before, status="500"):
            break
        time.sleep(0.1)
    assert _requests(after, operation=operation, status="499") == \
        _requests(before, operation=operation, status="499") + 1
    assert _requests(after, status="500") == _requests(before, status="500")
    assert _total(after, "facecompare_errors_total", type="InternalServerError") == \
        _total(before, "facecompare_errors_total", type="InternalServerError")
    lines = service.log_since(mark)
    assert not any("Traceback" in line for line in lines), lines
    records = _json_lines(lines)
    assert [r["status"] for r in records if "status" in r] == [499], records
    assert httpx.get(service.url + "/healthz", timeout=TIMEOUT).status_code == 200


# -- 5. error messages quote at most a short prefix of the input ----------------------------------------------

MB = "x" * (1024 * 1024)


def _bounded_aws_cases() -> dict[str, tuple[str, dict]]:
    tiny = {"Bytes": TINY}
    compare = {"SourceImage": tiny, "TargetImage": tiny}
    return {
        "SimilarityThreshold": ("CompareFaces", {**compare, "SimilarityThreshold": MB}),
        "QualityFilter": ("CompareFaces", {**compare, "QualityFilter": MB}),
        "unknown member": ("CompareFaces", {**compare, MB: 1}),
        "many unknown members": ("CompareFaces", {**compare, **{f"m{i:05d}" + "y" * 100: 1 for i in range(5000)}}),
        "Attributes string": ("DetectFaces", {"Image": tiny, "Attributes": MB}),
        "Attributes item": ("DetectFaces", {"Image": tiny, "Attributes": [MB]}),
        "S3 bucket": ("DetectFaces", {"Image": {"S3Object": {"Bucket": MB, "Name": "a.jpg"}}}),
        "Image member": ("DetectFaces", {"Image": {MB: 1}}),
    }


@pytest.mark.parametrize("case", list(_bounded_aws_cases()))
def test_aws_error_messages_quote_a_bounded_prefix_of_the_input(service, case):
    operation, payload = _bounded_aws_cases()[case]
    r = _aws(service.url, json.dumps(payload).encode(), target=f"RekognitionService.{operation}")
    message = _assert_aws_error(r, 400, "InvalidParameterException")
    assert len(message) < MAX_MESSAGE and len(r.content) < 2 * MAX_MESSAGE
    assert "…" in message  # the quoted input was cut, visibly


def test_aws_unknown_target_message_is_bounded(service):
    r = _aws(service.url, b"{}", target="RekognitionService." + "x" * 4000)
    message = _assert_aws_error(r, 400, "UnknownOperationException")
    assert len(message) < MAX_MESSAGE and "…" in message


def test_rest_error_messages_quote_a_bounded_prefix_of_the_input(service):
    r = httpx.post(service.url + "/v1/verify", json={"selfie": TINY, "document": TINY, "threshold": MB},
                   headers=REST, timeout=TIMEOUT)
    message = _assert_rest_error(r, 400, "InvalidParameterException")
    assert len(message) < MAX_MESSAGE and len(r.content) < 2 * MAX_MESSAGE and "…" in message
    files = {"selfie": ("s.jpg", b"x", "image/jpeg"), "document": ("d.jpg", b"x", "image/jpeg")}
    r = httpx.post(service.url + "/v1/verify", files=files, data={"threshold": MB}, headers=REST, timeout=TIMEOUT)
    message = _assert_rest_error(r, 400, "InvalidParameterException")
    assert len(message) < MAX_MESSAGE and "…" in message


# -- 6. quiet logs: Pillow's warnings and malformed requests -----------------------------------------------------

def _face_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.open(Path(__file__).parent / "fixtures" / "obama.jpg").convert("RGB").save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _with_exif(jpeg: bytes, tiff: bytes) -> bytes:
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


def _hostile_images() -> dict[str, tuple[bytes, int, str | None]]:
    """name -> (bytes, expected status, expected error type); each makes Pillow warn or fail."""
    jpeg = _face_jpeg()
    # an EXIF IFD whose 'Make' value points past the end of the EXIF block: Pillow warns "Truncated File Read"
    make_past_end = struct.pack("<H", 2) + struct.pack("<HHII", 0x010F, 2, 20, 40) + \
        struct.pack("<HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack("<I", 0)
    # an IFD cut before its next-IFD pointer: Pillow warns "Corrupt EXIF data. Expecting to read 4 bytes ..."
    cut_ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, 1, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    # a PNG header declaring 90 MP (over Pillow's 89 MP warning level, over our 64 MP limit): DecompressionBombWarning
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 10000, 9000, 8, 2, 0, 0, 0)) + \
        chunk(b"IEND", b"")
    return {
        "truncated jpeg": (jpeg[: len(jpeg) // 2], 400, "InvalidImageFormatException"),
        "corrupt exif": (_with_exif(jpeg, b"II*\x00" + struct.pack("<I", 8) + make_past_end + b"\0" * 12), 200, None),
        "cut exif ifd": (_with_exif(jpeg, b"II*\x00" + struct.pack("<I", 8) + cut_ifd), 200, None),
        "png bomb header": (bomb, 400, "ImageTooLargeException"),
    }


def test_stderr_is_one_json_line_per_request_even_for_broken_images(service):
    mark = service.log_mark()
    images = _hostile_images()
    for name, (data, status, error_type) in images.items():
        r = httpx.post(service.url + "/v1/detect", files={"image": ("i.jpg", data, "image/jpeg")}, headers=REST,
                       timeout=TIMEOUT)
        if error_type:
            _assert_rest_error(r, status, error_type)
        else:
            assert r.status_code == status and len(r.json()["faces"]) == 1, (name, r.text[:300])
        r = _aws(service.url, json.dumps({"Image": {"Bytes": base64.b64encode(data).decode()}}).encode(),
                 target="RekognitionService.DetectFaces")
        if error_type:
            _assert_aws_error(r, status, error_type)
        else:
            assert r.status_code == status, (name, r.text[:300])
    # a request uvicorn itself refuses (not HTTP): its warning is a JSON line too
    with socket.create_connection(("127.0.0.1", service.port), timeout=5) as s:
        s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        s.settimeout(5)
        assert s.recv(1024).startswith(b"HTTP/1.1 400")
    time.sleep(0.3)
    records = _json_lines(service.log_since(mark))
    requests = [r for r in records if "request_id" in r]
    assert len(requests) == 2 * len(images)  # one line per request
    assert not any("Traceback" in json.dumps(r) for r in records)


# -- 7. the OpenAPI document says what the server does ---------------------------------------------------------

def test_openapi_declares_errors_and_nonempty_images(service):
    spec = httpx.get(service.url + "/openapi.json", timeout=TIMEOUT).json()

    def deref(node: dict) -> dict:
        while "$ref" in node:
            target = spec
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    for path in ("/v1/verify", "/v1/detect"):
        operation = spec["paths"][path]["post"]
        for status in ("400", "401", "500"):
            response = deref(operation["responses"][status])
            schema = deref(response["content"]["application/json"]["schema"])
            error = deref(schema["properties"]["error"])
            assert {"type", "message"} <= set(error["properties"]) and "request_id" in schema["properties"]
        json_body = deref(operation["requestBody"]["content"]["application/json"]["schema"])
        multipart = deref(operation["requestBody"]["content"]["multipart/form-data"]["schema"])
        for name in json_body["required"]:
            assert deref(json_body["properties"][name]).get("minLength", 0) >= 1, (path, name)
            assert name in multipart["required"]
    # and the server does what the document says
    r = httpx.post(service.url + "/v1/detect", json={"image": TINY}, timeout=TIMEOUT)
    _assert_rest_error(r, 401, "UnauthorizedException")
    r = httpx.post(service.url + "/v1/detect", json={"image": ""}, headers=REST, timeout=TIMEOUT)
    _assert_rest_error(r, 400, "InvalidParameterException")


# -- the catch-all still answers a genuine bug with a typed 500, and logs it without request data ----------------

class _BrokenVerifier:
    """A verifier with a bug: loading any image raises an error whose message quotes the request's bytes."""

    settings = Settings()
    detector = recognizer = SimpleNamespace(name="broken")

    def warm(self) -> None:
        pass

    def load(self, data):
        raise ZeroDivisionError(f"a bug while reading {bytes(data)[:40]!r}")


def test_a_genuine_bug_is_a_typed_500_logged_once_without_request_data():
    from test_server import _Server

    # JPEG's first bytes, so that the AWS endpoint's format check (JPEG and PNG only) lets it reach the verifier
    secret = b"\xff\xd8\xffPASSPORT-NUMBER-X1234567"
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("facecompare.server")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        app = create_app(Settings(), ServerConfig(auth=False, warm=False), verifier=_BrokenVerifier(), s3=S3Reader())
        with _Server(app) as running:
            body = json.dumps({"Image": {"Bytes": base64.b64encode(secret).decode()}}).encode()
            r = httpx.post(running.url + "/", content=body, timeout=TIMEOUT,
                           headers={"X-Amz-Target": "RekognitionService.DetectFaces"})
            _assert_aws_error(r, 500, "InternalServerError")
            r = httpx.post(running.url + "/v1/detect", files={"image": ("i.jpg", secret)}, timeout=TIMEOUT)
            _assert_rest_error(r, 500, "InternalServerError")
            samples = [s for f in text_string_to_metric_families(httpx.get(running.url + "/metrics").text)
                       for s in f.samples]
            assert _requests(samples, status="500") == 2
            assert _total(samples, "facecompare_errors_total", type="InternalServerError") == 2
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    messages = [record.getMessage() for record in records]
    assert not any(record.exc_info for record in records)  # no multi-line traceback from logging itself
    parsed = _json_lines(messages)
    errors = [r for r in parsed if r.get("event") == "internal_error"]
    assert len(errors) == 2 and all(e["error_type"] == "ZeroDivisionError" for e in errors)
    assert all(any("load" in frame for frame in e["traceback"]) for e in errors)  # where the bug is
    assert not any("PASSPORT" in m for m in messages)
    assert sorted(r["status"] for r in parsed if "status" in r) == [500, 500]


class _RefusingVerifier(_BrokenVerifier):
    """A verifier that refuses the request with an HTTP-level 4xx, as Starlette's own parsers do."""

    def load(self, data):
        from starlette.exceptions import HTTPException

        raise HTTPException(status_code=413, detail="Payload Too Large")


def test_an_http_level_4xx_keeps_its_status_through_the_catch_all():
    from test_server import _Server

    app = create_app(Settings(), ServerConfig(auth=False, warm=False), verifier=_RefusingVerifier(), s3=S3Reader())
    with _Server(app) as running:
        # "/9j/" is JPEG's first three bytes: the AWS endpoint's format check lets it reach the verifier
        body = json.dumps({"Image": {"Bytes": "/9j/"}}).encode()
        r = httpx.post(running.url + "/", content=body, timeout=TIMEOUT,
                       headers={"X-Amz-Target": "RekognitionService.DetectFaces"})
        _assert_aws_error(r, 413, "InvalidParameterException")
        r = httpx.post(running.url + "/v1/detect", json={"image": TINY}, timeout=TIMEOUT)
        _assert_rest_error(r, 413, "InvalidParameterException")
        samples = [s for f in text_string_to_metric_families(httpx.get(running.url + "/metrics").text)
                   for s in f.samples]
        assert _requests(samples, status="413") == 2 and _requests(samples, status="500") == 0


# -- 8. bombs of the formats beyond JPEG and PNG (HEIC, WebP, AVIF, PDF) -------------------------------------------

def _bomb_requests(service, aws_decodes: bool) -> None:
    from format_bombs import bombs

    mark = service.log_mark()
    cases = bombs()
    for name, (data, error_type) in cases.items():
        r = httpx.post(service.url + "/v1/detect", files={"image": ("scan.jpg", data, "image/jpeg")}, headers=REST,
                       timeout=TIMEOUT)
        assert len(_assert_rest_error(r, 400, error_type)) < MAX_MESSAGE, name
        r = _aws(service.url, json.dumps({"Image": {"Bytes": base64.b64encode(data).decode()}}).encode(),
                 target="RekognitionService.DetectFaces")
        # Rekognition's contract by default: any format but JPEG and PNG is refused before it is decoded
        assert len(_assert_aws_error(r, 400, error_type if aws_decodes else "InvalidImageFormatException")) \
            < MAX_MESSAGE, name
    time.sleep(0.3)
    records = _json_lines(service.log_since(mark))
    requests = [r for r in records if "request_id" in r]
    assert len(requests) == len(records) == 2 * len(cases)  # one line per request, nothing else (no PDFium noise)
    assert all(r["status"] == 400 and r["error"] for r in requests)
    assert not any("Traceback" in json.dumps(r) for r in records)


def test_format_bombs_are_typed_errors_with_one_quiet_log_line_each(service):
    _bomb_requests(service, aws_decodes=False)


def test_format_bombs_on_the_aws_endpoint_with_extra_formats_on(tmp_path):
    running = _Service(tmp_path, {"FACECOMPARE_AWS_EXTRA_FORMATS": "on"})
    try:
        running.wait_ready()
        _bomb_requests(running, aws_decodes=True)
    finally:
        running.stop()
