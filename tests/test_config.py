"""The service's configuration from the environment: ``ServerConfig.from_env``, the SigV4 keys (variable and file),
the REST API keys file with the ``name:digest`` line that ``facecompare api-key`` prints, and the installed
``facecompare`` command serving with all of it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import facecompare
from conftest import free_port
from facecompare.errors import ConfigurationError
from facecompare.server.config import ServerConfig

#: the console script pip installed beside this interpreter (setup.sh's venv, or CI's)
INSTALLED = Path(sys.executable).parent / "facecompare"
SRC = str(Path(facecompare.__file__).resolve().parents[1])  # the code under test, not another checkout
DIGEST = hashlib.sha256(b"some-key").hexdigest()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACECOMPARE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))
    return {**env, **extra}


# -- ServerConfig.from_env ------------------------------------------------------------------------------------------


def test_every_variable_reaches_its_setting(tmp_path):
    keys = tmp_path / "api-keys"
    keys.write_text(f"onboarding:{DIGEST}\n")
    config = ServerConfig.from_env({
        "FACECOMPARE_AUTH": "on", "FACECOMPARE_AUTH_KEYS": "AKIDONE:secret-one", "FACECOMPARE_REGION": " eu-west-1 ",
        "FACECOMPARE_API_KEYS_FILE": str(keys), "FACECOMPARE_MAX_BODY_BYTES": "1234567",
        "FACECOMPARE_REQUEST_TIMEOUT": "12.5", "FACECOMPARE_CONCURRENCY": "3", "FACECOMPARE_MAX_QUEUE": "0",
        "FACECOMPARE_BODY_TIMEOUT": "7", "FACECOMPARE_MAX_CONNECTIONS": "off", "FACECOMPARE_HEADER_TIMEOUT": "4",
        "FACECOMPARE_KEEPALIVE_TIMEOUT": "2.5"})
    assert config.auth is True and config.access_keys == {"AKIDONE": "secret-one"} and config.region == "eu-west-1"
    assert config.api_key_hashes == {DIGEST}
    assert (config.max_body_bytes, config.request_timeout, config.concurrency, config.max_queue) == (1234567, 12.5, 3, 0)
    assert config.queue_limit == 0  # 0 is "no waiting", not "the default"
    assert (config.body_timeout, config.max_connections, config.header_timeout, config.keepalive_timeout) == \
        (7.0, None, 4.0, 2.5)


def test_queue_limit_defaults_to_four_per_engine_slot():
    assert ServerConfig.from_env({"FACECOMPARE_CONCURRENCY": "3"}).queue_limit == 12


@pytest.mark.parametrize("value, auth", [("off", False), ("OFF", False), ("none", False), ("0", False),
                                         ("false", False), ("on", True), ("", True), ("yes", True),
                                         ("disabled", True)])  # only the documented words turn it off
def test_auth_is_on_unless_turned_off_explicitly(value, auth):
    assert ServerConfig.from_env({"FACECOMPARE_AUTH": value}).auth is auth
    assert ServerConfig.from_env({}).auth is True


def test_sigv4_keys_from_the_variable_and_both_file_formats(tmp_path):
    lines = tmp_path / "keys.txt"
    lines.write_text("# access key, secret\nAKIDFILE file-secret\n\n  AKIDTWO  two:with:colons  \n")
    as_json = tmp_path / "keys.json"
    as_json.write_text(json.dumps({"AKIDJSON": "json-secret"}))
    env = {"FACECOMPARE_AUTH_KEYS": " AKIDVAR:var:secret , ,AKIDTWO:overridden,broken,:nokey"}
    assert ServerConfig.from_env(env).access_keys == {"AKIDVAR": "var:secret", "AKIDTWO": "overridden"}
    assert ServerConfig.from_env({**env, "FACECOMPARE_AUTH_KEYS_FILE": str(lines)}).access_keys == {
        "AKIDVAR": "var:secret", "AKIDFILE": "file-secret", "AKIDTWO": "two:with:colons"}  # the file wins
    assert ServerConfig.from_env({"FACECOMPARE_AUTH_KEYS_FILE": str(as_json)}).access_keys == {"AKIDJSON": "json-secret"}


def test_api_keys_file_takes_name_digest_lines_bare_digests_and_comments(tmp_path):
    other = hashlib.sha256(b"other").hexdigest()
    keys = tmp_path / "api-keys"
    keys.write_text(f"# issued 2026-11\nonboarding:{DIGEST}\n\n   {other.upper()}   \nteam:a:{DIGEST}\n")
    assert ServerConfig.from_env({"FACECOMPARE_API_KEYS_FILE": str(keys)}).api_key_hashes == {DIGEST, other}


@pytest.mark.parametrize("variable, content", [
    ("FACECOMPARE_API_KEYS_FILE", None),  # missing
    ("FACECOMPARE_API_KEYS_FILE", "onboarding:the-key-itself-instead-of-its-hash\n"),
    ("FACECOMPARE_API_KEYS_FILE", f"onboarding:{DIGEST[:-1]}\n"),
    ("FACECOMPARE_AUTH_KEYS_FILE", None),
    ("FACECOMPARE_AUTH_KEYS_FILE", "{not json"),
    ("FACECOMPARE_AUTH_KEYS_FILE", '{"AKID": 5}'),
    ("FACECOMPARE_AUTH_KEYS_FILE", "AKIDONLY\n"),
    ("FACECOMPARE_AUTH_KEYS_FILE", "AKID secret extra\n"),
])
def test_a_missing_or_malformed_keys_file_stops_the_server_with_a_message(tmp_path, variable, content):
    """A keys file the server cannot use is an error naming the variable (before: a traceback for a missing file
    or bad JSON, and lines that are not keys silently skipped, so clients met 401s and signature errors)."""
    path = tmp_path / "keys"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigurationError, match=f"^{variable}=") as stop:
        ServerConfig.from_env({variable: str(path), "FACECOMPARE_AUTH_KEYS": "AKID:secret"})
    if content is not None and "\n" in content:
        assert "line 1" in str(stop.value)


@pytest.mark.parametrize("variable", ["FACECOMPARE_API_KEYS_FILE", "FACECOMPARE_AUTH_KEYS_FILE"])
def test_serve_with_a_missing_keys_file_exits_with_a_message(tmp_path, variable):
    env = _env(FACECOMPARE_AUTH_KEYS="AKID:secret", **{variable: str(tmp_path / "absent")})
    result = subprocess.run([str(INSTALLED), "serve", "--port", str(free_port())], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0 and variable in result.stderr and "Traceback" not in result.stderr, result.stderr


# -- `facecompare api-key` and `facecompare serve`, the installed command ------------------------------------------


def _api_key(name: str) -> tuple[str, str]:
    result = subprocess.run([str(INSTALLED), "api-key", "--name", name], env=_env(), capture_output=True, text=True,
                            timeout=60, check=True)
    key = re.search(r"^API key \(give to the client; it is not stored\): (\S+)$", result.stdout, re.M).group(1)
    line = re.search(r"^Line for FACECOMPARE_API_KEYS_FILE: (\S+)$", result.stdout, re.M).group(1)
    return key, line


def test_api_key_prints_a_fresh_key_and_its_name_digest_line():
    key, line = _api_key("onboarding")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", key)  # 32 random bytes, URL-safe base64
    assert line == f"onboarding:{hashlib.sha256(key.encode()).hexdigest()}"
    assert _api_key("onboarding")[0] != key


@pytest.fixture(scope="module")
def installed_service(tmp_path_factory, fixtures):
    """`facecompare serve` started by the installed console script, configured only through the environment: a
    keys file written from `facecompare api-key`'s line, SigV4 keys in a file, a region, a body limit."""
    if not INSTALLED.exists():
        pytest.fail(f"the facecompare console script is not installed beside {sys.executable}")
    root = tmp_path_factory.mktemp("installed")
    key, line = _api_key("onboarding")
    (root / "api-keys").write_text(f"# from facecompare api-key\n{line}\n")
    (root / "sigv4-keys").write_text("AKIDINSTALLED installed-secret\n")
    port = free_port()
    log = open(root / "stderr.log", "wb")
    process = subprocess.Popen(
        [str(INSTALLED), "serve", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=log,
        env=_env(FACECOMPARE_API_KEYS_FILE=str(root / "api-keys"), FACECOMPARE_AUTH_KEYS_FILE=str(root / "sigv4-keys"),
                 FACECOMPARE_REGION="eu-west-1", FACECOMPARE_MAX_BODY_BYTES=str(2 * 1024 * 1024)))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError((root / "stderr.log").read_text()[-2000:])
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                raise RuntimeError("not ready: " + (root / "stderr.log").read_text()[-2000:])
            time.sleep(0.3)
        yield {"url": url, "key": key}
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def test_installed_serve_accepts_the_api_key_from_api_key(installed_service, fixtures):
    url, key = installed_service["url"], installed_service["key"]
    image = {"image": ("i.jpg", (fixtures / "obama.jpg").read_bytes(), "image/jpeg")}
    ok = httpx.post(url + "/v1/detect", files=image, headers={"X-API-Key": key}, timeout=60)
    assert ok.status_code == 200 and len(ok.json()["faces"]) == 1
    wrong = httpx.post(url + "/v1/detect", files=image, headers={"X-API-Key": key[:-1] + "x"}, timeout=60)
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "UnauthorizedException"


def test_installed_serve_takes_sigv4_keys_region_and_body_limit_from_the_environment(installed_service, fixtures):
    def client(region: str):
        return boto3.client("rekognition", endpoint_url=installed_service["url"], region_name=region,
                            aws_access_key_id="AKIDINSTALLED", aws_secret_access_key="installed-secret",
                            config=Config(retries={"max_attempts": 1}))

    image = {"Bytes": (fixtures / "obama.jpg").read_bytes()}
    assert len(client("eu-west-1").detect_faces(Image=image)["FaceDetails"]) == 1
    with pytest.raises(ClientError) as wrong_region:
        client("us-east-1").detect_faces(Image=image)
    assert wrong_region.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert "valid region" in wrong_region.value.response["Error"]["Message"]
    # FACECOMPARE_MAX_BODY_BYTES=2 MiB: a 1.6 MiB image is 2.2 MiB of base64, over the body limit
    big = {"Bytes": b"\xff\xd8\xff" + b"\0" * (1600 * 1024)}
    with pytest.raises(client("eu-west-1").exceptions.ImageTooLargeException):
        client("eu-west-1").detect_faces(Image=big)
