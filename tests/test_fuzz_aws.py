"""A bounded fuzzer for the AWS endpoint (``POST /``) of a real ``facecompare serve``.

Bodies are built from botocore's own service model (the input shapes of CompareFaces and DetectFaces, with the
fixture photos as the images so that some requests reach the engine), then mutated: wrong types, huge, deep and
odd values, unknown members, bad base64, missing members, wrong targets, bodies that are not a JSON object.
Every request is signed with botocore's SigV4Auth, so it passes authentication and reaches parsing. Checked
on every response: never a 5xx; an error is a 4xx in the AWS JSON shape ``{"__type", "message"|"Message"}``;
a 200 conforms to botocore's output shape for the operation (types, required members, enums, no unknown
members). The cases come from one fixed seed, so a run is reproducible; a failure names the case's index."""

from __future__ import annotations

import base64
import copy
import json
import math
import random
from collections import Counter

import botocore.session
import httpx
import pytest

from conftest import FIXTURES
from test_hostile_input import _json_lines, _signed_headers

pytestmark = pytest.mark.fuzz

SEED = 20261126
CASES = 600  # requests in all; about one in ten is answered 200 (it reached the engine)
OPERATIONS = ("CompareFaces", "DetectFaces")
PHOTOS = [(FIXTURES / name).read_bytes() for name in ("obama.jpg", "biden.jpg", "Colin_Powell_0002.jpg",
                                                       "two_people.jpg")]
MODEL = botocore.session.get_session().get_service_model("rekognition")
TIMEOUT = httpx.Timeout(60.0)


# -- valid bodies from the input shapes ------------------------------------------------------------------------

def valid_value(shape, rng: random.Random, photo_rate: float = 0.9):
    """A value of botocore shape ``shape`` that the model allows (an Image has exactly one of its members)."""
    kind = shape.type_name
    if kind == "structure":
        members = shape.members
        if shape.name == "Image":
            chosen = ["Bytes"] if rng.random() < 0.9 else ["S3Object"]
        else:
            chosen = [m for m in members if m in shape.required_members or rng.random() < 0.5]
        return {name: valid_value(members[name], rng, photo_rate) for name in chosen}
    if kind == "list":
        return [valid_value(shape.member, rng, photo_rate) for _ in range(rng.randint(1, 2))]
    if kind == "blob":
        data = rng.choice(PHOTOS) if rng.random() < photo_rate else rng.randbytes(rng.randint(1, 64))
        return base64.b64encode(data).decode()
    if kind == "string":
        if shape.enum:
            return rng.choice(shape.enum)
        low = max(1, shape.metadata.get("min", 1))
        high = min(shape.metadata.get("max", 24), 24)
        if shape.name == "S3Bucket":
            return "bucket-" + "".join(rng.choice("abcdefghij") for _ in range(max(0, low - 7), high - 7))
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz/._-0123456789") for _ in range(rng.randint(low, high)))
    if kind in ("float", "double"):
        return round(rng.uniform(shape.metadata.get("min", 0), shape.metadata.get("max", 100)), 3)
    if kind in ("integer", "long"):
        return rng.randint(int(shape.metadata.get("min", 0)), int(min(shape.metadata.get("max", 100), 100)))
    if kind == "boolean":
        return rng.random() < 0.5
    raise AssertionError(f"no generator for {kind} ({shape.name})")


# -- mutations -------------------------------------------------------------------------------------------------

