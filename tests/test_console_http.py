"""The review console over HTTP, in process (Starlette's test client over https://, so Secure cookies flow): every
page needs a session, forms need the session's CSRF token and a same-origin request, cookies and headers are the
safe ones, bad input is a 4xx page, and the pictures are the stored images with the compared face boxed.

The flows a reviewer clicks through are tested in a real browser in test_console_browser.py."""

from __future__ import annotations

import csv
import io
import re

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from facecompare.errors import ConfigurationError
from facecompare.native import other_faces, verification_dict
from facecompare.review.service import MAX_FAILED_SIGN_INS, ReviewQueue
from facecompare.review.store import open_review_store
from facecompare.server.app import create_app
from facecompare.server.config import ServerConfig
from facecompare.server.console import SESSION_COOKIE
from facecompare.storage import S3Reader
from fake_clock import Clock

PASSWORD = "correct horse battery staple"
BASE = "https://console.test"
#: the console's names in these tests: with authentication off, a name must be allowed (DNS rebinding, issue 22)
CONFIG = {"auth": False, "warm": False, "allowed_hosts": frozenset({"console.test", "lan.test"})}
AMBER = np.array([255, 170, 0])


@pytest.fixture(scope="module")
def pairs(verifier, fixtures):
    """Real verifications of fixture pairs: (result dict with other faces, selfie bytes, document bytes)."""
    out = {}
    for name, selfie, document in (("blair", "Tony_Blair_0001.jpg", "Colin_Powell_0001.jpg"),
                                   ("back", "Serena_Williams_0001.jpg", "id_back_mrz_only_che.jpg"),
                                   ("impostor", "obama.jpg", "biden.jpg")):
        s, d = (fixtures / selfie).read_bytes(), (fixtures / document).read_bytes()
        v = verifier.verify(s, d)
        out[name] = ({**verification_dict(v), "other_faces": other_faces(v)}, s, d)
    assert out["blair"][0]["decision"] == "REVIEW" and out["back"][0]["decision"] == "REVIEW"
    assert out["impostor"][0]["decision"] == "NO_MATCH"
    return out


@pytest.fixture
def console(tmp_path, verifier, pairs):
    """An app on a fresh SQLite store with three queued cases, a reviewer, and a clock the test can move."""
    clock = Clock()
    url = f"sqlite:///{tmp_path / 'store.db'}"
    app = create_app(verifier.settings, ServerConfig(**CONFIG, collections_url=url), verifier=verifier,
                     s3=S3Reader())
    queue = ReviewQueue(open_review_store(url), 30, clock)
    app.state.pipeline._review = queue
    queue.add_reviewer("alice", PASSWORD)
    queue.add_reviewer("bob", PASSWORD)
    cases = {}
    for name, (result, s, d) in pairs.items():
        cases[name], _ = queue.queue(result, verifier.recognizer.name, s, d, source="api", batch="morning",
                                     reference=name)
        clock.now += 60
    with TestClient(app, base_url=BASE, follow_redirects=False) as client:
        client.queue, client.cases, client.clock = queue, cases, clock
        yield client
    queue.store.close()


def sign_in(client, username="alice", password=PASSWORD, headers=None):
    page = client.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post("/console/login", data={"csrf": token, "username": username, "password": password,
                                               "next": "/console/queue"}, headers=headers or {})


def csrf_of(page) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def test_every_page_needs_a_session(console):
    case_id = console.cases["blair"].case_id
    for path in ("/console/queue", f"/console/cases/{case_id}", "/console/audit", "/console/export.csv"):
        response = console.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/console/login?next=%2Fconsole%2F"), path
    for path in (f"/console/cases/{case_id}/image/selfie", f"/console/cases/{case_id}/face/document"):
        response = console.get(path)
        assert response.status_code == 403 and response.content == b"", path
    response = console.post(f"/console/cases/{case_id}/decision", data={"action": "MATCH", "comment": "x",
                                                                        "version": "1", "csrf": "x"})
    assert response.status_code == 403
    assert console.queue.store.get_case(case_id).status == "OPEN"
    # a forged cookie is no session either
    console.cookies.set(SESSION_COOKIE, "forged", domain="console.test", path="/console")
    assert console.get("/console/queue").status_code == 303


