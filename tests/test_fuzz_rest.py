"""Schemathesis against the REST API of a real ``facecompare serve``: the operations of its /openapi.json, with
bodies generated from the document (JSON and multipart, valid and invalid), some of them carrying the fixture
photos so that requests reach the engine. Checked on every response: no 5xx, a status, content type, headers
and body that the document declares, schema-violating input refused with a 4xx, and a request without the API
key refused. Derandomised and bounded (``MAX_EXAMPLES`` per operation) so CI is reproducible and quick."""

from __future__ import annotations

import base64
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import FIXTURES
from test_hostile_input import API_KEY, _json_lines

pytestmark = pytest.mark.fuzz

MAX_EXAMPLES = 100  # per operation (2) and generation mode (2): 400 requests, JSON and multipart
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection, ignored_auth]
PHOTOS = [(FIXTURES / name).read_bytes() for name in ("obama.jpg", "Colin_Powell_0001.jpg", "two_people.jpg")]
IMAGE_FIELDS = ("selfie", "document", "image")


@pytest.fixture(scope="module")
def rest_schema(fuzz_service):
    return schemathesis.openapi.from_url(fuzz_service.url + "/openapi.json")


def seed_photos(case, photo: int | None) -> None:
    """Put a fixture photo in each image field of a valid (positive) body, so that the request reaches the
    engine; a negative body is left as generated (a photo could make it valid)."""
    if photo is None or case.meta is None or case.meta.generation.mode.is_negative or not isinstance(case.body, dict):
        return
    for n, name in enumerate(IMAGE_FIELDS):
        if name in case.body:
            data = PHOTOS[(photo + n) % len(PHOTOS)]
            case.body[name] = base64.b64encode(data).decode() if case.media_type == "application/json" else data


# schemathesis' own pytest integration (schema.parametrize) does not run under pytest 9 (it sets a node's
# `_nodeid`), so each operation and generation mode is one hypothesis test over schemathesis' strategy
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize("path", ["/v1/verify", "/v1/detect"])
def test_rest_api_conforms_to_its_openapi_document(rest_schema, fuzz_service, path, mode):
    operation = rest_schema[path]["POST"]
    strategy = operation.as_strategy(generation_mode=mode)  # JSON and multipart bodies, schemathesis' choice
    sent = []
    mark = fuzz_service.log_mark()

    @given(case=strategy, photo=st.one_of(st.none(), st.integers(0, len(PHOTOS) - 1)))
    @settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def fuzz(case, photo):
        seed_photos(case, photo)
        response = case.call_and_validate(base_url=fuzz_service.url, headers={"X-API-Key": API_KEY},
                                          checks=CHECKS, timeout=60)
        sent.append((case.media_type, response.status_code, photo is not None and not mode.is_negative))

    fuzz()
    print(f"{path} {mode.value}: {len(sent)} requests, {sorted(Counter((m, s) for m, s, _ in sent).items())}")
    assert len(sent) >= MAX_EXAMPLES // 2, f"only {len(sent)} requests were generated"
    assert {m for m, _, _ in sent} >= {"application/json", "multipart/form-data"}, "a content type was never sent"
    if mode is GenerationMode.POSITIVE:  # the photos reached the engine
        assert any(status == 200 for _, status, seeded in sent if seeded), sent
    logged = _json_lines(fuzz_service.log_since(mark))  # stderr stays one JSON object per line
    assert not [line for line in logged if line.get("event") == "internal_error"]
