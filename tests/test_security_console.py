"""The reviewer console under abuse (issue 22): nothing a request says is echoed into a page, numbers in query
strings are bounded (400, never 500), CSRF tokens of any text are compared without a crash, the queue's pager
leads where its links say, and sign-out needs the session's CSRF token.

These tests build a console on a fresh SQLite store without loading any model: cases are queued from real fixture
images with hand-written verification results (what the REST API's ``queue_review`` stores)."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from facecompare.review.service import ReviewQueue
from facecompare.review.store import open_review_store
from facecompare.server.app import create_app
from facecompare.server.config import ServerConfig
from facecompare.settings import Settings
from facecompare.storage import S3Reader
from fake_clock import Clock

PASSWORD = "correct horse battery staple"
BASE = "https://console.test"


def review_result(similarity: float = 60.0) -> dict:
    return {"decision": "REVIEW", "similarity": similarity, "distance": 0.5, "threshold": 60.0,
            "review_band": [50.0, 70.0], "reasons": ["SIMILARITY_IN_REVIEW_BAND"]}


def make_console(tmp_path, fixtures, cases: int = 3, **config):
    clock = Clock()
    url = f"sqlite:///{tmp_path / 'store.db'}"
    app = create_app(Settings(), ServerConfig(auth=False, warm=False, collections_url=url,
                                              allowed_hosts=frozenset({"console.test"}),
                                              **config), s3=S3Reader())
    queue = ReviewQueue(open_review_store(url), 30, clock)
    app.state.pipeline._review = queue
    queue.add_reviewer("alice", PASSWORD)
    queue.add_reviewer("bob", PASSWORD)
    selfie, document = (fixtures / "obama.jpg").read_bytes(), (fixtures / "biden.jpg").read_bytes()
    queued = []
    for i in range(cases):
        case, _ = queue.queue(review_result(), "sface", selfie, document, source="api", batch="b", reference=f"r{i}")
        queued.append(case)
        clock.now += 1
    return app, queue, clock, queued


@pytest.fixture
def console(tmp_path, fixtures):
    app, queue, clock, queued = make_console(tmp_path, fixtures)
    with TestClient(app, base_url=BASE, follow_redirects=False) as client:
        client.queue, client.clock, client.cases = queue, clock, queued
        yield client
    queue.store.close()


def csrf_of(page) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def sign_in(client, username="alice", password=PASSWORD):
    page = client.get("/console/login")
    return client.post("/console/login", data={"csrf": csrf_of(page), "username": username, "password": password,
                                               "next": "/console/queue"})


INJECTED = "Session expired: sign in again at https://evil.example"


def test_done_is_not_echoed_into_the_queue_or_a_case(console):
    sign_in(console)
    case = console.cases[0]
    for path in ("/console/queue", f"/console/cases/{case.case_id}"):
        page = console.get(path, params={"done": INJECTED})
        assert page.status_code == 200, path
        assert "evil.example" not in page.text and "Session expired" not in page.text, path
        assert 'id="done"' not in page.text, path
    # what the decision's redirect says is still shown, from the store: the case's real status and id
    page = console.get(f"/console/cases/{case.case_id}")
    form = {"csrf": csrf_of(page), "version": str(case.version), "action": "NO_MATCH", "comment": "other chin"}
    done = console.post(f"/console/cases/{case.case_id}/decision", data=form)
    assert done.status_code == 303
    shown = console.get(done.headers["location"])
    assert re.search(rf'id="done"[^>]*>Decided: NO_MATCH {case.case_id}<', shown.text)
    # a real case id with a status it does not have is not shown either (the page says what the store says)
    lie = console.get("/console/queue", params={"done": f"MATCH {case.case_id}"})
    assert 'id="done"' not in lie.text


@pytest.mark.parametrize("params", [{"offset": "1e20"}, {"offset": "99999999999999999999999"}, {"offset": "-5"},
                                    {"offset": "１２"}, {"offset": "nan"}])
def test_queue_offset_is_validated_and_bounded(console, params):
    sign_in(console)
    response = console.get("/console/queue", params=params)
    assert response.status_code == 400, response.text[:200]
    assert "offset" in response.text


@pytest.mark.parametrize("before", ["1e20", "99999999999999999999999", "-1", "x"])
def test_audit_before_is_validated_and_bounded(console, before):
    sign_in(console)
    response = console.get("/console/audit", params={"before": before})
    assert response.status_code == 400, response.text[:200]
    assert "before" in response.text


def test_a_large_but_valid_offset_is_an_empty_page(console):
    sign_in(console)
    response = console.get("/console/queue", params={"offset": "1000000"})
    assert response.status_code == 200


@pytest.mark.parametrize("token", ["é" * 32, "\u202e", "ß"])
def test_non_ascii_csrf_tokens_are_refused_not_a_500(console, token):
    # the sign-in form (double submit), a decision and sign-out
    page = console.get("/console/login")
    response = console.post("/console/login", data={"csrf": token, "username": "alice", "password": PASSWORD})
    assert response.status_code == 403
    assert sign_in(console).status_code == 303
    case = console.cases[0]
    response = console.post(f"/console/cases/{case.case_id}/decision",
                            data={"csrf": token, "version": "1", "action": "MATCH", "comment": "x"})
    assert response.status_code == 403
    assert console.queue.store.get_case(case.case_id).status == "OPEN"
    response = console.post("/console/logout", data={"csrf": token})
    assert response.status_code == 403
    assert console.get("/console/queue").status_code == 200  # still signed in: a wrong token signs nobody out
    del page


def test_sign_out_needs_the_session_csrf_token(console):
    sign_in(console)
    page = console.get("/console/queue")
    assert console.post("/console/logout", data={"csrf": "wrong"}).status_code == 403
    assert console.get("/console/queue").status_code == 200  # a forged sign-out (no token) ends nothing
    assert "SIGN_OUT" not in [e.action for e in console.queue.store.audit_log()]
    assert console.post("/console/logout", data={"csrf": csrf_of(page)},
                        headers={"origin": "https://evil.test"}).status_code == 403
    assert console.get("/console/queue").status_code == 200  # another site cannot sign a reviewer out
    assert console.post("/console/logout", data={"csrf": csrf_of(page)}).status_code == 303
    assert console.get("/console/queue").status_code == 303
    assert "SIGN_OUT" in [e.action for e in console.queue.store.audit_log()]


def test_queue_pages_beyond_the_first_hundred_and_its_links(tmp_path, fixtures):
    app, queue, clock, cases = make_console(tmp_path, fixtures, cases=230)
    with TestClient(app, base_url=BASE, follow_redirects=False) as client:
        sign_in(client)
        ids = [case.case_id for case in cases]  # oldest first: the queue's order

        def listed(page):
            return re.findall(r'<tr data-case="([0-9a-f-]{36})"', page.text)

        first = client.get("/console/queue")
        assert listed(first) == ids[:100]
        pager = first.text.split('class="pager"')[1].split("</p>")[0]
        links = dict((label.strip(), href) for href, label in re.findall(r'<a href="([^"]+)">([^<]+)</a>', pager))
        assert len(links) == 1
        (label, href), = links.items()
        assert "next" in label.lower()
        second = client.get(href.replace("&amp;", "&"))
        assert listed(second) == ids[100:200]
        third_href = re.findall(r'<a href="([^"]+)">[^<]*next[^<]*</a>', second.text)[0].replace("&amp;", "&")
        third = client.get(third_href)
        assert listed(third) == ids[200:230]
        assert not re.findall(r'<a href="[^"]+">[^<]*next[^<]*</a>', third.text)
        # the link back leads to the page before (the cases queued earlier) and says so
        pager = third.text.split('class="pager"')[1].split("</p>")[0]
        back = [(href, label) for href, label in re.findall(r'<a href="([^"]+)">([^<]+)</a>', pager)
                if "next" not in label]
        assert len(back) == 1
        href, label = back[0]
        assert "newer" not in label.lower() and "earlier" in label.lower()
        assert listed(client.get(href.replace("&amp;", "&"))) == ids[100:200]
    queue.store.close()
    app.state.pipeline.close()


def test_an_escalated_case_is_decided_by_another_reviewer(console):
    """The README's rule for ESCALATE: someone else decides the case (the one who escalated it cannot)."""
    case = console.cases[0]
    escalated = console.queue.decide(case.case_id, "ESCALATE", "alice", "two people in the selfie", case.version)
    sign_in(console)  # alice
    page = console.get(f"/console/cases/{case.case_id}")
    form = {"csrf": csrf_of(page), "version": str(escalated.version), "action": "MATCH", "comment": "it is her"}
    refused = console.post(f"/console/cases/{case.case_id}/decision", data=form)
    assert refused.status_code == 409 and "another reviewer must decide it" in refused.text
    assert console.queue.store.get_case(case.case_id).status == "ESCALATED"
    decided = console.queue.decide(case.case_id, "MATCH", "bob", "same ears", escalated.version)
    assert (decided.status, decided.reviewed_by) == ("MATCH", "bob")