def test_sign_in_sets_a_safe_cookie_and_pages_have_safe_headers(console):
    response = sign_in(console)
    assert response.status_code == 303 and response.headers["location"] == "/console/queue"
    cookie = [c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "=")][0]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite", "path"} <= attributes
    assert "samesite=strict" in cookie.lower() and "path=/console" in cookie.lower()
    token = cookie.split(";")[0].split("=", 1)[1]
    # the database holds the token's hash, never the token
    assert console.queue.store.session(token) is None
    page = console.get("/console/queue")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    # nothing on the page comes from another host
    assert not re.search(r'(src|href)="(https?:)?//', page.text)
    assert 'id="reviewer">alice<' in page.text


def test_the_cookie_loses_secure_only_when_the_operator_says_so(tmp_path, verifier):
    url = f"sqlite:///{tmp_path / 's.db'}"
    app = create_app(verifier.settings, ServerConfig(**CONFIG, collections_url=url,
                                                     console_secure_cookies=False), verifier=verifier, s3=S3Reader())
    app.state.pipeline.review.add_reviewer("carol", PASSWORD)
    with TestClient(app, base_url="http://lan.test", follow_redirects=False) as client:
        response = sign_in(client, "carol")
        assert response.status_code == 303
        cookie = [c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)][0]
        assert "secure" not in cookie.lower()
        assert client.get("/console/queue").status_code == 200
    app.state.pipeline.close()


def test_sign_in_form_is_protected(console):
    page = console.get("/console/login")
    token = csrf_of(page)
    data = {"csrf": token, "username": "alice", "password": PASSWORD}
    # another site's form, or a token that is not the cookie's
    assert console.post("/console/login", data=data, headers={"origin": "https://evil.test"}).status_code == 403
    assert console.post("/console/login", data={**data, "csrf": "other"}).status_code == 403
    console.cookies.clear()
    assert console.post("/console/login", data=data).status_code == 403  # no login cookie
    assert SESSION_COOKIE not in console.cookies


@pytest.mark.parametrize("target", ["https://evil.test/console/queue", "//evil.test/x", "/console\\..\\x",
                                    "/elsewhere", "javascript:alert(1)"])
def test_sign_in_never_leads_off_the_console(console, target):
    page = console.get("/console/login", params={"next": target})
    assert target not in page.text or target == "/elsewhere" and 'value="/console/queue"' in page.text
    response = console.post("/console/login", data={"csrf": csrf_of(page), "username": "alice", "password": PASSWORD,
                                                    "next": target})
    assert response.headers["location"] == "/console/queue"


def test_wrong_passwords_lock_the_name_and_are_audited(console):
    for _ in range(MAX_FAILED_SIGN_INS):
        response = sign_in(console, password="wrong password!!")
        assert response.status_code == 401 and "Wrong name or password" in response.text
    assert sign_in(console).status_code == 401  # locked: the right password is refused too
    actions = [e.action for e in console.queue.store.audit_log() if e.actor == "alice"]
    assert actions.count("SIGN_IN_FAILED") == MAX_FAILED_SIGN_INS and actions[0] == "SIGN_IN_REFUSED"
    assert sign_in(console, "bob").status_code == 303  # another name is not locked
    console.clock.now += 15 * 60 + 1
    console.cookies.clear()
    assert sign_in(console).status_code == 303


def test_unknown_names_and_disabled_accounts_cannot_sign_in(console):
    assert sign_in(console, "mallory").status_code == 401
    assert sign_in(console, "<script>").status_code == 401
    console.queue.set_disabled("bob", True)
    assert sign_in(console, "bob").status_code == 401


