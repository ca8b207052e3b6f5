"""The service over real HTTP on loopback: the unmodified boto3 client (SigV4, S3Object images from a real
SeaweedFS), the native REST API, probes, metrics, and faults. The original notebook is the acceptance test."""

from __future__ import annotations

import base64
import io
import json
import socket
import subprocess
import threading
import time

import boto3
import httpx
import numpy as np
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from PIL import Image, ImageDraw

from conftest import BUCKET, S3_ACCESS, S3_SECRET
from conftest import free_port as _free_port
from facecompare.server.app import ServerConfig, create_app, hash_api_key
from facecompare.storage import S3Reader
from facecompare.synth import PhotoConditions, photograph, render_card

ACCESS, SECRET = "AKIDFACECOMPARETEST", "facecompare-test-secret"
API_KEY = "rest-test-key"


class _Server:
    def __init__(self, app) -> None:
        import uvicorn

        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    timeout_graceful_shutdown=5))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def server(verifier, seaweedfs, tmp_path_factory):
    config = ServerConfig(auth=True, access_keys={ACCESS: SECRET}, api_key_hashes={hash_api_key(API_KEY)},
                          max_body_bytes=16 * 1024 * 1024, request_timeout=60, warm=False)
    s3 = S3Reader(client=boto3.client("s3", endpoint_url=seaweedfs["endpoint"], aws_access_key_id=S3_ACCESS,
                                      aws_secret_access_key=S3_SECRET, region_name="us-east-1",
                                      config=Config(s3={"addressing_style": "path"}, connect_timeout=2,
                                                    read_timeout=10)))
    with _Server(create_app(verifier.settings, config, verifier=verifier, s3=s3)) as running:
        yield running


def _rekognition(server, secret: str = SECRET, access: str = ACCESS):
    return boto3.client("rekognition", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id=access,
                        aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}))


@pytest.fixture(scope="session")
def kyc_objects(seaweedfs, fixtures, tmp_path_factory):
    """A selfie, another person's selfie and a phone photo of an ID card (ground-truth portrait box) in the bucket."""
    rng = np.random.default_rng(21)
    card, info = render_card(Image.open(fixtures / "Serena_Williams_0002.jpg").convert("RGB"), rng, width=900, ghost=True)
    data, meta = photograph(card, info, rng, PhotoConditions(portrait_fraction=0.07, tilt=0.1, glare=0.2,
                                                             frame=(2400, 1800), ghost=True))
    s3 = seaweedfs["client"]
    s3.put_object(Bucket=BUCKET, Key="selfies/serena.jpg", Body=(fixtures / "Serena_Williams_0001.jpg").read_bytes())
    s3.put_object(Bucket=BUCKET, Key="selfies/colin.jpg", Body=(fixtures / "Colin_Powell_0001.jpg").read_bytes())
    s3.put_object(Bucket=BUCKET, Key="dataset/id_card.jpg", Body=data)
    return {"document": data, "portrait_box": meta["portrait_box"], "frame": meta["frame"]}


def _draw_boxes(image: Image.Image, response: dict) -> list[tuple[float, float, float, float]]:
    """The notebook's drawing: box ratios times the image size, green for matches, red for the others."""
    draw = ImageDraw.Draw(image)
    w, h = image.size
    drawn = []
    for color, faces in (("green", [m["Face"] for m in response["FaceMatches"]]), ("red", response["UnmatchedFaces"])):
        for face in faces:
            box = face["BoundingBox"]
            left, top = w * box["Left"], h * box["Top"]
            right, bottom = left + w * box["Width"], top + h * box["Height"]
            draw.rectangle([left, top, right, bottom], outline=color, width=4)
            drawn.append((left, top, right, bottom))
    return drawn


def _center_in(box, region) -> bool:
    left, top, right, bottom = box
    x, y, w, h = region
    cx, cy = (left + right) / 2, (top + bottom) / 2
    return x <= cx <= x + w and y <= cy <= y + h