def paths(value, prefix=()):
    """Every path into a JSON value (keys and indices), the root excluded."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from paths(item, (*prefix, index))


def parent_of(body, path):
    node = body
    for step in path[:-1]:
        node = node[step]
    return node


def odd_value(rng: random.Random):
    return rng.choice([
        None, True, False, 0, -1, 2**63, -(2**63) - 1, 10**30, 1e308, -0.0, 1e-320, math.nan, math.inf, -math.inf,
        "", " ", "\x00", "\ud800", "\u202e" * 20, "é" * 50, "NONE", "x" * 100_000, [], {}, [[]], {"": None},
        [None] * 10_000, {f"k{i}": i for i in range(2_000)}, "AAAA", "=" * 8,
    ])


def bad_base64(rng: random.Random) -> str:
    photo = base64.b64encode(rng.choice(PHOTOS)).decode()
    return rng.choice([
        "!!!!", "YQ", "YQ=", "Y===", "\u00e9\u00e9\u00e9\u00e9", "data:image/jpeg;base64," + photo[:400],
        photo[:401], photo[:200] + " " + photo[200:400], photo[:400].replace("+", "-").replace("/", "_"),
        base64.b64encode(b"\xff\xd8\xff" + rng.randbytes(200)).decode(), base64.b64encode(b"\x89PNG\r\n\x1a\n").decode(),
        base64.b64encode(b"GIF89a" + bytes(50)).decode(), "A" * (7 * 1024 * 1024),
    ])


def mutate(body: dict, rng: random.Random) -> tuple[str, object]:
    """One mutation of a valid body: its kind, and the new body (a JSON value, or raw bytes)."""
    kind = rng.choice(["wrong_type", "odd_value", "unknown_member", "bad_base64", "missing_member", "huge",
                       "deep", "raw", "swap_operation"])
    body = copy.deepcopy(body)
    all_paths = list(paths(body))
    if kind in ("wrong_type", "odd_value") and all_paths:
        path = rng.choice(all_paths)
        parent_of(body, path)[path[-1]] = odd_value(rng)
        return kind, body
    if kind == "unknown_member":
        structures = [()] + [p for p in all_paths if isinstance(parent_of(body, p)[p[-1]], dict)]
        where = rng.choice(structures)
        node = body if not where else parent_of(body, where)[where[-1]]
        node[rng.choice(["Foo", "bytes", "Bytes ", "", "__type", "SourceImage", "Image", "x" * 300])] = odd_value(rng)
        return kind, body
    if kind == "bad_base64":
        images = [p for p in all_paths if p[-1] == "Bytes"]
        if images:
            path = rng.choice(images)
            parent_of(body, path)[path[-1]] = bad_base64(rng)
            return kind, body
    if kind == "missing_member" and all_paths:
        path = rng.choice([p for p in all_paths if isinstance(p[-1], str)])
        del parent_of(body, path)[path[-1]]
        return kind, body
    if kind == "huge":
        path = rng.choice(all_paths) if all_paths else ("Foo",)
        parent_of(body, path)[path[-1]] = rng.choice(["x" * 2_000_000, list(range(200_000)), 10**4000, -1e308,
                                                       {str(i): i for i in range(50_000)}])
        return kind, body
    if kind == "deep":
        depth = rng.choice([100, 1_000, 100_000])
        opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
        inner = opener * depth + "1" + closer * depth
        return kind, json.dumps(body)[:-1].encode() + (b', "Deep": ' if body else b'"Deep": ') + inner.encode() + b"}"
    if kind == "raw":
        return kind, rng.choice([
            b"", b"{", b"}", b"null", b"[]", b"[{}]", b'"SourceImage"', b"42", b"true", b"\xff\xfe\x00",
            b"\xef\xbb\xbf{}", json.dumps(body).encode()[: rng.randint(1, 200)], b'{"a": 1' + b"9" * 5000 + b"}",
            b"{" + b'"k": 1,' * 10000 + b'"z": 2}', b'{"SourceImage": NaN}', b'{"SourceImage": {"Bytes": "\\ud800"}}',
            ("1" * 5000).encode(), b"\x00" * 100,
        ])
    return "swap_operation", body  # the body of one operation sent to the other (see the target below)


def target_for(operation: str, kind: str, rng: random.Random) -> str:
    if kind == "swap_operation":
        return "RekognitionService." + ("DetectFaces" if operation == "CompareFaces" else "CompareFaces")
    if kind == "wrong_target":
        return rng.choice(["", "RekognitionService.", "RekognitionService.compareFaces", "RekognitionService.CreateUser",
                           "RekognitionService.CompareFaces.", "Rekognition.CompareFaces", "CompareFaces",
                           "RekognitionService." + "X" * 5000, "RekognitionService.%C3%A9", "S3.GetObject"])
    return "RekognitionService." + operation


def cases(rng: random.Random):
    """(index, operation, kind, target, body bytes) for CASES requests, from the seed alone."""
    for index in range(CASES):
        operation = OPERATIONS[index % 2]
        body = valid_value(MODEL.operation_model(operation).input_shape, rng)
        roll = rng.random()
        if roll < 0.2:
            kind = "valid"
        elif roll < 0.28:
            kind = "wrong_target"
        else:
            kind, body = mutate(body, rng)
        target = target_for(operation, kind, rng)
        raw = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8", "surrogatepass")
        yield index, operation, kind, target, raw


# -- conformance -----------------------------------------------------------------------------------------------

def output_problems(shape, value, where: str) -> list[str]:
    """How ``value`` departs from botocore shape ``shape`` (types, required members, enums, unknown members)."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{where}: {type(value).__name__}, not an object"]
        problems = [f"{where}: lacks required {name}" for name in shape.required_members if name not in value]
        for name, item in value.items():
            if name not in shape.members:
                problems.append(f"{where}: unknown member {name!r}")
            else:
                problems += output_problems(shape.members[name], item, f"{where}.{name}")
        return problems
    if kind == "list":
        if not isinstance(value, list):
            return [f"{where}: {type(value).__name__}, not a list"]
        return [p for i, item in enumerate(value) for p in output_problems(shape.member, item, f"{where}[{i}]")]
    if kind == "map":
        if not isinstance(value, dict):
            return [f"{where}: not a map"]
        return [p for k, item in value.items() for p in output_problems(shape.value, item, f"{where}[{k!r}]")]
    if kind == "string":
        if not isinstance(value, str):
            return [f"{where}: {value!r} is not a string"]
        return [f"{where}: {value!r} is not one of {shape.enum}"] if shape.enum and value not in shape.enum else []
    if kind in ("float", "double"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return [] if ok else [f"{where}: {value!r} is not a finite number"]
    if kind in ("integer", "long"):
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{where}: {value!r} is not an integer"]
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{where}: {value!r} is not a boolean"]
    if kind == "blob":
        return [] if isinstance(value, str) else [f"{where}: {value!r} is not base64"]
    return [f"{where}: unexpected shape type {kind}"]


def error_type(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return "not JSON"
    return str(body.get("__type", "")) if isinstance(body, dict) else ""


def check_response(response: httpx.Response, operation: str) -> list[str]:
    status = response.status_code
    if status >= 500:
        return [f"status {status}: {response.text[:300]}"]
    try:
        body = response.json()
    except ValueError:
        return [f"status {status}: the body is not JSON: {response.text[:300]!r}"]
    if status == 200:
        return output_problems(MODEL.operation_model(operation).output_shape, body, operation + "Response")
    problems = [] if 400 <= status < 500 else [f"status {status} is not a 4xx"]
    if not isinstance(body, dict) or not isinstance(body.get("__type"), str) or not body["__type"]:
        return problems + [f"status {status}: no __type in {str(body)[:300]}"]
    message = body.get("message", body.get("Message"))
    if not isinstance(message, str):
        problems.append(f"status {status}: no message in {str(body)[:300]}")
    if set(body) - {"__type", "message", "Message"}:
        problems.append(f"status {status}: members beyond __type and message: {sorted(body)}")
    if not response.headers.get("content-type", "").startswith("application/x-amz-json-1.1"):
        problems.append(f"status {status}: content type {response.headers.get('content-type')!r}")
    return problems


def test_signed_mutated_requests_get_a_4xx_aws_error_or_a_conforming_200(fuzz_service):
    rng = random.Random(SEED)
    mark = fuzz_service.log_mark()
    outcomes: Counter = Counter()
    failures: list[str] = []
    with httpx.Client(timeout=TIMEOUT) as client:
        for index, operation, kind, target, raw in cases(rng):
            headers = _signed_headers(fuzz_service.url, raw, target)
            response = client.post(fuzz_service.url + "/", content=raw, headers=headers)
            body_type = error_type(response)
            outcomes[(kind, response.status_code, body_type)] += 1
            problems = check_response(response, target.removeprefix("RekognitionService."))
            if problems:
                failures.append(f"case {index} ({operation}, {kind}, target {target[:60]!r}, body "
                                f"{raw[:120]!r}...): {'; '.join(problems[:5])}")
    print("\n".join(f"{n:4d}  {kind} -> {status} {error}" for (kind, status, error), n in sorted(outcomes.items())))
    assert not failures, f"{len(failures)} of {CASES} cases failed:\n" + "\n".join(failures[:20])
    reached = sum(n for (_, status, _), n in outcomes.items() if status == 200)
    assert reached >= CASES // 10, f"only {reached} requests reached the engine and succeeded: {outcomes}"
    assert sum(outcomes.values()) == CASES
    logged = _json_lines(fuzz_service.log_since(mark))  # stderr stays one JSON object per line
    assert not [line for line in logged if line.get("event") == "internal_error"]