def test_a_session_ends_when_idle_when_signed_out_and_when_disabled(console):
    sign_in(console)
    assert console.get("/console/queue").status_code == 200
    console.clock.now += 31 * 60
    assert console.get("/console/queue").status_code == 303
    sign_in(console)
    page = console.get("/console/queue")
    assert console.post("/console/logout", data={"csrf": csrf_of(page)}).status_code == 303
    assert console.get("/console/queue").status_code == 303
    sign_in(console)
    console.queue.set_disabled("alice", True)
    assert console.get("/console/queue").status_code == 303


def test_a_decision_needs_the_csrf_token_the_same_origin_the_version_and_a_comment(console):
    sign_in(console)
    case = console.cases["blair"]
    page = console.get(f"/console/cases/{case.case_id}")
    assert page.status_code == 200
    form = {"csrf": csrf_of(page), "version": str(case.version), "action": "MATCH", "comment": "same ears"}
    url = f"/console/cases/{case.case_id}/decision"
    assert console.post(url, data={**form, "csrf": "nope"}).status_code == 403
    assert console.post(url, data=form, headers={"origin": "https://evil.test"}).status_code == 403
    assert console.post(url, data=form, headers={"origin": "null"}).status_code == 403
    assert console.post(url, data={**form, "version": "x"}).status_code == 400
    refused = console.post(url, data={**form, "comment": "   "})
    assert refused.status_code == 400 and "A comment is required" in refused.text
    assert console.post(url, data={**form, "action": "APPROVE"}).status_code == 400
    assert console.post("/console/cases/no-such-case/decision", data=form).status_code == 404
    assert console.queue.store.get_case(case.case_id).status == "OPEN"
    assert [e.action for e in console.queue.store.audit_log(case_id=case.case_id)] == ["CASE_QUEUED"]
    done = console.post(url, data=form, headers={"origin": BASE})
    assert done.status_code == 303
    # on to the next open case of the queue: the one queued after it
    assert done.headers["location"].startswith(f"/console/cases/{console.cases['back'].case_id}?")
    decided = console.queue.store.get_case(case.case_id)
    assert (decided.status, decided.reviewed_by, decided.comment) == ("MATCH", "alice", "same ears")
    # the same form again: the case is decided, the second decision is refused and not audited
    again = console.post(url, data=form)
    assert again.status_code == 409 and "already decided" in again.text
    assert [e.action for e in console.queue.store.audit_log(case_id=case.case_id)] == ["MATCH", "CASE_QUEUED"]


