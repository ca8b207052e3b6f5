"""Secrets stay secret (issue 22): a database URL's password is redacted wherever the URL is logged or quoted
(``user:pass@`` and ``?password=``-style parameters), and a malformed FACECOMPARE_COLLECTIONS is never quoted to
API clients."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from facecompare.collections.store import open_store, redact_url
from facecompare.errors import InternalServerError, InvalidParameterException
from facecompare.review.store import open_review_store
from facecompare.server.app import create_app
from facecompare.server.config import ServerConfig
from facecompare.settings import Settings
from facecompare.storage import S3Reader

SECRET = "hunter2-s3cret"


@pytest.mark.parametrize("url, expected", [
    (f"postgresql://kyc:{SECRET}@db:5432/faces", "postgresql://kyc:***@db:5432/faces"),
    (f"postgresql://kyc@db/faces?password={SECRET}", "postgresql://kyc@db/faces?password=***"),
    (f"postgresql://db/faces?sslmode=require&sslpassword={SECRET}&application_name=a",
     "postgresql://db/faces?sslmode=require&sslpassword=***&application_name=a"),
    (f"postgresql://u:{SECRET}@db/faces?PASSWORD={SECRET}", "postgresql://u:***@db/faces?PASSWORD=***"),
    ("postgresql://db/faces?sslmode=require", "postgresql://db/faces?sslmode=require"),
    (f"postgresql://u:{SECRET}@db:notaport/x", "postgresql://..."),
])
def test_redact_url(url, expected):
    assert redact_url(url) == expected


@pytest.mark.parametrize("url", [f"postgresq://kyc:{SECRET}@db/faces", f"kyc:{SECRET}@db/faces",
                                 f"mysql://db/faces?password={SECRET}"])
def test_a_malformed_store_url_is_not_quoted(url):
    for opener in (open_store, open_review_store):
        with pytest.raises(InvalidParameterException) as err:
            opener(url)
        assert SECRET not in err.value.message and "FACECOMPARE_COLLECTIONS" in err.value.message


def test_a_sqlite_url_with_a_secret_is_quoted_redacted():
    with pytest.raises(InvalidParameterException) as err:
        open_store(f"sqlite://u:{SECRET}@x/db")
    assert SECRET not in err.value.message


def test_api_clients_never_see_the_store_url(tmp_path):
    url = f"postgresq://kyc:{SECRET}@db/faces?password={SECRET}"
    app = create_app(Settings(), ServerConfig(auth=False, warm=False, collections_url=url), s3=S3Reader())
    client = TestClient(app, base_url="http://127.0.0.1:8080")
    for method, path, body in (("GET", "/v1/collections", None), ("POST", "/v1/collections", {"collection_id": "a"})):
        response = client.request(method, path, json=body)
        assert 400 <= response.status_code < 600 and response.status_code != 500, response.text
        assert SECRET not in response.text and "kyc" not in response.text


def test_postgres_logs_the_url_without_a_password_parameter(postgres_cluster, caplog):
    from facecompare.collections.postgres import PostgresStore

    missing = f"postgresql://{postgres_cluster.user}@/nodb?host={postgres_cluster.root}&port=1&password={SECRET}"
    with caplog.at_level("WARNING", logger="facecompare.collections"):
        with pytest.raises(InternalServerError) as err:
            PostgresStore(missing, connect_timeout=2)
    assert SECRET not in err.value.message
    logged = [r.getMessage() for r in caplog.records if r.name == "facecompare.collections"]
    assert logged and all(SECRET not in line for line in logged)
    assert any("password=***" in line and "nodb" in line for line in logged)