def test_notebook_compare_faces_with_s3_objects(server, kyc_objects):
    client = _rekognition(server)
    same = client.compare_faces(SourceImage={"S3Object": {"Bucket": BUCKET, "Name": "selfies/serena.jpg"}},
                                TargetImage={"S3Object": {"Bucket": BUCKET, "Name": "dataset/id_card.jpg"}},
                                SimilarityThreshold=80)
    assert len(same["FaceMatches"]) == 1 and same["FaceMatches"][0]["Similarity"] >= 80
    assert same["ResponseMetadata"]["HTTPStatusCode"] == 200 and same["ResponseMetadata"]["RequestId"]
    document = Image.open(__import__("io").BytesIO(kyc_objects["document"])).convert("RGB")
    drawn = _draw_boxes(document, same)
    assert _center_in(drawn[0], kyc_objects["portrait_box"])  # the green box sits on the printed portrait
    # the selfie's face box: LFW photos are centred on the person
    src = same["SourceImageFace"]["BoundingBox"]
    assert abs(src["Left"] + src["Width"] / 2 - 0.5) < 0.1 and abs(src["Top"] + src["Height"] / 2 - 0.5) < 0.15

    other = client.compare_faces(SourceImage={"S3Object": {"Bucket": BUCKET, "Name": "selfies/colin.jpg"}},
                                 TargetImage={"S3Object": {"Bucket": BUCKET, "Name": "dataset/id_card.jpg"}})
    assert other["FaceMatches"] == [] and len(other["UnmatchedFaces"]) >= 1
    drawn = _draw_boxes(Image.open(__import__("io").BytesIO(kyc_objects["document"])).convert("RGB"), other)
    assert _center_in(drawn[0], kyc_objects["portrait_box"])


def test_notebook_detect_faces_bytes_and_s3(server, kyc_objects, fixtures):
    client = _rekognition(server)
    by_s3 = client.detect_faces(Image={"S3Object": {"Bucket": BUCKET, "Name": "dataset/id_card.jpg"}}, Attributes=["ALL"])
    by_bytes = client.detect_faces(Image={"Bytes": kyc_objects["document"]})
    assert by_s3["FaceDetails"] == by_bytes["FaceDetails"]
    w, h = kyc_objects["frame"]
    main = by_s3["FaceDetails"][0]["BoundingBox"]
    box = (main["Left"] * w, main["Top"] * h, (main["Left"] + main["Width"]) * w, (main["Top"] + main["Height"]) * h)
    assert _center_in(box, kyc_objects["portrait_box"])
    assert {lm["Type"] for lm in by_s3["FaceDetails"][0]["Landmarks"]} == {"eyeLeft", "eyeRight", "nose", "mouthLeft",
                                                                            "mouthRight"}


def test_modeled_errors_reach_boto3(server, kyc_objects, fixtures):
    client = _rekognition(server)
    good = {"Bytes": (fixtures / "obama.jpg").read_bytes()}
    with pytest.raises(client.exceptions.InvalidS3ObjectException):
        client.detect_faces(Image={"S3Object": {"Bucket": BUCKET, "Name": "no/such/key.jpg"}})
    with pytest.raises(client.exceptions.InvalidS3ObjectException):
        client.detect_faces(Image={"S3Object": {"Bucket": "no-such-bucket", "Name": "a.jpg"}})
    with pytest.raises(client.exceptions.InvalidImageFormatException):
        client.detect_faces(Image={"Bytes": b"definitely not an image"})
    with pytest.raises(client.exceptions.InvalidParameterException, match="SimilarityThreshold"):
        client.compare_faces(SourceImage=good, TargetImage=good, SimilarityThreshold=150)
    with pytest.raises(client.exceptions.InvalidParameterException, match="QualityFilter"):
        client.compare_faces(SourceImage=good, TargetImage=good, QualityFilter="SUPER")
    with pytest.raises(client.exceptions.InvalidParameterException, match="Attributes"):
        client.detect_faces(Image=good, Attributes=["BOGUS"])
    with pytest.raises(client.exceptions.InvalidParameterException, match="exactly one"):
        client.detect_faces(Image={})
    with pytest.raises(client.exceptions.InvalidParameterException, match="empty"):
        client.detect_faces(Image={"Bytes": b""})
    with pytest.raises(client.exceptions.InvalidParameterException, match="no face"):
        client.compare_faces(SourceImage={"Bytes": (fixtures / "id_back_mrz_only_che.jpg").read_bytes()}, TargetImage=good)
    tiny = __import__("io").BytesIO()
    Image.new("RGB", (40, 40)).save(tiny, format="PNG")
    with pytest.raises(client.exceptions.InvalidParameterException, match="80"):
        client.detect_faces(Image={"Bytes": tiny.getvalue()})