def test_malformed_forms_are_400_pages(console):
    sign_in(console)
    case = console.cases["blair"]
    for body, content_type in ((b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nv', "multipart/form-data"),
                               (b'--x\r\nContent-Disposition: form-data; name="f"; filename="a.jpg"\r\n\r\nv\r\n--x--',
                                "multipart/form-data; boundary=x"),
                               (b"a=" + b"b" * 70_000, "application/x-www-form-urlencoded"),
                               ("&".join(f"f{i}=1" for i in range(50)).encode(), "application/x-www-form-urlencoded")):
        response = console.post(f"/console/cases/{case.case_id}/decision", content=body,
                                headers={"content-type": content_type})
        assert response.status_code == 400, body[:20]
        assert "form could not be read" in response.text


def test_the_queue_filters_by_status_reason_batch_and_age(console):
    sign_in(console)
    queue = console.queue
    ids = lambda page: re.findall(r'data-case="([0-9a-f-]{36})"', page.text)  # noqa: E731
    all_open = ids(console.get("/console/queue"))
    assert all_open == [console.cases[n].case_id for n in ("blair", "back", "impostor")]  # oldest first
    assert ids(console.get("/console/queue", params={"reason": "NO_FACE_ON_DOCUMENT"})) == [console.cases["back"].case_id]
    assert ids(console.get("/console/queue", params={"reason": "NO_FACE"})) == []  # a code, not a prefix
    assert ids(console.get("/console/queue", params={"batch": "evening"})) == []
    assert console.get("/console/queue", params={"reason": "x%'"}).status_code == 400
    assert console.get("/console/queue", params={"age": "forever"}).status_code == 400
    assert console.get("/console/queue", params={"status": "deleted"}).status_code == 400
    console.clock.now += 24 * 3600 - 150  # the cases were queued 180, 120 and 60 s ago: the first is now 24 h 30 s old
    sign_in(console, "bob")  # the first session idled out meanwhile
    older = ids(console.get("/console/queue", params={"age": "ge24h"}))
    assert older == [console.cases["blair"].case_id]
    assert ids(console.get("/console/queue", params={"age": "lt24h"})) == [console.cases["back"].case_id,
                                                                          console.cases["impostor"].case_id]
    queue.decide(console.cases["back"].case_id, "ESCALATE", "alice", "ask a senior", 1)
    assert ids(console.get("/console/queue", params={"status": "escalated"})) == [console.cases["back"].case_id]
    assert console.cases["back"].case_id not in ids(console.get("/console/queue"))
    # the reviewed counts per model
    page = console.get("/console/queue")
    row = re.search(r'<tr data-model="([^"]+)">(.*?)</tr>', page.text, re.S)
    assert row.group(1) == console.cases["back"].model
    assert re.findall(r'class="num">(\d+)<', row.group(2)) == ["0", "0", "1", "2"]


def test_text_from_callers_and_reviewers_is_escaped(console, pairs, verifier):
    result, s, d = pairs["blair"]
    hostile = '<img src=x onerror=alert(1)>"'
    case, _ = console.queue.queue(result, verifier.recognizer.name, s, d, source="api", batch=hostile,
                                  reference=hostile)
    console.queue.decide(case.case_id, "ESCALATE", "bob", "</textarea><script>alert(2)</script>", 1)
    sign_in(console)
    for path in ("/console/queue?status=all", f"/console/cases/{case.case_id}", "/console/audit"):
        page = console.get(path)
        assert page.status_code == 200
        assert "<img src=x" not in page.text and "<script>alert" not in page.text, path
        assert "&lt;" in page.text


def test_pictures_are_the_stored_images_with_the_face_boxed(console):
    sign_in(console)
    case = console.cases["blair"]
    response = console.get(f"/console/cases/{case.case_id}/image/selfie")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.headers["cache-control"] == "no-store"
    panel = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB")).astype(int)
    assert panel.shape[0] == 720  # the --annotate panel height
    box = case.evidence["selfie_face"]["bounding_box"]
    h, w = panel.shape[:2]
    top, left, right = round(box["top"] * h), round(box["left"] * w), round((box["left"] + box["width"]) * w)
    edge = panel[top - 1:top + 2, left + 5:right - 5].reshape(-1, 3)
    assert (np.abs(edge - AMBER).max(axis=1) <= 20).mean() > 0.9  # the compared face's box: amber (REVIEW)
    # the second face of the selfie is boxed in grey
    other = case.evidence["other_faces"]["selfie"][0]
    x = round((other["left"] + other["width"] / 2) * w)
    column = panel[max(0, round(other["top"] * h) - 1):round(other["top"] * h) + 2, x]
    assert (np.abs(column - 150).max(axis=1) <= 10).any()
    face = console.get(f"/console/cases/{case.case_id}/face/selfie")
    zoom = Image.open(io.BytesIO(face.content))
    assert face.status_code == 200 and max(zoom.size) == 640
    assert console.get(f"/console/cases/{case.case_id}/image/passport").status_code == 404
    assert console.get("/console/cases/nope/image/selfie").status_code == 404
    # the document of the "back" case has no face: its picture is there, its zoom is not
    back = console.cases["back"].case_id
    assert console.get(f"/console/cases/{back}/image/document").status_code == 200
    assert console.get(f"/console/cases/{back}/face/document").status_code == 410


def test_after_retention_the_images_are_gone_and_the_record_stays(console):
    sign_in(console)
    case = console.cases["blair"]
    console.queue.decide(case.case_id, "NO_MATCH", "alice", "different people", 1)
    console.clock.now += 29 * 86400
    assert console.queue.purge() == []
    console.clock.now += 86400
    erased = console.queue.purge()
    sign_in(console)  # the earlier session idled out long ago
    assert erased == [console.cases[n].case_id for n in ("blair", "back", "impostor")]
    page = console.get(f"/console/cases/{case.case_id}")
    assert 'id="images-erased"' in page.text and "/image/selfie" not in page.text
    assert "different people" in page.text and "NO_MATCH" in page.text
    assert console.get(f"/console/cases/{case.case_id}/image/selfie").status_code == 410
    assert console.queue.store.get_image(case.case_id, "document") is None


def test_export_is_csv_of_every_case_with_its_decision(console):
    sign_in(console)
    console.queue.decide(console.cases["impostor"].case_id, "NO_MATCH", "alice", "=HYPERLINK(\"x\")", 1)
    response = console.get("/console/export.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment; filename="review-decisions-')
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["reference"] for r in rows] == ["blair", "back", "impostor"]
    impostor = rows[2]
    assert (impostor["status"], impostor["reviewed_by"], impostor["engine_decision"]) == ("NO_MATCH", "alice",
                                                                                          "NO_MATCH")
    assert impostor["comment"] == "'=HYPERLINK(\"x\")"  # a spreadsheet will not run it
    assert [r["status"] for r in rows[:2]] == ["OPEN", "OPEN"]
    only_decided = list(csv.DictReader(io.StringIO(console.get("/console/export.csv",
                                                               params={"status": "decided"}).text)))
    assert [r["reference"] for r in only_decided] == ["impostor"]
    assert console.queue.store.audit_log()[0].action == "EXPORT"


def test_the_audit_log_is_read_only_from_the_console(console):
    sign_in(console)
    page = console.get("/console/audit")
    assert page.status_code == 200 and page.text.count('data-action="CASE_QUEUED"') == 3
    for method in ("PUT", "DELETE", "POST", "PATCH"):
        assert console.request(method, "/console/audit").status_code == 405
    # no form but sign-out (and the help dialog's close button)
    assert re.findall(r"<form[^>]*>", page.text) == ['<form class="signout" method="post" action="/console/logout">',
                                                     '<form method="dialog">']


def test_the_service_erases_expired_images_by_itself_and_creates_no_store(tmp_path, verifier, pairs):
    import time

    url = f"sqlite:///{tmp_path / 'store.db'}"
    queue = ReviewQueue(open_review_store(url), 30)
    result, s, d = pairs["blair"]
    case, _ = queue.queue(result, verifier.recognizer.name, s, d, source="api")
    queue.store.close()
    time.sleep(1.0)
    config = ServerConfig(**CONFIG, collections_url=url, review_retention_days=0.5 / 86400)
    app = create_app(verifier.settings, config, verifier=verifier, s3=S3Reader())
    with TestClient(app, base_url=BASE):  # the lifespan's first sweep runs as the service starts
        deadline = time.time() + 20
        while app.state.pipeline._review is None or app.state.pipeline.review.store.get_image(case.case_id, "selfie"):
            assert time.time() < deadline, "the service did not erase the expired images"
            time.sleep(0.05)
        assert app.state.pipeline.review.store.get_case(case.case_id).images_erased_at is not None
    # a service whose store file does not exist yet does not create it for the sweep
    absent = tmp_path / "none.db"
    app = create_app(verifier.settings, ServerConfig(**CONFIG, collections_url=f"sqlite:///{absent}"),
                     verifier=verifier, s3=S3Reader())
    with TestClient(app, base_url=BASE) as client:
        assert client.get("/healthz").status_code == 200
        time.sleep(0.3)
    assert not absent.exists()


def test_the_console_on_postgresql(postgres_url, verifier, pairs):
    """The same console on the PostgreSQL engine: queue, sign in, decide, audit, export, retention."""
    clock = Clock()
    app = create_app(verifier.settings, ServerConfig(**CONFIG, collections_url=postgres_url),
                     verifier=verifier, s3=S3Reader())
    queue = ReviewQueue(open_review_store(postgres_url), 30, clock)
    app.state.pipeline._review = queue
    queue.add_reviewer("alice", PASSWORD)
    result, s, d = pairs["blair"]
    case, _ = queue.queue(result, verifier.recognizer.name, s, d, source="api", batch="pg", reference="blair")
    try:
        with TestClient(app, base_url=BASE, follow_redirects=False) as client:
            assert sign_in(client).status_code == 303
            page = client.get(f"/console/cases/{case.case_id}")
            assert page.status_code == 200 and 'data-version="1"' in page.text
            assert client.get(f"/console/cases/{case.case_id}/image/document").status_code == 200
            done = client.post(f"/console/cases/{case.case_id}/decision",
                               data={"csrf": csrf_of(page), "version": "1", "action": "NO_MATCH",
                                     "comment": "different nose and hairline"})
            assert done.status_code == 303 and done.headers["location"].startswith("/console/queue?")
            audit = client.get("/console/audit", params={"case": case.case_id})
            assert re.findall(r'data-action="([A-Z_]+)"', audit.text) == ["NO_MATCH", "CASE_QUEUED"]
            rows = list(csv.DictReader(io.StringIO(client.get("/console/export.csv").text)))
            assert [(r["reference"], r["status"], r["reviewed_by"]) for r in rows] == [("blair", "NO_MATCH", "alice")]
            clock.now += 30 * 86400 + 1
            assert queue.purge() == [case.case_id]
            assert sign_in(client).status_code == 303
            assert client.get(f"/console/cases/{case.case_id}/image/document").status_code == 410
    finally:
        queue.store.close()


def test_behind_a_proxy_that_rewrites_host_the_operator_names_the_origin(console):
    """A proxy that sends its upstream's name as Host (nginx's default) would make every form look foreign: with
    FACECOMPARE_CONSOLE_ORIGINS the console's public origin is named, and only it is accepted."""

    def attempt(origin: str) -> int:
        token = csrf_of(console.get("/console/login"))  # a fresh sign-in token each time (a refusal renews it)
        return console.post("/console/login", data={"csrf": token, "username": "alice", "password": PASSWORD},
                            headers={"origin": origin, "host": "127.0.0.1:8080"}).status_code

    assert attempt("https://review.example.com") == 403  # not the Host the proxy sent
    assert attempt("http://127.0.0.1:8080") == 303  # without the setting, the Host is the console's origin
    console.cookies.clear()
    console.app.state.pipeline.config.console_origins = frozenset({"https://review.example.com"})
    assert attempt("https://evil.test") == 403
    assert attempt("http://review.example.com") == 403  # the scheme is part of the origin
    assert attempt("http://127.0.0.1:8080") == 403  # with the setting, only the origins it names
    assert attempt("https://review.example.com") == 303


@pytest.mark.parametrize("value, expected", [
    ("", frozenset()),
    ("https://review.example.com", frozenset({"https://review.example.com"})),
    (" https://A.example:8443 , http://localhost:8080 ", frozenset({"https://a.example:8443", "http://localhost:8080"})),
])
def test_console_origins_setting(value, expected):
    assert ServerConfig.from_env({"FACECOMPARE_CONSOLE_ORIGINS": value}).console_origins == expected


@pytest.mark.parametrize("value", ["review.example.com", "https://review.example.com/console", "ftp://x", "https://"])
def test_console_origins_setting_refuses_what_is_not_an_origin(value):
    with pytest.raises(ConfigurationError, match="FACECOMPARE_CONSOLE_ORIGINS"):
        ServerConfig.from_env({"FACECOMPARE_CONSOLE_ORIGINS": value})
