"""What the service checks about a request, against a real server (uvicorn in a thread, the shared warm verifier)
and the real SeaweedFS: the 5 MiB image limit at its edge (AWS base64 Bytes and REST multipart), bodies over the
limit, both Bytes and S3Object, unknown members, S3 with wrong credentials and an object without a
Content-Length, and /readyz before the warm-up."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import struct
import threading
import zlib

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from PIL import Image

from conftest import BUCKET, S3_ACCESS, S3_SECRET
from facecompare import Verifier
from facecompare.errors import AccessDeniedException, ImageTooLargeException
from facecompare.server.app import ServerConfig, create_app, hash_api_key
from facecompare.storage import S3Reader
from test_server import _Server

ACCESS, SECRET = "AKIDREQUESTSTEST", "requests-test-secret"
API_KEY = "requests-rest-key"
MiB = 1024 * 1024
TIMEOUT = httpx.Timeout(60.0)


def _s3_client(endpoint: str, access: str = S3_ACCESS, secret: str = S3_SECRET):
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access, aws_secret_access_key=secret,
                        region_name="us-east-1", config=Config(s3={"addressing_style": "path"}, connect_timeout=2,
                                                               read_timeout=10, retries={"max_attempts": 1}))


def _app(verifier, s3_client, **config):
    settings = {"auth": True, "access_keys": {ACCESS: SECRET}, "api_key_hashes": {hash_api_key(API_KEY)},
                "warm": False, **config}
    return create_app(verifier.settings, ServerConfig(**settings), verifier=verifier, s3=S3Reader(client=s3_client))


@pytest.fixture(scope="module")
def server(verifier, seaweedfs):
    with _Server(_app(verifier, _s3_client(seaweedfs["endpoint"]))) as running:
        yield running


def _rekognition(url: str):
    return boto3.client("rekognition", endpoint_url=url, region_name="us-east-1", aws_access_key_id=ACCESS,
                        aws_secret_access_key=SECRET, config=Config(retries={"max_attempts": 1}))


def _signed(url: str, payload: dict, target: str) -> httpx.Response:
    """A raw request signed by botocore's SigV4 signer (boto3 itself refuses unknown members before sending)."""
    body = json.dumps(payload).encode()
    request = AWSRequest(method="POST", url=url + "/", data=body,
                         headers={"X-Amz-Target": f"RekognitionService.{target}",
                                  "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials(ACCESS, SECRET), "rekognition", "us-east-1").add_auth(request)
    return httpx.post(url + "/", content=body, headers=dict(request.headers.items()), timeout=TIMEOUT)


def _png_of_size(fixtures, size: int) -> bytes:
    """obama.jpg as a PNG padded to exactly ``size`` bytes with a private ancillary chunk (decoders skip it)."""
    buf = io.BytesIO()
    Image.open(fixtures / "obama.jpg").convert("RGB").save(buf, format="PNG")
    png = buf.getvalue()
    ihdr_end = 8 + 4 + 4 + 13 + 4  # signature, then IHDR: length, type, 13 bytes of data, CRC
    padding = size - len(png) - 12  # a chunk costs 12 bytes besides its data
    assert padding >= 0
    chunk = struct.pack(">I", padding) + b"paDd" + b"\0" * padding + struct.pack(">I", zlib.crc32(b"paDd" + b"\0" * padding))
    data = png[:ihdr_end] + chunk + png[ihdr_end:]
    assert len(data) == size
    return data


# -- the 5 MiB image limit -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def at_limit(fixtures) -> bytes:
    return _png_of_size(fixtures, 5 * MiB)


@pytest.fixture(scope="module")
def over_limit(fixtures) -> bytes:
    return _png_of_size(fixtures, 5 * MiB + 1)


def test_aws_bytes_of_exactly_5_mib_are_accepted_and_one_more_is_too_large(server, at_limit, over_limit):
    client = _rekognition(server.url)
    assert len(client.detect_faces(Image={"Bytes": at_limit})["FaceDetails"]) == 1
    with pytest.raises(client.exceptions.ImageTooLargeException, match="5,242,880"):
        client.detect_faces(Image={"Bytes": over_limit})
    with pytest.raises(client.exceptions.ImageTooLargeException):
        client.compare_faces(SourceImage={"Bytes": at_limit}, TargetImage={"Bytes": over_limit})
    # far over: refused from the length of the base64 text, before decoding it
    r = _signed(server.url, {"Image": {"Bytes": "A" * (7 * MiB)}}, "DetectFaces")
    assert r.status_code == 400 and r.json()["__type"] == "ImageTooLargeException"
    assert "Image.Bytes is over 5,242,880 bytes" in r.json()["Message"]


def test_rest_multipart_image_of_exactly_5_mib_is_accepted_and_one_more_is_too_large(server, at_limit, over_limit):
    headers = {"X-API-Key": API_KEY}
    ok = httpx.post(server.url + "/v1/detect", files={"image": ("a.png", at_limit, "image/png")}, headers=headers,
                    timeout=TIMEOUT)
    assert ok.status_code == 200 and len(ok.json()["faces"]) == 1
    too_large = httpx.post(server.url + "/v1/detect", files={"image": ("a.png", over_limit, "image/png")},
                           headers=headers, timeout=TIMEOUT)
    assert too_large.status_code == 400 and too_large.json()["error"]["type"] == "ImageTooLargeException"


@pytest.mark.parametrize("surface", ["rest multipart", "rest json", "aws"])
def test_body_over_the_limit_with_a_content_length_is_refused_unread(verifier, seaweedfs, fixtures, surface):
    """FACECOMPARE_MAX_BODY_BYTES (here 1 MiB) against a declared Content-Length: 400 ImageTooLargeException in the
    surface's shape; the next request on a new connection is served."""
    image = (fixtures / "obama.jpg").read_bytes()
    with _Server(_app(verifier, _s3_client(seaweedfs["endpoint"]), max_body_bytes=MiB)) as running:
        big = b"\xff\xd8\xff" + b"\0" * (2 * MiB)
        rest = {"X-API-Key": API_KEY}
        if surface == "rest multipart":
            r = httpx.post(running.url + "/v1/detect", files={"image": ("a.jpg", big, "image/jpeg")}, headers=rest,
                           timeout=TIMEOUT)
            error = r.json()["error"]["type"]
        elif surface == "rest json":
            r = httpx.post(running.url + "/v1/detect", json={"image": base64.b64encode(big).decode()}, headers=rest,
                           timeout=TIMEOUT)
            error = r.json()["error"]["type"]
        else:
            r = _signed(running.url, {"Image": {"Bytes": base64.b64encode(big).decode()}}, "DetectFaces")
            error = r.json()["__type"]
        assert r.status_code == 400 and error == "ImageTooLargeException"
        assert "over the limit of 1,048,576" in r.text
        assert len(_rekognition(running.url).detect_faces(Image={"Bytes": image})["FaceDetails"]) == 1


# -- the shape of an Image -------------------------------------------------------------------------------------------


def test_both_bytes_and_s3object_is_invalid_parameter(server, fixtures):
    client = _rekognition(server.url)
    both = {"Bytes": (fixtures / "obama.jpg").read_bytes(), "S3Object": {"Bucket": BUCKET, "Name": "probe"}}
    with pytest.raises(client.exceptions.InvalidParameterException, match="Image needs exactly one of Bytes or S3Object"):
        client.detect_faces(Image=both)
    with pytest.raises(client.exceptions.InvalidParameterException, match="TargetImage needs exactly one"):
        client.compare_faces(SourceImage={"Bytes": both["Bytes"]}, TargetImage=both)


@pytest.mark.parametrize("target, payload, where", [
    ("DetectFaces", {"Image": {"Bytes": "QUFB"}, "MaxFaces": 5}, "DetectFacesRequest"),
    ("DetectFaces", {"Image": {"Bytes": "QUFB", "Url": "http://example.com/a.jpg"}}, "Image"),
    ("DetectFaces", {"Image": {"S3Object": {"Bucket": BUCKET, "Name": "a.jpg", "Region": "x"}}}, "Image.S3Object"),
    ("CompareFaces", {"SourceImage": {"Bytes": "QUFB"}, "TargetImage": {"Bytes": "QUFB"}, "Threshold": 80},
     "CompareFacesRequest"),
    ("CompareFaces", {"SourceImage": {"Bytes": "QUFB"}, "TargetImage": {"Bytes": "QUFB", "bytes": "QUFB"}},
     "TargetImage"),
])
def test_unknown_members_are_invalid_parameter(server, target, payload, where):
    r = _signed(server.url, payload, target)
    assert r.status_code == 400 and r.json()["__type"] == "InvalidParameterException"
    assert "unknown member(s)" in r.json()["Message"] and f"in {where}." in r.json()["Message"]


# -- S3 ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("wrong", ["secret", "access key"])
def test_s3_wrong_credentials_are_access_denied(verifier, seaweedfs, fixtures, wrong):
    seaweedfs["client"].put_object(Bucket=BUCKET, Key="requests/obama.jpg", Body=(fixtures / "obama.jpg").read_bytes())
    bad = _s3_client(seaweedfs["endpoint"], *((S3_ACCESS, "not-the-secret") if wrong == "secret" else
                                              ("AKIDNOSUCHKEY", S3_SECRET)))
    with pytest.raises(AccessDeniedException, match="check the object store credentials"):
        S3Reader(client=bad).read(BUCKET, "requests/obama.jpg")
    assert S3Reader(client=seaweedfs["client"]).read(BUCKET, "requests/obama.jpg")  # the object is there
    with _Server(_app(verifier, bad)) as running:
        client = _rekognition(running.url)
        with pytest.raises(client.exceptions.AccessDeniedException):
            client.detect_faces(Image={"S3Object": {"Bucket": BUCKET, "Name": "requests/obama.jpg"}})


def _without_content_length(client):
    """The real client, with ContentLength taken out of GetObject's parsed response (a store that streams objects
    without a Content-Length, e.g. with chunked transfer encoding)."""
    def drop(parsed, **_):
        parsed.pop("ContentLength", None)

    client.meta.events.register("after-call.s3.GetObject", drop)
    return client


def test_s3_size_cap_holds_without_a_content_length(seaweedfs):
    s3 = seaweedfs["client"]
    s3.put_object(Bucket=BUCKET, Key="requests/3000.bin", Body=b"\xff" * 3000)
    s3.put_object(Bucket=BUCKET, Key="requests/2000.bin", Body=b"\xff" * 2000)
    declared = S3Reader(client=_s3_client(seaweedfs["endpoint"]), max_bytes=2000)
    with pytest.raises(ImageTooLargeException, match="has 3,000 bytes"):  # refused from the Content-Length
        declared.read(BUCKET, "requests/3000.bin")
    streamed = S3Reader(client=_without_content_length(_s3_client(seaweedfs["endpoint"])), max_bytes=2000)
    with pytest.raises(ImageTooLargeException, match="exceeds 2,000 bytes"):  # counted while reading
        streamed.read(BUCKET, "requests/3000.bin")
    assert streamed.read(BUCKET, "requests/2000.bin") == b"\xff" * 2000  # the limit itself is allowed


# -- readiness -------------------------------------------------------------------------------------------------------


class _SlowToWarm(Verifier):
    """The shared verifier's models, whose warm-up waits for ``gate`` (a warm-up that takes a while)."""

    def __init__(self, base: Verifier, gate: threading.Event) -> None:
        super().__init__(base.settings, detector=base.detector, recognizer=base.recognizer,
                         calibration=base.calibration)
        self.gate = gate

    def warm(self) -> None:
        assert self.gate.wait(60)
        super().warm()


def test_readyz_is_503_until_the_warm_up_is_done(verifier):
    """The ASGI app driven directly (its lifespan by hand): alive but not ready while the models warm up."""
    gate = threading.Event()
    app = create_app(verifier.settings, ServerConfig(auth=False, warm=True), verifier=_SlowToWarm(verifier, gate),
                     s3=S3Reader())

    async def scenario():
        inbox: asyncio.Queue = asyncio.Queue()
        outbox: asyncio.Queue = asyncio.Queue()
        lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                           inbox.get, outbox.put))
        await inbox.put({"type": "lifespan.startup"})
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
            before = await client.get("/readyz")
            alive = await client.get("/healthz")
            gate.set()
            started = await asyncio.wait_for(outbox.get(), 60)
            after = await client.get("/readyz")
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(lifespan, 30)
        return before, alive, started, after

    before, alive, started, after = asyncio.run(scenario())
    assert before.status_code == 503 and before.json() == {"status": "loading models"}
    assert alive.status_code == 200 and alive.json() == {"status": "alive"}
    assert started["type"] == "lifespan.startup.complete"
    assert after.status_code == 200 and after.json()["status"] == "ready"