def test_large_s3_object_is_too_large(server, seaweedfs):
    seaweedfs["client"].put_object(Bucket=BUCKET, Key="huge.jpg", Body=b"\xff\xd8\xff" + b"\0" * (15 * 1000 * 1000 + 10))
    with pytest.raises(_rekognition(server).exceptions.ImageTooLargeException):
        _rekognition(server).detect_faces(Image={"S3Object": {"Bucket": BUCKET, "Name": "huge.jpg"}})


def _noisy_large_jpeg(path) -> bytes:
    """A real face at 2400x2400 with strong noise, so that the JPEG is between the 5 MB inline-bytes limit and
    the 15 MB S3 limit."""
    rng = np.random.default_rng(0)
    face = np.asarray(Image.open(path).convert("RGB").resize((2400, 2400)), dtype=np.int16)
    noisy = (face + rng.normal(0, 40, face.shape).astype(np.int16)).clip(0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(noisy).save(out, format="JPEG", quality=98)
    return out.getvalue()


def test_s3_object_between_the_bytes_and_s3_limits_is_analysed(server, seaweedfs, fixtures):
    """Rekognition takes up to 15 MB from S3 and 5 MB inline: an 8 MB object is analysed, the same bytes inline
    are too large."""
    data = _noisy_large_jpeg(fixtures / "Colin_Powell_0001.jpg")
    assert 5 * 1024 * 1024 < len(data) < 15 * 1000 * 1000
    seaweedfs["client"].put_object(Bucket=BUCKET, Key="large-face.jpg", Body=data)
    client = _rekognition(server)
    response = client.detect_faces(Image={"S3Object": {"Bucket": BUCKET, "Name": "large-face.jpg"}})
    assert len(response["FaceDetails"]) == 1
    with pytest.raises(client.exceptions.ImageTooLargeException):
        client.detect_faces(Image={"Bytes": data})


def test_authentication_errors(server, fixtures):
    image = {"Bytes": (fixtures / "obama.jpg").read_bytes()}
    with pytest.raises(ClientError) as wrong_secret:
        _rekognition(server, secret="not-the-secret").detect_faces(Image=image)
    assert wrong_secret.value.response["Error"]["Code"] == "InvalidSignatureException"
    with pytest.raises(ClientError) as unknown_key:
        _rekognition(server, access="AKIDUNKNOWN").detect_faces(Image=image)
    assert unknown_key.value.response["Error"]["Code"] == "UnrecognizedClientException"
    unsigned = httpx.post(server.url + "/", content=b"{}", headers={"X-Amz-Target": "RekognitionService.DetectFaces",
                                                                    "Content-Type": "application/x-amz-json-1.1"})
    assert unsigned.status_code == 403 and unsigned.json()["__type"] == "MissingAuthenticationTokenException"


def _signed(server, body: bytes, target: str, date: str | None = None) -> httpx.Response:
    """A request signed by botocore's own SigV4 signer (``date`` overrides X-Amz-Date after signing)."""
    request = AWSRequest(method="POST", url=server.url + "/", data=body,
                         headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials(ACCESS, SECRET), "rekognition", "us-east-1").add_auth(request)
    headers = dict(request.headers.items())
    if date:
        headers["X-Amz-Date"] = date
    return httpx.post(server.url + "/", content=body, headers=headers, timeout=60)


def test_stale_signature_is_rejected(server):
    response = _signed(server, b"{}", "RekognitionService.DetectFaces", date="20200101T000000Z")
    assert response.status_code == 400 and response.json()["__type"] == "InvalidSignatureException"
    assert "Signature expired" in response.json()["message"]


def test_protocol_faults_and_recovery(server, fixtures):
    assert _signed(server, b"{not json", "RekognitionService.DetectFaces").json()["__type"] == "SerializationException"
    unknown = _signed(server, b"{}", "RekognitionService.DoMagic")
    assert unknown.status_code == 400 and unknown.json()["__type"] == "UnknownOperationException"
    bad_b64 = _signed(server, json.dumps({"Image": {"Bytes": "@@not base64@@"}}).encode(), "RekognitionService.DetectFaces")
    assert bad_b64.json()["__type"] == "InvalidParameterException"
    huge = httpx.post(server.url + "/", content=b"x" * (50 * 1024 * 1024), timeout=60,
                      headers={"X-Amz-Target": "RekognitionService.DetectFaces"})
    assert huge.status_code == 400 and huge.json()["__type"] == "ImageTooLargeException"
    # and the next request is served
    ok = _rekognition(server).detect_faces(Image={"Bytes": (fixtures / "obama.jpg").read_bytes()})
    assert len(ok["FaceDetails"]) == 1


def test_unreachable_s3_is_invalid_s3_object(verifier, fixtures):
    config = ServerConfig(auth=False, warm=False)
    s3 = S3Reader(client=boto3.client("s3", endpoint_url=f"http://127.0.0.1:{_free_port()}", aws_access_key_id="x",
                                      aws_secret_access_key="y", region_name="us-east-1",
                                      config=Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1})))
    with _Server(create_app(verifier.settings, config, verifier=verifier, s3=s3)) as running:
        client = boto3.client("rekognition", endpoint_url=running.url, region_name="us-east-1", aws_access_key_id="a",
                              aws_secret_access_key="b", config=Config(retries={"max_attempts": 1}))
        started = time.time()
        with pytest.raises(client.exceptions.InvalidS3ObjectException):
            client.detect_faces(Image={"S3Object": {"Bucket": "bucket", "Name": "x.jpg"}})
        assert time.time() - started < 30
        assert len(client.detect_faces(Image={"Bytes": (fixtures / "obama.jpg").read_bytes()})["FaceDetails"]) == 1


