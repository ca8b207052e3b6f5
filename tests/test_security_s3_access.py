"""Per-caller S3 access (issue 22): with FACECOMPARE_S3_ACCESS set, a caller may have read only the buckets or
prefixes its rule names (deny by default), so tenant A cannot compare a face with tenant B's passport photo through
the service's own S3 credentials. Against a real S3-compatible store (SeaweedFS)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from starlette.testclient import TestClient

from conftest import BUCKET, S3_ACCESS, S3_SECRET
from facecompare.errors import ConfigurationError
from facecompare.server.app import create_app
from facecompare.server.config import ServerConfig, s3_access_rules, s3_allowed
from facecompare.storage import S3Reader

TENANT_A, TENANT_B, SECRET = "AKIDTENANTA", "AKIDTENANTB", "tenant-secret"
URL = "http://127.0.0.1:8080"


def compare(client, access: str, source_key: str, target_key: str):
    body = json.dumps({"SourceImage": {"S3Object": {"Bucket": BUCKET, "Name": source_key}},
                       "TargetImage": {"S3Object": {"Bucket": BUCKET, "Name": target_key}}}).encode()
    request = AWSRequest(method="POST", url=URL + "/", data=body,
                         headers={"X-Amz-Target": "RekognitionService.CompareFaces",
                                  "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials(access, SECRET), "rekognition", "us-east-1").add_auth(request)
    return client.post("/", content=body, headers=dict(request.headers.items()))


@pytest.fixture
def tenants(verifier, seaweedfs, fixtures):
    s3 = seaweedfs["client"]
    s3.put_object(Bucket=BUCKET, Key="tenant-a/selfie.jpg", Body=(fixtures / "Colin_Powell_0001.jpg").read_bytes())
    s3.put_object(Bucket=BUCKET, Key="tenant-a/id.jpg", Body=(fixtures / "Colin_Powell_0002.jpg").read_bytes())
    s3.put_object(Bucket=BUCKET, Key="tenant-b/passport.jpg", Body=(fixtures / "Colin_Powell_0002.jpg").read_bytes())
    reader = S3Reader(client=boto3.client("s3", endpoint_url=seaweedfs["endpoint"], aws_access_key_id=S3_ACCESS,
                                          aws_secret_access_key=S3_SECRET, region_name="us-east-1",
                                          config=Config(s3={"addressing_style": "path"})))
    config = ServerConfig(warm=False, access_keys={TENANT_A: SECRET, TENANT_B: SECRET},
                          s3_access=s3_access_rules(f"{TENANT_A}={BUCKET}/tenant-a/;{TENANT_B}={BUCKET}/tenant-b/"))
    with TestClient(create_app(verifier.settings, config, verifier=verifier, s3=reader), base_url=URL) as client:
        yield client


def test_a_tenant_reads_its_own_objects_only(tenants):
    own = compare(tenants, TENANT_A, "tenant-a/selfie.jpg", "tenant-a/id.jpg")
    assert own.status_code == 200, own.text
    assert own.json()["FaceMatches"][0]["Similarity"] > 80
    other = compare(tenants, TENANT_A, "tenant-a/selfie.jpg", "tenant-b/passport.jpg")
    assert other.status_code == 400 and other.json()["__type"] == "InvalidS3ObjectException"
    assert "passport" not in other.text and "tenant-b" not in other.text
    missing = compare(tenants, TENANT_A, "tenant-a/selfie.jpg", "tenant-b/no-such-object.jpg")
    assert missing.json() == other.json()  # a refused object and an absent one read the same: nothing is revealed
    assert compare(tenants, TENANT_B, "tenant-b/passport.jpg", "tenant-a/id.jpg").status_code == 400


def test_rules():
    rules = s3_access_rules("fraud-team=kyc-images/fraud/,shared-bucket; AKID1=kyc-images ;*=public-faces/demo/")
    assert rules == {"fraud-team": (("kyc-images", "fraud/"), ("shared-bucket", "")), "AKID1": (("kyc-images", ""),),
                     "*": (("public-faces", "demo/"),)}
    assert s3_allowed(rules, "fraud-team", "kyc-images", "fraud/a.jpg")
    assert not s3_allowed(rules, "fraud-team", "kyc-images", "other/a.jpg")
    assert s3_allowed(rules, "fraud-team", "shared-bucket", "x")
    assert s3_allowed(rules, "AKID1", "kyc-images", "anything")
    assert not s3_allowed(rules, "stranger", "kyc-images", "fraud/a.jpg")  # no rule: denied
    assert s3_allowed(rules, "stranger", "public-faces", "demo/1.jpg") and s3_allowed(rules, None, "public-faces",
                                                                                        "demo/1.jpg")
    assert s3_allowed(None, "anyone", "any", "thing")  # no rules at all: as before
    assert s3_access_rules("") is None
    for bad in ("no-equals-sign", "a=", "=bucket", "a=Bad_Bucket"):
        with pytest.raises(ConfigurationError, match="FACECOMPARE_S3_ACCESS"):
            s3_access_rules(bad)
