"""Connection limits and overload, against real ``facecompare serve`` processes with small limits set through the
environment: slow headers are cut off, a short or slow body gets a clean 400 within the body timeout, a body over
the limit is refused while it streams (chunked, multipart without Content-Length) and the connection closed
without reading the rest, requests beyond the engine's queue are answered at once with ThrottlingException
(AWS) / 429 (REST) and counted, boto3's own retries ride out a brief overload, the connection cap answers
503 in the surface's shape, a client that stops reading is dropped, and a bad setting stops the server.

Every socket and client has a timeout; durations are only checked against generous bounds that prove "not
forever" (an answer within 10 s for a 2 s timeout)."""

from __future__ import annotations

import base64
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import httpx
import psutil
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

import facecompare
from conftest import ServeProcess, free_port

ACCESS, SECRET = "AKIDLIMITSTEST", "limits-test-secret"
API_KEY = "limits-rest-key"
REST = {"X-API-Key": API_KEY}
TIMEOUT = httpx.Timeout(20.0)
MiB = 1024 * 1024
LIMIT = 1 * MiB  # FACECOMPARE_MAX_BODY_BYTES of the main test service
EXTRA = 16 * MiB  # sent beyond the limit: far more than the kernel's socket buffers hold on loopback
FIXTURES = Path(__file__).parent / "fixtures"


class _Service(ServeProcess):
    """A ``facecompare serve`` child process (the real command, its uvicorn protocol) with extra environment."""

    def __init__(self, root: Path, **env: str) -> None:
        super().__init__(root, access=ACCESS, secret=SECRET, api_key_name="limits", api_key=API_KEY, env=env)

    def rss(self) -> int:
        return psutil.Process(self.process.pid).memory_info().rss  # one worker: uvicorn serves in this process

    def connect(self, timeout: float = 15) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)


def _start(tmp_path_factory, name: str, **env: str):
    running = _Service(tmp_path_factory.mktemp(name), **env)
    try:
        running.wait_ready()
    except BaseException:
        running.stop()
        raise
    return running


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """Small limits: 1 MiB bodies, 2 s for headers and for a body, a 1 s keep-alive, one engine call at a time
    with one more waiting."""
    running = _start(tmp_path_factory, "limits", FACECOMPARE_MAX_BODY_BYTES=str(LIMIT),
                     FACECOMPARE_HEADER_TIMEOUT="2", FACECOMPARE_BODY_TIMEOUT="2", FACECOMPARE_KEEPALIVE_TIMEOUT="1",
                     FACECOMPARE_CONCURRENCY="1", FACECOMPARE_MAX_QUEUE="1")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def capped(tmp_path_factory):
    """At most 4 connections; generous header and keep-alive timeouts, so idle connections hold their slots."""
    running = _start(tmp_path_factory, "capped", FACECOMPARE_MAX_CONNECTIONS="4", FACECOMPARE_HEADER_TIMEOUT="60",
                     FACECOMPARE_KEEPALIVE_TIMEOUT="60")
    yield running
    running.stop()