def test_rest_verify_multipart_and_json(server, kyc_objects, fixtures):
    selfie = (fixtures / "Serena_Williams_0001.jpg").read_bytes()
    files = {"selfie": ("s.jpg", selfie, "image/jpeg"), "document": ("d.jpg", kyc_objects["document"], "image/jpeg")}
    r = httpx.post(server.url + "/v1/verify", files=files, data={"annotate": "true"}, headers={"X-API-Key": API_KEY},
                   timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decision"] == "MATCH" and body["reasons"] == [] and body["request_id"]
    assert base64.b64decode(body["annotated_png"]).startswith(b"\x89PNG")
    payload = {"selfie": base64.b64encode((fixtures / "Colin_Powell_0001.jpg").read_bytes()).decode(),
               "document": base64.b64encode(kyc_objects["document"]).decode(), "threshold": 90}
    r = httpx.post(server.url + "/v1/verify", json=payload, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)
    assert r.status_code == 200 and r.json()["decision"] == "NO_MATCH" and r.json()["threshold"] == 90


def test_rest_errors(server, fixtures):
    r = httpx.post(server.url + "/v1/verify", json={}, timeout=30)
    assert r.status_code == 401
    r = httpx.post(server.url + "/v1/verify", json={"selfie": "abc"}, headers={"X-API-Key": API_KEY}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["type"] == "InvalidParameterException"
    r = httpx.post(server.url + "/v1/detect", files={"image": ("x.jpg", b"junk", "image/jpeg")},
                   headers={"X-API-Key": API_KEY}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["type"] == "InvalidImageFormatException"
    r = httpx.post(server.url + "/v1/detect", files={"image": ("x.jpg", (fixtures / "two_people.jpg").read_bytes())},
                   headers={"X-API-Key": API_KEY}, timeout=30)
    assert r.status_code == 200 and len(r.json()["faces"]) == 2


def test_probes_metrics_and_docs(server):
    assert httpx.get(server.url + "/healthz").json() == {"status": "alive"}
    assert httpx.get(server.url + "/readyz").status_code == 200
    metrics = httpx.get(server.url + "/metrics").text
    assert "facecompare_requests_total" in metrics and "facecompare_request_seconds_bucket" in metrics
    assert 'facecompare_errors_total{type="InvalidParameterException"}' in metrics
    assert "/v1/verify" in httpx.get(server.url + "/openapi.json").json()["paths"]
    assert "facecompare API" in httpx.get(server.url + "/docs").text


def test_docs_are_swagger_ui_served_offline(server):
    """/docs is an interactive explorer whose every asset is served by the service itself (no CDN), and the
    document it shows lists the REST API but not the AWS endpoint."""
    import re

    page = httpx.get(server.url + "/docs").text
    assert "SwaggerUIBundle" in page and "'/openapi.json'" in page
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", page)  # nothing from another host
    assets = re.findall(r"(?:src|href)=[\"']([^\"']+)", page)
    assert len(assets) >= 3
    for asset in assets:
        assert httpx.get(server.url + asset).status_code == 200, asset
    spec = httpx.get(server.url + "/openapi.json").json()
    assert "/" not in spec["paths"] and spec["paths"]["/v1/detect"]["post"]["security"] == [{"apiKey": []}]


def test_serve_refuses_to_start_without_keys(tmp_path):
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("FACECOMPARE_AUTH")}
    env.pop("FACECOMPARE_API_KEYS_FILE", None)
    result = subprocess.run([sys.executable, "-m", "facecompare.cli", "serve", "--port", str(_free_port())],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2 and "--no-auth" in result.stderr


def _wait_ready(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {process.stderr.read()[-2000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("server not ready in time")


@pytest.mark.slow
def test_serve_command_survives_a_killed_worker_and_shuts_down_gracefully(fixtures):
    """`facecompare serve --workers 2`: kill -9 one worker; the next requests are still served; SIGTERM stops it."""
    import os
    import signal
    import sys

    port = _free_port()
    env = {**os.environ, "FACECOMPARE_AUTH_KEYS": f"{ACCESS}:{SECRET}"}
    process = subprocess.Popen([sys.executable, "-m", "facecompare.cli", "serve", "--port", str(port), "--workers", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        client = boto3.client("rekognition", endpoint_url=url, region_name="us-east-1", aws_access_key_id=ACCESS,
                              aws_secret_access_key=SECRET, config=Config(retries={"max_attempts": 3}))
        image = {"Bytes": (fixtures / "obama.jpg").read_bytes()}
        assert len(client.detect_faces(Image=image)["FaceDetails"]) == 1
        children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
        workers = [int(pid) for pid in children]
        assert len(workers) >= 2
        os.kill(workers[0], signal.SIGKILL)
        for _ in range(6):  # served by the surviving worker, then by the restarted one
            assert len(client.detect_faces(Image=image)["FaceDetails"]) == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_slow_s3_times_out_as_invalid_s3_object(verifier, fixtures):
    """An object store that accepts the connection and never answers: the read times out, the client gets
    InvalidS3ObjectException, and the server goes on serving."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_hang():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)  # read nothing, answer nothing
            except OSError:
                continue

    thread = threading.Thread(target=accept_and_hang, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
    s3 = S3Reader(client=boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="x", aws_secret_access_key="y",
                                      region_name="us-east-1", config=Config(connect_timeout=1, read_timeout=2,
                                                                             retries={"max_attempts": 1})))
    try:
        with _Server(create_app(verifier.settings, ServerConfig(auth=False, warm=False), verifier=verifier,
                                s3=s3)) as running:
            client = boto3.client("rekognition", endpoint_url=running.url, region_name="us-east-1",
                                  aws_access_key_id="a", aws_secret_access_key="b",
                                  config=Config(retries={"max_attempts": 1}, read_timeout=60))
            started = time.time()
            with pytest.raises(client.exceptions.InvalidS3ObjectException):
                client.detect_faces(Image={"S3Object": {"Bucket": "bucket", "Name": "slow.jpg"}})
            assert time.time() - started < 20
            assert len(client.detect_faces(Image={"Bytes": (fixtures / "obama.jpg").read_bytes()})["FaceDetails"]) == 1
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        listener.close()


def test_request_timeout_is_internal_server_error_and_service_continues(verifier, fixtures):
    config = ServerConfig(auth=False, warm=False, request_timeout=0.001)
    with _Server(create_app(verifier.settings, config, verifier=verifier, s3=S3Reader())) as running:
        client = boto3.client("rekognition", endpoint_url=running.url, region_name="us-east-1", aws_access_key_id="a",
                              aws_secret_access_key="b", config=Config(retries={"max_attempts": 1}))
        with pytest.raises(ClientError) as timed_out:
            client.detect_faces(Image={"Bytes": (fixtures / "obama.jpg").read_bytes()})
        assert timed_out.value.response["Error"]["Code"] == "InternalServerError"
        assert "took longer than" in timed_out.value.response["Error"]["Message"]
        assert httpx.get(running.url + "/healthz").status_code == 200
