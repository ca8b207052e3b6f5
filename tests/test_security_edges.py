"""The service's edges (issue 22): with authentication off it does not listen beyond loopback unless told twice;
web pages cannot drive the REST API (text/plain bodies, other origins) nor read it through DNS rebinding (Host
names); every request log line says which key called (its name, never the key)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from starlette.testclient import TestClient

from facecompare.cli import loopback_host
from facecompare.server.app import create_app
from facecompare.server.config import ServerConfig, hash_api_key
from facecompare.settings import Settings
from facecompare.storage import S3Reader

LOCAL = "http://127.0.0.1:8080"


@pytest.fixture
def app(tmp_path):
    config = ServerConfig(auth=False, warm=False, collections_url=f"sqlite:///{tmp_path / 'c.db'}")
    app = create_app(Settings(), config, s3=S3Reader())
    yield app
    app.state.pipeline.close()


def collections(client) -> list:
    return [c["collection_id"] for c in client.get("/v1/collections").json()["collections"]]


@pytest.mark.parametrize("env, args", [({}, ["--no-auth", "--host", "0.0.0.0"]),
                                       ({"FACECOMPARE_AUTH": "off"}, ["--host", "0.0.0.0"]),
                                       ({"FACECOMPARE_AUTH": "off"}, ["--host", "faces.example.com"])])
def test_no_auth_beyond_loopback_is_refused_unless_told_twice(env, args, tmp_path):
    import os

    done = subprocess.run([sys.executable, "-m", "facecompare.cli", "serve", *args, "--port", "1"],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "--allow-unauthenticated-network" in done.stderr and "authentication is off" in done.stderr
    assert not list(tmp_path.iterdir())  # nothing started, nothing created


def test_loopback_host():
    assert all(loopback_host(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"))
    assert not any(loopback_host(h) for h in ("0.0.0.0", "::", "192.168.1.5", "faces.example.com", ""))


def test_a_text_plain_body_cannot_drive_the_rest_api(app):
    """What a web page can send without a CORS preflight: text/plain (or form-encoded) bodies that are JSON."""
    client = TestClient(app, base_url=LOCAL)
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "text/plain; charset=utf-8"):
        response = client.post("/v1/collections", content=b'{"collection_id": "planted"}',
                               headers={"content-type": content_type})
        assert response.status_code == 415, response.text
        assert response.json()["error"]["type"] == "InvalidParameterException"
    response = client.post("/v1/collections", content=b'{"collection_id": "planted"}')  # no Content-Type at all
    assert response.status_code == 415
    assert collections(client) == []
    assert client.post("/v1/collections", json={"collection_id": "mine"}).status_code == 200
    assert collections(client) == ["mine"]
    assert client.delete("/v1/collections/mine").status_code == 200  # no body: no Content-Type needed


def test_another_sites_pages_cannot_change_anything(app):
    client = TestClient(app, base_url=LOCAL)
    for origin in ("https://evil.example", "null", "http://127.0.0.1:9999"):
        response = client.post("/v1/collections", json={"collection_id": "planted"}, headers={"origin": origin})
        assert response.status_code == 403, origin
        assert response.json()["error"]["type"] == "AccessDeniedException"
    assert collections(client) == []
    assert client.post("/v1/collections", json={"collection_id": "a"}, headers={"origin": LOCAL}).status_code == 200
    assert client.delete("/v1/collections/a", headers={"origin": "https://evil.example"}).status_code == 403
    assert collections(client) == ["a"]


def test_dns_rebinding_host_names_are_refused(app, tmp_path):
    client = TestClient(app, base_url=LOCAL)
    assert client.post("/v1/collections", json={"collection_id": "secret-kyc"}).status_code == 200
    for host in ("evil.example:8080", "evil.example", "localhost.evil.example"):
        for method, path in (("GET", "/v1/collections"), ("DELETE", "/v1/collections/secret-kyc"),
                             ("GET", "/console/login")):
            response = client.request(method, path, headers={"host": host})
            assert response.status_code == 400, (host, path)
            assert "secret-kyc" not in response.text and "evil" not in response.text
    aws = client.post("/", content=b"{}", headers={"host": "evil.example", "x-amz-target": "RekognitionService.ListCollections",
                                                  "content-type": "application/x-amz-json-1.1"})
    assert aws.status_code == 400 and aws.json()["__type"] == "InvalidParameterException"
    assert collections(client) == ["secret-kyc"]
    for host in ("localhost:8080", "127.0.0.1", "[::1]:8080", "192.168.1.20:8080"):  # no name to rebind
        assert client.get("/v1/collections", headers={"host": host}).status_code == 200, host


def test_allowed_hosts_setting(tmp_path):
    config = ServerConfig.from_env({"FACECOMPARE_AUTH": "off", "FACECOMPARE_ALLOWED_HOSTS": "Faces.Internal, kyc.lan.",
                                    "FACECOMPARE_COLLECTIONS": f"sqlite:///{tmp_path / 'c.db'}"})
    assert config.allowed_hosts == frozenset({"faces.internal", "kyc.lan"})
    config.warm = False
    app = create_app(Settings(), config, s3=S3Reader())
    client = TestClient(app, base_url="http://faces.internal:8080")
    assert client.get("/v1/collections").status_code == 200
    assert client.get("/v1/collections", headers={"host": "kyc.lan"}).status_code == 200
    assert client.get("/v1/collections", headers={"host": "evil.example"}).status_code == 400
    app.state.pipeline.close()
    # with authentication on, any name unless the setting is given
    on = create_app(Settings(), ServerConfig(warm=False, api_key_hashes={hash_api_key("k")},
                                             collections_url=f"sqlite:///{tmp_path / 'c.db'}"), s3=S3Reader())
    assert TestClient(on, base_url="http://faces.example.com").get("/healthz").status_code == 200
    on.state.pipeline.close()


def test_every_request_log_line_names_the_key_never_the_key(tmp_path, caplog):
    keys = tmp_path / "keys"
    keys.write_text(f"fraud-team:{hash_api_key('key-of-fraud')}\n{hash_api_key('unnamed-key')}\n")
    config = ServerConfig.from_env({"FACECOMPARE_API_KEYS_FILE": str(keys),
                                    "FACECOMPARE_COLLECTIONS": f"sqlite:///{tmp_path / 'c.db'}"})
    config.warm = False
    app = create_app(Settings(), config, s3=S3Reader())
    client = TestClient(app, base_url=LOCAL)
    with caplog.at_level("INFO", logger="facecompare.server"):
        assert client.get("/v1/collections", headers={"x-api-key": "key-of-fraud"}).status_code == 200
        assert client.get("/v1/collections", headers={"x-api-key": "unnamed-key"}).status_code == 200
        assert client.get("/v1/collections", headers={"x-api-key": "wrong"}).status_code == 401
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.getMessage().startswith("{")]
    lines = [line for line in lines if line.get("surface") == "rest"]
    assert [line["key"] for line in lines] == ["fraud-team", f"key-{hash_api_key('unnamed-key')[:8]}", None]
    text = caplog.text
    assert "key-of-fraud" not in text and "unnamed-key" not in text and "wrong" not in text
    app.state.pipeline.close()


def test_told_twice_it_warns_loudly(tmp_path):
    """With --allow-unauthenticated-network the refusal gives way to a loud warning (the bind itself then fails here:
    192.0.2.1 is a documentation address no machine has)."""
    import os

    done = subprocess.run([sys.executable, "-m", "facecompare.cli", "serve", "--no-auth", "--host", "192.0.2.1",
                           "--allow-unauthenticated-network", "--port", "8080"],
                          env={**os.environ, "FACECOMPARE_COLLECTIONS": f"sqlite:///{tmp_path / 'c.db'}"},
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.stderr.count("WARNING") >= 2 and "authentication is OFF" in done.stderr, done.stderr[-2000:]
    assert "FACECOMPARE_ALLOWED_HOSTS" in done.stderr
    assert done.returncode != 0  # the address cannot be bound: nothing listens anywhere