def _total(samples, name: str, **labels) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def _signed_headers(url: str, body: bytes, target: str) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url + "/", data=body,
                         headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials(ACCESS, SECRET), "rekognition", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def _head(service, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{service.port}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP response with a Content-Length (status, lower-cased headers, body); raises on EOF before it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a response: {data[:200]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes the connection within ``within`` seconds (reading and dropping any bytes)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            try:
                if not sock.recv(65536):
                    return True
            except OSError:
                return True
    return False


def _assert_aws_error(status: int, headers: dict, body: bytes, expected_status: int, error_type: str) -> dict:
    assert status == expected_status, body[:300]
    parsed = json.loads(body)
    assert parsed["__type"] == error_type and parsed["Message"], parsed
    assert headers["x-amzn-requestid"]
    return parsed


def _assert_rest_error(status: int, body: bytes, expected_status: int, error_type: str) -> dict:
    assert status == expected_status, body[:300]
    parsed = json.loads(body)
    assert set(parsed) == {"error", "request_id"} and parsed["error"]["type"] == error_type, parsed
    assert parsed["error"]["message"]
    return parsed


# -- 1. headers: a connection that does not complete a request's headers in time is closed ------------------------

@pytest.mark.parametrize("case", ["silent", "one byte at a time", "next request one byte at a time"])
def test_slow_headers_are_cut_off(service, case):
    before = _total(service.metrics(), "facecompare_connections_closed_total", reason="header_timeout")
    request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{service.port}\r\nUser-Agent: slow\r\n\r\n".encode()
    started = time.monotonic()
    with service.connect() as sock:
        if case == "next request one byte at a time":  # a keep-alive connection after a served request
            sock.sendall(request)
            assert _read_response(sock)[0] == 200
            started = time.monotonic()
        closed = False
        if case == "silent":
            closed = _closed_by_server(sock, 10)
        else:
            # one byte every 0.4 s: each byte would re-arm uvicorn's keep-alive timer, and the whole request
            # would take 24 s; the server must give up long before that
            for byte in request[:-4]:
                try:
                    sock.send(bytes([byte]))
                except OSError:
                    closed = True
                    break
                if _closed_by_server(sock, 0.4):
                    closed = True
                    break
                if time.monotonic() - started > 10:
                    break
        assert closed, f"the connection was still open after {time.monotonic() - started:.1f} s"
        assert time.monotonic() - started < 10
    after = _total(service.metrics(), "facecompare_connections_closed_total", reason="header_timeout")
    assert after == before + 1
    assert httpx.get(service.url + "/healthz", timeout=TIMEOUT).status_code == 200


# -- 2. a body shorter than its Content-Length, or too slow, ends with a clean 400 ---------------------------------

def _partial_body_cases(service) -> dict[str, tuple[bytes, bytes, str]]:
    """case -> (request head, the part of the body that is sent, surface); the head declares 100,000 bytes."""
    length = 100_000
    full = b'{"Image": {"Bytes": "' + b"A" * (length - 23) + b'"}}'
    signed = _signed_headers(service.url, full, "RekognitionService.DetectFaces")
    part = b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="i.jpg"\r\n\r\n\xff\xd8\xff'
    return {
        "aws": (_head(service, "/", {**signed, "Content-Length": str(length)}), full[:5000], "aws"),
        "rest json": (_head(service, "/v1/detect", {**REST, "Content-Type": "application/json",
                                                    "Content-Length": str(length)}),
                      b'{"image": "' + b"A" * 5000, "rest"),
        "rest multipart": (_head(service, "/v1/detect", {**REST, "Content-Type": "multipart/form-data; boundary=xyz",
                                                         "Content-Length": str(length)}), part + b"\0" * 5000, "rest"),
    }


@pytest.mark.parametrize("pace", ["short", "slow"])
@pytest.mark.parametrize("case", ["aws", "rest json", "rest multipart"])
def test_short_or_slow_body_gets_a_clean_400_within_the_body_timeout(service, case, pace):
    head, partial, surface = _partial_body_cases(service)[case]
    before = service.metrics()
    started = time.monotonic()
    with service.connect(timeout=10) as sock:
        sock.sendall(head)
        if pace == "short":  # part of the body, then nothing: the rest never comes
            sock.sendall(partial)
        else:  # the body 100 bytes every 0.2 s: it would take 200 s to arrive
            for i in range(0, len(partial), 100):
                sock.sendall(partial[i:i + 100])
                if select.select([sock], [], [], 0.2)[0] or time.monotonic() - started > 10:
                    break
        status, headers, body = _read_response(sock)  # socket timeout 10 s: fails rather than hangs
        assert time.monotonic() - started < 10
        assert headers.get("connection") == "close"
        assert _closed_by_server(sock, 5)
    if surface == "aws":
        message = _assert_aws_error(status, headers, body, 400, "RequestTimeoutException")["Message"]
    else:
        message = _assert_rest_error(status, body, 400, "RequestTimeoutException")["error"]["message"]
    assert "100,000" in message
    after = service.metrics()
    assert _total(after, "facecompare_errors_total", type="RequestTimeoutException") == \
        _total(before, "facecompare_errors_total", type="RequestTimeoutException") + 1
    assert _total(after, "facecompare_requests_total", status="500") == \
        _total(before, "facecompare_requests_total", status="500")


# -- 3. a body over the limit without Content-Length is refused while it streams -----------------------------------

def _send_chunked(sock: socket.socket, head: bytes, prefix: bytes, filler: int, total: int) -> dict:
    """Send ``head``, then ``prefix`` and ``total`` bytes of ``filler`` in 64 KiB chunks (chunked encoding), from
    a thread; returns the thread's record: body bytes the kernel accepted, and the error that stopped it."""
    record = {"sent": 0, "error": None}

    def run() -> None:
        try:
            sock.sendall(head + b"%x\r\n" % len(prefix) + prefix + b"\r\n")
            chunk = bytes([filler]) * 65536
            frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
            while record["sent"] < total:
                sock.sendall(frame)
                record["sent"] += len(chunk)
            sock.sendall(b"0\r\n\r\n")
        except OSError as exc:
            record["error"] = exc

    record["thread"] = threading.Thread(target=run, daemon=True)
    record["thread"].start()
    return record


def _chunked_cases(service) -> dict[str, tuple[bytes, bytes, int, str]]:
    """case -> (head, body prefix, filler byte, surface); the filler makes the body LIMIT + EXTRA long."""
    aws_prefix = b'{"Image": {"Bytes": "'
    aws_body = aws_prefix + b"A" * (LIMIT + EXTRA) + b'"}}'  # signed as a whole, as a real client would
    signed = _signed_headers(service.url, aws_body, "RekognitionService.DetectFaces")
    del aws_body
    chunked = {"Transfer-Encoding": "chunked"}
    multipart = b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="i.jpg"\r\n' \
                b'Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff'
    return {
        "aws": (_head(service, "/", {**signed, **chunked}), aws_prefix, ord("A"), "aws"),
        "rest json": (_head(service, "/v1/detect", {**REST, "Content-Type": "application/json", **chunked}),
                      b'{"image": "', ord("A"), "rest"),
        "rest multipart": (_head(service, "/v1/detect", {**REST, "Content-Type": "multipart/form-data; boundary=xyz",
                                                         **chunked}), multipart, 0, "rest"),
    }


@pytest.mark.parametrize("case", ["aws", "rest json", "rest multipart"])
def test_chunked_body_over_the_limit_is_refused_without_reading_it_all(service, case):
    head, prefix, filler, surface = _chunked_cases(service)[case]
    before = service.metrics()
    rss_before = service.rss()
    with service.connect(timeout=10) as sock:
        record = _send_chunked(sock, head, prefix, filler, LIMIT + EXTRA)
        status, headers, body = _read_response(sock)  # while the client is still sending
        record["thread"].join(15)
        assert not record["thread"].is_alive()
        assert headers.get("connection") == "close"
    if surface == "aws":
        _assert_aws_error(status, headers, body, 400, "ImageTooLargeException")
    else:
        _assert_rest_error(status, body, 400, "ImageTooLargeException")
    # the server closed the connection instead of reading the rest: the client could not send it all (what it did
    # send is the limit plus what the kernel buffers on both sides took), and the server did not hold it
    assert record["error"] is not None and record["sent"] < LIMIT + EXTRA // 2, record
    assert service.rss() - rss_before < EXTRA // 2
    after = service.metrics()
    assert _total(after, "facecompare_errors_total", type="ImageTooLargeException") == \
        _total(before, "facecompare_errors_total", type="ImageTooLargeException") + 1
    assert httpx.get(service.url + "/healthz", timeout=TIMEOUT).status_code == 200


# -- 4. overload: beyond the engine's queue, an immediate ThrottlingException ---------------------------------------

def _face() -> bytes:
    return (FIXTURES / "obama.jpg").read_bytes()


def test_requests_beyond_the_queue_are_throttled_at_once_and_counted(service):
    """FACECOMPARE_CONCURRENCY=1 and FACECOMPARE_MAX_QUEUE=1: of 8 requests sent at once, at most 2 are taken (one
    running, one waiting); the others are answered at once, ThrottlingException in each surface's shape."""
    image = _face()
    aws_body = json.dumps({"Image": {"Bytes": base64.b64encode(image).decode()}}).encode()
    signed = _signed_headers(service.url, aws_body, "RekognitionService.DetectFaces")
    rest_body = json.dumps({"image": base64.b64encode(image).decode()}).encode()
    before = service.metrics()
    barrier = threading.Barrier(8)
    results: list[tuple[str, httpx.Response | Exception]] = []

    def call(surface: str) -> None:
        with httpx.Client(timeout=httpx.Timeout(60.0)) as client:
            barrier.wait(10)
            try:
                if surface == "aws":
                    response = client.post(service.url + "/", content=aws_body, headers=signed)
                else:
                    response = client.post(service.url + "/v1/detect", content=rest_body,
                                           headers={**REST, "Content-Type": "application/json"})
            except Exception as exc:  # recorded, so that the assertion shows it
                response = exc
        results.append((surface, response))

    threads = [threading.Thread(target=call, args=(s,), daemon=True) for s in ["aws", "rest"] * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert len(results) == 8 and not any(isinstance(r, Exception) for _, r in results), results
    throttled = {"aws": 0, "rest": 0}
    for surface, r in results:
        if r.status_code == 200:
            assert len(r.json()["FaceDetails" if surface == "aws" else "faces"]) == 1
            continue
        throttled[surface] += 1
        if surface == "aws":
            body = _assert_aws_error(r.status_code, r.headers, r.content, 400, "ThrottlingException")
            assert body["Message"].startswith("Slow down")
            assert r.headers["x-amz-retry-after"] == "1000"  # botocore's standard mode waits at least this long
        else:
            _assert_rest_error(r.status_code, r.content, 429, "ThrottlingException")
            assert r.headers["retry-after"] == "1"
    successes = 8 - sum(throttled.values())
    assert 1 <= successes <= 6 and throttled["aws"] >= 1 and throttled["rest"] >= 1, (throttled, results)
    after = service.metrics()
    n = sum(throttled.values())
    assert _total(after, "facecompare_throttled_total", reason="queue") == \
        _total(before, "facecompare_throttled_total", reason="queue") + n
    assert _total(after, "facecompare_errors_total", type="ThrottlingException") == \
        _total(before, "facecompare_errors_total", type="ThrottlingException") + n
    assert _total(after, "facecompare_requests_total", operation="v1/detect", status="429") == \
        _total(before, "facecompare_requests_total", operation="v1/detect", status="429") + throttled["rest"]
    assert _total(after, "facecompare_requests_total", operation="DetectFaces", status="400") == \
        _total(before, "facecompare_requests_total", operation="DetectFaces", status="400") + throttled["aws"]
    assert _total(after, "facecompare_engine_waiting") == 0 and _total(after, "facecompare_engine_running") == 0


@pytest.mark.slow
def test_boto3_default_retries_ride_out_a_brief_overload(service):
    """Four DetectFaces calls at once through one boto3 client with its default retry configuration: the server
    takes two and throttles the others, which boto3 retries by itself (after x-amz-retry-after) until served."""
    client = boto3.client("rekognition", endpoint_url=service.url, region_name="us-east-1", aws_access_key_id=ACCESS,
                          aws_secret_access_key=SECRET, config=Config(connect_timeout=10, read_timeout=60))
    image = _face()
    before = service.metrics()
    barrier = threading.Barrier(4)
    results: list = []

    def call() -> None:
        barrier.wait(10)
        try:
            results.append(client.detect_faces(Image={"Bytes": image}))
        except Exception as exc:  # recorded, so that the assertion shows it
            results.append(exc)

    threads = [threading.Thread(target=call, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(results) == 4 and all(isinstance(r, dict) for r in results), results
    assert all(len(r["FaceDetails"]) == 1 for r in results)
    retries = sum(r["ResponseMetadata"]["RetryAttempts"] for r in results)
    throttled = _total(service.metrics(), "facecompare_throttled_total") - _total(before, "facecompare_throttled_total")
    assert retries >= 1 and throttled >= 1, (retries, throttled)


# -- 5. the connection cap -------------------------------------------------------------------------------------------

def test_connection_cap_answers_503_in_the_surface_shape(capped):
    """FACECOMPARE_MAX_CONNECTIONS=4: with 4 keep-alive connections open, a request on a fifth is answered 503
    (ThrottlingException, Retry-After) without its body being read; probes and metrics are still served; once
    the connections close, requests are served again."""
    request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{capped.port}\r\n\r\n".encode()
    before = capped.metrics()
    idle = []
    try:
        for _ in range(4):
            sock = capped.connect()
            sock.sendall(request)
            assert _read_response(sock)[0] == 200  # open, served, and kept alive
            idle.append(sock)
        r = httpx.post(capped.url + "/v1/detect", json={"image": "AAAA"}, headers=REST, timeout=TIMEOUT)
        _assert_rest_error(r.status_code, r.content, 503, "ThrottlingException")
        assert r.headers["retry-after"] == "1" and r.headers["connection"] == "close"
        body = b"{}"
        r = httpx.post(capped.url + "/", content=body, timeout=TIMEOUT,
                       headers=_signed_headers(capped.url, body, "RekognitionService.DetectFaces"))
        _assert_aws_error(r.status_code, r.headers, r.content, 503, "ThrottlingException")
        assert httpx.get(capped.url + "/healthz", timeout=TIMEOUT).status_code == 200
        during = capped.metrics()
        assert _total(during, "facecompare_throttled_total", reason="connections") == \
            _total(before, "facecompare_throttled_total", reason="connections") + 2
        assert _total(during, "facecompare_requests_total", status="503") == \
            _total(before, "facecompare_requests_total", status="503") + 2
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 10
    while True:  # the server notices the closed connections at once; poll in case it has not yet
        r = httpx.post(capped.url + "/v1/detect", json={"image": "AAAA"}, headers=REST, timeout=TIMEOUT)
        if r.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.status_code == 400 and r.json()["error"]["type"] != "ThrottlingException", r.text  # served: a bad image


# -- 6. settings -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variable, value", [("FACECOMPARE_MAX_CONNECTIONS", "lots"), ("FACECOMPARE_MAX_QUEUE", "-1"),
                                             ("FACECOMPARE_BODY_TIMEOUT", "nan")])
def test_an_invalid_limit_stops_serve_with_a_message(tmp_path, variable, value):
    src = str(Path(facecompare.__file__).resolve().parents[1])
    env = {**os.environ, "FACECOMPARE_AUTH_KEYS": f"{ACCESS}:{SECRET}", variable: value,
           "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen([sys.executable, "-m", "facecompare.cli", "serve", "--port", str(free_port())],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate(timeout=10)
        pytest.fail(f"serve started with {variable}={value!r}")
    assert process.returncode != 0 and variable in stderr and "Traceback" not in stderr, stderr[-500:]


# -- 7. a client that stops reading ------------------------------------------------------------------------------------

def test_a_client_that_stops_reading_is_dropped_after_the_body_timeout(service):
    """Pipelined requests whose answers the client never reads: once the socket buffers are full the server waits
    for room at most FACECOMPARE_BODY_TIMEOUT (2 s here), then drops the connection."""
    before = _total(service.metrics(), "facecompare_connections_closed_total", reason="send_timeout")
    request = f"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1:{service.port}\r\n\r\n".encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
    sock.settimeout(10)
    with sock:
        sock.connect(("127.0.0.1", service.port))
        sock.sendall(request * 3000)  # about 12 MB of answers: more than the kernel buffers on loopback (about 3 MB)
        deadline = time.monotonic() + 15
        while True:
            after = _total(service.metrics(), "facecompare_connections_closed_total", reason="send_timeout")
            if after > before or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert after == before + 1
        received = 0
        try:
            while chunk := sock.recv(65536):  # what the kernel had buffered, then the end
                received += len(chunk)
        except OSError:
            pass
        assert received < 3000 * len(httpx.get(service.url + "/openapi.json", timeout=TIMEOUT).content)
    assert httpx.get(service.url + "/healthz", timeout=TIMEOUT).status_code == 200
