"""Soak benchmark of `facecompare serve`: N minutes at saturation against a server it starts on loopback.

The mix: valid requests (boto3 CompareFaces with the fixture images, REST /v1/verify; more clients than the
engine's queue holds, each waiting Retry-After when it is throttled), invalid ones (bad JSON,
bad images, unsigned AWS requests, a wrong API key) and slow clients (headers sent a byte at a time, a body
shorter than its Content-Length), at most ``--slow`` of them open at once. Reported: every outcome by kind and
status, p50/p95 latency of the valid requests, the throttled count (from /metrics), and the server's resident
memory (all its processes) at the start, its peak, at minute 2 and at the end. The aims: no 5xx, and memory
growth under 10 % from minute 2 to the end.

    python benchmarks/bench_soak.py [--minutes 10] [--clients 12] [--invalid 2] [--slow 4] [--out benchmarks/results/soak.json]

Every request goes to 127.0.0.1 only; every loop stops at the deadline.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import boto3
import httpx
import numpy as np
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_server import free_port, tree_rss_mib  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
ACCESS, SECRET, API_KEY = "AKIDSOAK", "soak-secret", "soak-rest-key"
PAIRS = [("Colin_Powell_0001.jpg", "Colin_Powell_0002.jpg"), ("Serena_Williams_0001.jpg", "Serena_Williams_0002.jpg"),
         ("obama.jpg", "biden.jpg")]
TARGET = "RekognitionService.CompareFaces"


def throttled_total(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "facecompare_throttled_total")


def fivexx_total(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "facecompare_requests_total" and s.labels.get("status", "").startswith("5"))


class Tally:
    """Outcomes by kind and status (HTTP status and error type, or the exception's name), and valid requests'
    latencies."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outcomes: dict[str, Counter] = {}
        self.latencies: list[float] = []

    def add(self, kind: str, status: int | str, latency: float | None = None) -> None:
        with self.lock:
            self.outcomes.setdefault(kind, Counter())[str(status)] += 1
            if latency is not None:
                self.latencies.append(latency)


def outcome(response: httpx.Response) -> str:
    """The status, and for an error its type (AWS ``__type``, REST ``error.type``)."""
    if response.status_code == 200:
        return "200"
    try:
        body = response.json()
        kind = body.get("__type") or body["error"]["type"]
    except (ValueError, KeyError, TypeError, AttributeError):
        kind = "?"
    return f"{response.status_code} {kind}"


def signed_headers(url: str, body: bytes, target: str = TARGET) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url + "/", data=body,
                         headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials(ACCESS, SECRET), "rekognition", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def back_off(retry_after: str | None, deadline: float) -> None:
    """A well-behaved client waits Retry-After when it is throttled (the invalid clients below do not)."""
    if retry_after:
        time.sleep(max(0.0, min(float(retry_after), deadline - time.time())))


def valid_boto3(url: str, images: dict[str, bytes], tally: Tally, deadline: float, index: int) -> None:
    client = boto3.client("rekognition", endpoint_url=url, region_name="us-east-1", aws_access_key_id=ACCESS,
                          aws_secret_access_key=SECRET, config=Config(retries={"total_max_attempts": 1, "mode": "standard"},
                                                                                   read_timeout=120))
    i = index
    while time.time() < deadline:
        a, b = PAIRS[i % len(PAIRS)]
        i += 1
        started = time.perf_counter()
        try:
            client.compare_faces(SourceImage={"Bytes": images[a]}, TargetImage={"Bytes": images[b]})
            tally.add("valid_boto3_compare_faces", 200, time.perf_counter() - started)
        except ClientError as exc:
            tally.add("valid_boto3_compare_faces",
                      f'{exc.response["ResponseMetadata"]["HTTPStatusCode"]} {exc.response["Error"]["Code"]}')
            back_off(exc.response["ResponseMetadata"].get("HTTPHeaders", {}).get("retry-after"), deadline)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            tally.add("valid_boto3_compare_faces", type(exc).__name__)


def valid_rest(url: str, images: dict[str, bytes], tally: Tally, deadline: float, index: int) -> None:
    i = index
    with httpx.Client(timeout=120, headers={"X-API-Key": API_KEY}) as client:
        while time.time() < deadline:
            a, b = PAIRS[i % len(PAIRS)]
            i += 1
            started = time.perf_counter()
            try:
                if i % 2:  # multipart and JSON in turn
                    r = client.post(url + "/v1/verify", files={"selfie": ("s.jpg", images[a], "image/jpeg"),
                                                               "document": ("d.jpg", images[b], "image/jpeg")})
                else:
                    r = client.post(url + "/v1/verify", json={"selfie": base64.b64encode(images[a]).decode(),
                                                              "document": base64.b64encode(images[b]).decode()})
                tally.add("valid_rest_verify", outcome(r),
                          time.perf_counter() - started if r.status_code == 200 else None)
                back_off(r.headers.get("retry-after"), deadline)
            except httpx.HTTPError as exc:
                tally.add("valid_rest_verify", type(exc).__name__)


def invalid(url: str, tally: Tally, deadline: float, index: int) -> None:
    garbage = base64.b64encode(os.urandom(4096)).decode()
    bodies = {
        "bad_json": lambda: (b'{"SourceImage": {"Bytes": ', signed_headers),
        "bad_image": lambda: (json.dumps({"SourceImage": {"Bytes": garbage}, "TargetImage": {"Bytes": garbage}}).encode(),
                              signed_headers),
        "unsigned": lambda: (b'{"SourceImage": {"Bytes": "AAAA"}, "TargetImage": {"Bytes": "AAAA"}}',
                             lambda url, body: {"X-Amz-Target": TARGET, "Content-Type": "application/x-amz-json-1.1"}),
    }
    kinds = [*bodies, "rest_wrong_api_key", "rest_bad_json"]
    i = index
    with httpx.Client(timeout=60) as client:
        while time.time() < deadline:
            kind = kinds[i % len(kinds)]
            i += 1
            try:
                if kind in bodies:
                    body, headers = bodies[kind]()
                    r = client.post(url + "/", content=body, headers=headers(url, body))
                elif kind == "rest_wrong_api_key":
                    r = client.post(url + "/v1/verify", json={"selfie": "AAAA", "document": "AAAA"},
                                    headers={"X-API-Key": "not-the-key"})
                else:
                    r = client.post(url + "/v1/verify", content=b"{nope", headers={"X-API-Key": API_KEY,
                                                                                   "Content-Type": "application/json"})
                tally.add(kind, outcome(r))
            except httpx.HTTPError as exc:
                tally.add(kind, type(exc).__name__)


def slow_client(port: int, tally: Tally, deadline: float, index: int, budget: threading.Semaphore) -> None:
    """One slow connection at a time per thread: headers a byte every 0.5 s (the server's header timeout ends
    it), or a body shorter than its Content-Length (its body timeout ends it). Recorded: the status the server
    answered, or how the connection ended."""
    body = b'{"SourceImage": {"Bytes": "AAAA"}}'
    i = index
    while time.time() < deadline:
        kind = ("slow_headers", "short_body")[i % 2]
        i += 1
        with budget:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
                    head = (f"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {API_KEY}\r\n"
                            f"Content-Type: application/json\r\nContent-Length: {len(body) + 1000}\r\n\r\n").encode()
                    if kind == "slow_headers":
                        s.settimeout(1)
                        for byte in head:
                            if time.time() > deadline:
                                break
                            s.send(bytes([byte]))
                            try:  # the server may answer (408) or close before the headers are complete
                                if s.recv(1, socket.MSG_PEEK) is not None:
                                    break
                            except TimeoutError:
                                pass
                        s.settimeout(60)
                    else:
                        s.sendall(head + body)
                    answer = s.recv(4096)
                    if answer.startswith(b"HTTP/"):
                        head, _, rest = answer.partition(b"\r\n\r\n")
                        if not rest:  # the body may come in a second segment
                            s.settimeout(2)
                            try:
                                rest = s.recv(4096)
                            except OSError:
                                pass
                        error = json.loads(rest).get("error", {}).get("type", "?") if rest.startswith(b"{") else ""
                        tally.add(kind, f"{head.split(b' ', 2)[1].decode()} {error}".strip())
                    else:
                        tally.add(kind, "closed without an answer")
            except TimeoutError:
                tally.add(kind, "client_timeout")
            except OSError as exc:
                tally.add(kind, type(exc).__name__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=12, help="valid clients (half boto3, half REST); more than "
                        "the engine queue holds (2 running + 8 waiting by default), so some are throttled")
    parser.add_argument("--invalid", type=int, default=2, help="clients sending invalid requests")
    parser.add_argument("--slow", type=int, default=4, help="slow connections open at once, at most")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "soak.json"))
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    images = {name: (FIXTURES / name).read_bytes() for pair in PAIRS for name in pair}
    tmp = tempfile.TemporaryDirectory()
    keys = Path(tmp.name) / "api-keys"
    from facecompare.server.config import hash_api_key

    keys.write_text(f"soak:{hash_api_key(API_KEY)}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("FACECOMPARE_AUTH", "PYTHONWARNINGS")}
    env.update(FACECOMPARE_AUTH_KEYS=f"{ACCESS}:{SECRET}", FACECOMPARE_API_KEYS_FILE=str(keys),
               # S3 is never asked for here; if it were, it would be a closed port on loopback
               FACECOMPARE_S3_ENDPOINT_URL="http://127.0.0.1:9", AWS_EC2_METADATA_DISABLED="true")
    log = open(Path(tmp.name) / "stderr.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "facecompare.cli", "serve", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=log)
    samples: list[tuple[float, float]] = []  # (seconds since the load started, MiB)
    stop = threading.Event()
    try:
        ready_by = time.time() + 180
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.time() > ready_by:
                raise SystemExit("server did not become ready")
            time.sleep(0.3)
        rss_start = tree_rss_mib(server.pid)
        started = time.time()
        deadline = started + 60 * args.minutes

        def sample():
            while not stop.is_set():
                samples.append((time.time() - started, tree_rss_mib(server.pid)))
                stop.wait(1.0)

        tally = Tally()
        budget = threading.Semaphore(args.slow)
        threads = [threading.Thread(target=sample, daemon=True)]
        for i in range(args.clients):
            fn = valid_boto3 if i % 2 == 0 else valid_rest
            threads.append(threading.Thread(target=fn, args=(url, images, tally, deadline, i)))
        for i in range(args.invalid):
            threads.append(threading.Thread(target=invalid, args=(url, tally, deadline, i)))
        for i in range(args.slow):
            threads.append(threading.Thread(target=slow_client, args=(port, tally, deadline, i, budget)))
        for t in threads:
            t.start()
        for t in threads[1:]:
            t.join()
        elapsed = time.time() - started
        stop.set()
        threads[0].join()
        rss_end = tree_rss_mib(server.pid)
        throttled = throttled_total(url)
        server_5xx = fivexx_total(url)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    at_two = [mib for t, mib in samples if t >= 120]
    rss_minute_2 = at_two[0] if at_two else None
    client_5xx = sum(n for counts in tally.outcomes.values() for status, n in counts.items() if status[:1] == "5")
    lat = tally.latencies
    report = {
        "minutes": args.minutes,
        "seconds": round(elapsed, 1),
        "cpus": os.cpu_count(),
        "clients": {"valid": args.clients, "invalid": args.invalid, "slow_at_once": args.slow},
        "outcomes": {kind: dict(sorted(counts.items())) for kind, counts in sorted(tally.outcomes.items())},
        "requests": sum(sum(c.values()) for c in tally.outcomes.values()),
        "valid_ok": len(lat),
        "valid_per_second": round(len(lat) / elapsed, 2),
        "valid_p50_ms": round(1000 * float(np.percentile(lat, 50)), 1) if lat else None,
        "valid_p95_ms": round(1000 * float(np.percentile(lat, 95)), 1) if lat else None,
        "responses_5xx_seen_by_clients": client_5xx,
        "responses_5xx_in_server_metrics": server_5xx,
        "throttled": throttled,
        "rss_start_mib": round(rss_start, 1),
        "rss_peak_mib": round(max(m for _, m in samples), 1) if samples else None,
        "rss_minute_2_mib": round(rss_minute_2, 1) if rss_minute_2 else None,
        "rss_end_mib": round(rss_end, 1),
        "rss_growth_minute_2_to_end_pct": round(100 * (rss_end - rss_minute_2) / rss_minute_2, 2) if rss_minute_2 else None,
    }
    report["aims_met"] = {"no_5xx": client_5xx == 0 and server_5xx == 0,
                          "rss_growth_under_10_pct": (report["rss_growth_minute_2_to_end_pct"] is not None
                                                      and report["rss_growth_minute_2_to_end_pct"] < 10)}
    tmp.cleanup()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
