"""The reviewer console (/console) driven by a real browser: Debian's Chromium through Playwright, against a real
``facecompare serve`` child whose review queue was filled by the real ``facecompare batch --queue-review``.

The tests share one queue and run in file order: sign-in, the case page (images, the drawn box, the evidence),
zoom, a keyboard decision, a second reviewer, two reviewers on one case, CSRF, deciding everything, retention.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import FIXTURES, ServeProcess, skip_or_fail

ACCESS, SECRET = "AKIDCONSOLEBROWSER", "console-browser-secret"
REVIEWERS = {"alice": "alice-password-1", "bob": "bob-password-22"}
#: a row id (the case's reference) that is markup and a spreadsheet formula: shown as text, exported quoted
HOSTILE = '=HYPERLINK("http://evil.example")<b id="injected">x</b>'
ROWS = {  # id -> (selfie, document); --queue-no-match queues the NO_MATCH rows too
    "blair-multi": ("Tony_Blair_0001.jpg", "Colin_Powell_0001.jpg"),  # REVIEW: MULTIPLE_FACES_IN_SELFIE
    "serena-back": ("Serena_Williams_0001.jpg", "id_back_mrz_only_che.jpg"),  # REVIEW: NO_FACE_ON_DOCUMENT
    "two-people": ("two_people.jpg", "obama.jpg"),  # REVIEW: MULTIPLE_FACES_IN_SELFIE
    "obama-biden": ("obama.jpg", "biden.jpg"),  # NO_MATCH
    "blair-serena": ("Tony_Blair_0001.jpg", "Serena_Williams_0002.jpg"),  # REVIEW or NO_MATCH
    "powell-obama": ("Colin_Powell_0002.jpg", "obama.jpg"),  # NO_MATCH
    "powell-same": ("Colin_Powell_0001.jpg", "Colin_Powell_0002.jpg"),  # MATCH: not queued
    HOSTILE: ("obama.jpg", "Serena_Williams_0002.jpg"),  # NO_MATCH
}
AMBER = (255, 170, 0)


def _cli(env: dict, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "facecompare.cli", *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, f"facecompare {' '.join(args)}: {done.returncode} {done.stdout} {done.stderr}"
    return done


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The queue: a batch run with --queue-review --queue-no-match into a SQLite store, and two reviewers."""
    import facecompare

    root = tmp_path_factory.mktemp("console-browser")
    db = root / "review.db"
    src = str(Path(facecompare.__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "FACECOMPARE_REVIEW_RETENTION_DAYS")}
    env.update(FACECOMPARE_COLLECTIONS=f"sqlite:///{db}",
               PYTHONPATH=os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "selfie", "document"])
        for row_id, (selfie, document) in ROWS.items():
            writer.writerow([row_id, FIXTURES / selfie, FIXTURES / document])
    out = root / "out"
    _cli(env, "batch", str(manifest), "--out", str(out), "--queue-review", "--queue-no-match", "--workers", "1",
         "--no-progress")
    results = {r["id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    queued = {k for k, r in results.items() if r["decision"] in ("REVIEW", "NO_MATCH")}
    assert {"blair-multi", "serena-back", "two-people", "obama-biden", HOSTILE} <= queued
    assert results["blair-multi"]["reasons"] == ["MULTIPLE_FACES_IN_SELFIE"]
    for name, password in REVIEWERS.items():
        _cli(env, "reviewer", "add", name, "--password-stdin", stdin=password + "\n")
    from facecompare.review.service import open_queue

    queue = open_queue(f"sqlite:///{db}", environ={})
    try:
        cases = {c.reference: c.case_id for c in queue.store.iter_cases(queue.case_filter("all"))}
    finally:
        queue.store.close()
    assert set(cases) == queued  # one case per REVIEW / NO_MATCH row, none for the MATCH row
    return {"root": root, "db": f"sqlite:///{db}", "env": env, "results": results, "cases": cases}


@pytest.fixture(scope="module")
def server(data):
    running = ServeProcess(data["root"], access=ACCESS, secret=SECRET, api_key_name="console", api_key="console-key",
                           env={"FACECOMPARE_COLLECTIONS": data["db"]})
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("Playwright is not installed (pip install -e '.[test]')")
    executable = shutil.which("chromium")
    if executable is None:
        skip_or_fail("Chromium is not installed (apt-get install chromium; .ci/run does this)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def _case(data, reference: str):
    """The case of a batch row as the store has it now (read outside the server)."""
    from facecompare.review.service import open_queue

    queue = open_queue(data["db"], environ={})
    try:
        return queue.store.get_case(data["cases"][reference])
    finally:
        queue.store.close()


def _audit(data, reference: str) -> list:
    from facecompare.review.service import open_queue

    queue = open_queue(data["db"], environ={})
    try:
        return queue.store.audit_log(case_id=data["cases"][reference])
    finally:
        queue.store.close()


def _signed_in(browser, server, name: str):
    context = browser.new_context(base_url=server.url, viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto("/console/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", REVIEWERS[name])
    with page.expect_navigation():
        page.click("button[type=submit].primary")
    assert urlsplit(page.url).path == "/console/queue", page.url
    return context, page


@pytest.fixture(scope="module")
def alice(browser, server):
    context, page = _signed_in(browser, server, "alice")
    yield page
    context.close()


def _case_url(data, reference: str) -> str:
    return f"/console/cases/{data['cases'][reference]}"


def _rows(page) -> list[str]:
    return page.locator("#cases tbody tr").evaluate_all("rows => rows.map(r => r.dataset.case)")


def _open_ids(page) -> set[str]:
    page.goto("/console/queue")
    return set(_rows(page))


def _form(page) -> dict:
    return {"csrf": page.locator("#decision-form input[name=csrf]").input_value(),
            "version": page.locator("#decision-form input[name=version]").input_value()}


def _decide_with_keys(page, key: str, comment: str) -> None:
    page.keyboard.press(key)
    assert page.evaluate("document.activeElement.id") == "comment"
    page.keyboard.type(comment)
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")


# -- 1. sign-in --------------------------------------------------------------------------------------------------

def test_sign_in_and_session_cookie(browser, server, data):
    context = browser.new_context(base_url=server.url)
    try:
        page = context.new_page()
        page.goto("/console/queue")
        assert urlsplit(page.url).path == "/console/login"
        assert urlsplit(page.url).query == "next=%2Fconsole%2Fqueue"
        assert page.locator("#login-error").count() == 0

        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", "not-alice-password")
        with page.expect_navigation() as navigation:
            page.click("button[type=submit].primary")
        assert navigation.value.status == 401
        assert "Wrong name or password" in page.locator("#login-error").inner_text()
        assert "facecompare_console" not in {c["name"] for c in context.cookies()}
        assert page.locator("#reviewer").count() == 0

        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", REVIEWERS["alice"])
        with page.expect_navigation():
            page.click("button[type=submit].primary")
        assert urlsplit(page.url).path == "/console/queue"
        assert page.locator("#reviewer").inner_text() == "alice"
        assert sorted(_rows(page)) == sorted(data["cases"].values())  # every queued case, all open
        cookies = {c["name"]: c for c in context.cookies()}
        session = cookies["facecompare_console"]
        assert (session["httpOnly"], session["sameSite"], session["secure"], session["path"]) == (
            True, "Strict", True, "/console")
        assert len(session["value"]) >= 40
        assert "facecompare_console_login" not in cookies  # the sign-in form's token is spent
        # HttpOnly: the page's own script cannot read it
        assert "facecompare_console" not in page.evaluate("document.cookie")
        # a reference is text, never markup
        hostile = page.locator(f"#cases tr[data-case='{data['cases'][HOSTILE]}'] td").nth(3)
        assert hostile.inner_text() == HOSTILE
        assert page.locator("#injected").count() == 0

        # signing out ends the session on the server: the same cookie, sent from elsewhere, works before and is
        # refused after
        replay = browser.new_context(base_url=server.url)
        try:
            replay.add_cookies([{k: session[k] for k in ("name", "value", "domain", "path", "httpOnly", "secure",
                                                         "sameSite")}])
            assert replay.request.get("/console/queue", max_redirects=0).status == 200
            with page.expect_navigation():
                page.click("form.signout button[type=submit]")
            assert urlsplit(page.url).path == "/console/login"
            assert "facecompare_console" not in {c["name"] for c in context.cookies()}
            refused = replay.request.get("/console/queue", max_redirects=0)
            assert (refused.status, refused.headers["location"]) == (303, "/console/login?next=%2Fconsole%2Fqueue")
        finally:
            replay.close()
    finally:
        context.close()


# -- 2. a case page ----------------------------------------------------------------------------------------------

PIXELS_ALONG_TOP = """async ([selector, box]) => {
  const img = document.querySelector(selector);
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const w = canvas.width, h = canvas.height;
  const x1 = Math.round(box.left * w), x2 = Math.round((box.left + box.width) * w);
  const y = Math.round(box.top * h) + 1;  // inside the outline (2 px or more thick)
  const pixels = ctx.getImageData(x1, y, x2 - x1, 1).data;
  const row = [];
  for (let i = 0; i < pixels.length; i += 4) { row.push([pixels[i], pixels[i + 1], pixels[i + 2]]); }
  // and a row through the middle of the face, where no outline is
  const mid = ctx.getImageData(x1 + 4, Math.round((box.top + box.height / 2) * h), x2 - x1 - 8, 1).data;
  const middle = [];
  for (let i = 0; i < mid.length; i += 4) { middle.push([mid[i], mid[i + 1], mid[i + 2]]); }
  return {row: row, middle: middle, w: w, h: h};
}"""


def _amber(pixel) -> bool:
    return all(abs(a - b) <= 20 for a, b in zip(pixel, AMBER))


def test_case_page_images_box_and_evidence(alice, data):
    row = data["results"]["blair-multi"]
    page = alice
    page.goto(_case_url(data, "blair-multi"))
    assert page.locator("#case-id").get_attribute("data-case") == data["cases"]["blair-multi"]
    assert page.locator("#case-status").inner_text() == "OPEN"
    assert "reference blair-multi" in page.locator(".meta").inner_text()
    for role in ("selfie", "document"):
        img = page.locator(f"#{role}-image")
        img.evaluate("img => img.decode()")
        assert img.evaluate("img => img.complete && img.naturalWidth") > 0
        face = row[f"{role}_face"]
        box = page.locator(f"#{role}-box")
        assert float(box.get_attribute("data-left")) == pytest.approx(face["bounding_box"]["left"])
        outer = img.evaluate("e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }")
        inner = box.evaluate("e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }")
        width, height = outer[2] - outer[0], outer[3] - outer[1]
        assert width > 100 and height > 100
        assert outer[0] - 1 <= inner[0] < inner[2] <= outer[2] + 1 and outer[1] - 1 <= inner[1] < inner[3] <= outer[3] + 1
        # the overlay sits where the evidence says the face is
        ratio = face["bounding_box"]
        assert inner[0] - outer[0] == pytest.approx(ratio["left"] * width, abs=2)
        assert inner[1] - outer[1] == pytest.approx(ratio["top"] * height, abs=2)
        assert inner[2] - inner[0] == pytest.approx(ratio["width"] * width, abs=2)
        # the box is drawn into the picture in the review colour along its top edge, not through the face
        pixels = page.evaluate(PIXELS_ALONG_TOP, [f"#{role}-image", ratio])
        along = sum(map(_amber, pixels["row"])) / len(pixels["row"])
        assert along > 0.9, (role, along, pixels["row"][:5])
        assert sum(map(_amber, pixels["middle"])) / len(pixels["middle"]) < 0.1

    # the evidence on the page is the batch's for that row
    assert page.locator("#similarity").inner_text() == f"{row['similarity']:.2f}"
    evidence = page.locator(".evidence").inner_text()
    assert f"threshold {row['threshold']:.1f}" in evidence
    assert f"review band {row['review_band'][0]:.1f} to {row['review_band'][1]:.1f}" in evidence
    assert page.locator("#reasons code").all_inner_texts() == row["reasons"]

    def cells(label: str) -> list[str]:
        return page.locator(".faces tbody tr", has=page.locator(f"th:text-is('{label}')")).locator(
            "td").all_inner_texts()

    assert cells("Faces found") == [str(row["selfie_faces"]), str(row["document_faces"])]
    assert cells("Detector confidence") == [f"{row[f'{r}_face']['confidence']:.1f} %" for r in ("selfie", "document")]
    assert cells("Pose (roll / yaw / pitch)") == [
        " / ".join(f"{row[f'{r}_face']['pose'][k]:.0f}°" for k in ("roll", "yaw", "pitch"))
        for r in ("selfie", "document")]
    assert cells("Face width") == [f"{row[f'{r}_face']['width_px']:.0f} px" for r in ("selfie", "document")]


# -- 3. zoom (and moving with j / k) ----------------------------------------------------------------------------

def test_zoom_with_z(alice, data):
    page = alice
    page.goto(_case_url(data, "blair-multi"))
    zooms = page.locator(".zoom img")
    assert zooms.count() == 2
    assert not page.locator(".zoom").first.is_visible()
    page.keyboard.press("z")
    for i in range(2):
        zoom = zooms.nth(i)
        zoom.wait_for(state="visible")
        zoom.evaluate("img => img.decode()")
        assert zoom.evaluate("img => img.naturalWidth") > 0
        assert zoom.get_attribute("src").endswith(("/face/selfie", "/face/document"))
    page.keyboard.press("z")
    assert not page.locator(".zoom").first.is_visible()
    # j / k: the next case of the queue and back
    here, following = page.url, page.locator("#next-case").get_attribute("href")
    assert following.startswith("/console/cases/") and data["cases"]["blair-multi"] not in following
    with page.expect_navigation():
        page.keyboard.press("j")
    assert page.url == urlsplit(here)._replace(path="", query="").geturl() + following
    with page.expect_navigation():
        page.keyboard.press("k")
    assert urlsplit(page.url).path == urlsplit(here).path


# -- 4. a decision with the keyboard ----------------------------------------------------------------------------

def test_decide_with_keyboard(alice, data):
    page = alice
    case_id = data["cases"]["blair-multi"]
    assert case_id in _open_ids(page)
    page.goto(_case_url(data, "blair-multi"))
    _decide_with_keys(page, "m", "same ears and hairline; the second face is a bystander")
    assert urlsplit(page.url).path.startswith(("/console/cases/", "/console/queue"))
    assert urlsplit(page.url).path != f"/console/cases/{case_id}"
    assert page.locator("#done").inner_text() == f"Decided: MATCH {case_id}"
    assert case_id not in _open_ids(page)
    page.goto(f"/console/audit?case={case_id}")
    rows = page.locator("#audit tbody tr[data-action=MATCH]")
    assert rows.count() == 1
    cells = rows.locator("td").all_inner_texts()
    assert cells[2:4] == ["alice", "MATCH"]
    assert cells[5:8] == ["OPEN", "MATCH", "same ears and hairline; the second face is a bystander"]
    stored = _case(data, "blair-multi")
    assert (stored.status, stored.reviewed_by) == ("MATCH", "alice")

    # no decision without a comment: the browser does not send the form ...
    page.goto(_case_url(data, "two-people"))
    url = page.url
    page.keyboard.press("n")
    page.keyboard.press("Control+Enter")
    page.wait_for_timeout(500)
    assert page.url == url
    assert page.locator("#comment").evaluate("e => e.validity.valueMissing")
    # ... and the server refuses one sent without a comment (or with only blanks)
    form = _form(page)
    for comment in (None, "   "):
        fields = {**form, "action": "NO_MATCH", **({} if comment is None else {"comment": comment})}
        answer = page.request.post(f"/console/cases/{data['cases']['two-people']}/decision", form=fields)
        assert answer.status == 400
        assert "A comment is required" in answer.text()
    assert _case(data, "two-people").status == "OPEN"


# -- 5. no session; a second reviewer ---------------------------------------------------------------------------

def test_second_reviewer(browser, server, alice, data):
    case_id = data["cases"]["two-people"]
    stranger = browser.new_context(base_url=server.url)
    try:
        page = stranger.new_page()
        page.goto(_case_url(data, "two-people"))
        assert urlsplit(page.url).path == "/console/login"
        assert page.locator("#case-id").count() == 0
        assert page.request.get(f"/console/cases/{case_id}/image/selfie").status == 403
        assert page.request.get(f"/console/cases/{case_id}/face/document").status == 403
        before = _case(data, "two-people")
        answer = page.request.post(f"/console/cases/{case_id}/decision",
                                   form={"action": "MATCH", "comment": "no session", "version": str(before.version),
                                         "csrf": "x"})
        assert answer.status == 403
        from facecompare.review.service import open_queue

        queue = open_queue(data["db"], environ={})
        try:
            still = {c.case_id: c for c in queue.store.iter_cases(queue.case_filter("open"))}
        finally:
            queue.store.close()
        assert still[case_id].status == "OPEN" and still[case_id].version == before.version

        # alice escalates two-people; bob signs in on the page the stranger was sent to, lands on the case, sees
        # it escalated by her, and decides it
        alice.goto(_case_url(data, "two-people"))
        _decide_with_keys(alice, "e", "the applicant may be the woman on the left")
        assert alice.locator("#done").inner_text() == f"Decided: ESCALATED {case_id}"
        page.fill("input[name=username]", "bob")
        page.fill("input[name=password]", REVIEWERS["bob"])
        with page.expect_navigation():
            page.click("button[type=submit].primary")
        assert urlsplit(page.url).path == _case_url(data, "two-people")
        assert page.locator("#reviewer").inner_text() == "bob"
        assert page.locator("#case-status").inner_text() == "ESCALATED"
        assert "Escalated by alice: “the applicant may be the woman on the left”" in page.locator(".decision").inner_text()
        assert page.locator("#decision-form button[value=ESCALATE]").count() == 0
        bob = page
        _decide_with_keys(bob, "n", "different nose and chin")
        assert bob.locator("#done").inner_text() == f"Decided: NO_MATCH {case_id}"
        # the case the first reviewer decided, with her name
        bob.goto(_case_url(data, "blair-multi"))
        assert bob.locator("#case-status").inner_text() == "MATCH"
        assert bob.locator("#decision-form").count() == 0
        assert "by alice" in bob.locator(".decision").inner_text()
        bob.goto(_case_url(data, "two-people"))
        history = [r.locator("td").all_inner_texts()[1:6] for r in bob.locator("#case-audit tbody tr").all()]
        decisions = [h for h in history if h[1] in ("ESCALATE", "NO_MATCH", "MATCH")]
        assert decisions == [["bob", "NO_MATCH", "ESCALATED", "NO_MATCH", "different nose and chin"],
                             ["alice", "ESCALATE", "OPEN", "ESCALATED", "the applicant may be the woman on the left"]]
    finally:
        stranger.close()
    stored = _case(data, "two-people")
    assert (stored.status, stored.reviewed_by) == ("NO_MATCH", "bob")


# -- 6. two reviewers on one case -------------------------------------------------------------------------------

def test_concurrent_decisions(browser, server, alice, data):
    case_id = data["cases"]["serena-back"]
    context, bob = _signed_in(browser, server, "bob")
    try:
        alice.goto(_case_url(data, "serena-back"))
        bob.goto(_case_url(data, "serena-back"))
        _decide_with_keys(alice, "n", "the document shows no face at all")
        assert alice.locator("#done").inner_text() == f"Decided: NO_MATCH {case_id}"
        bob.keyboard.press("m")
        bob.keyboard.type("looks like her")
        with bob.expect_navigation() as navigation:
            bob.keyboard.press("Control+Enter")
        assert navigation.value.status == 409
        assert bob.locator("#case-error").inner_text() == "This case was already decided (NO_MATCH) by alice."
        assert bob.locator("#case-status").inner_text() == "NO_MATCH"
    finally:
        context.close()
    decisions = [e for e in _audit(data, "serena-back") if e.action in ("MATCH", "NO_MATCH", "ESCALATE")]
    assert [(e.actor, e.action) for e in decisions] == [("alice", "NO_MATCH")]
    assert _case(data, "serena-back").reviewed_by == "alice"


def test_stale_version_is_a_conflict(browser, server, alice, data):
    """The second reviewer escalates on a version the first one has changed: refused with the conflict message.
    (bob escalates: alice, who did not, decides the case in the CSRF test below; who escalates cannot decide.)"""
    context, bob = _signed_in(browser, server, "bob")
    try:
        alice.goto(_case_url(data, "obama-biden"))
        bob.goto(_case_url(data, "obama-biden"))
        _decide_with_keys(bob, "e", "check the date of birth")
        alice.keyboard.press("e")
        alice.keyboard.type("escalating too")
        with alice.expect_navigation() as navigation:
            alice.keyboard.press("Control+Enter")
        assert navigation.value.status == 409
        assert alice.locator("#case-error").inner_text().startswith("This case changed while you were looking at it")
        assert alice.locator("#case-status").inner_text() == "ESCALATED"
    finally:
        context.close()
    assert [(e.actor, e.action) for e in _audit(data, "obama-biden") if e.action == "ESCALATE"] == [
        ("bob", "ESCALATE")]
    assert _case(data, "obama-biden").status == "ESCALATED"


# -- 9. CSRF and Origin -----------------------------------------------------------------------------------------

def test_csrf_and_origin(alice, data):
    page = alice
    page.goto(_case_url(data, "obama-biden"))
    form = _form(page)
    url = f"/console/cases/{data['cases']['obama-biden']}/decision"
    before = _case(data, "obama-biden")
    audit = len(_audit(data, "obama-biden"))
    fields = {**form, "action": "MATCH", "comment": "forged"}
    wrong = page.request.post(url, form={**fields, "csrf": form["csrf"][:-2] + "xx"})
    assert wrong.status == 403
    evil = page.request.post(url, form=fields, headers={"Origin": "http://evil.example"})
    assert evil.status == 403
    referer = page.request.post(url, form=fields, headers={"Referer": "http://evil.example/page"})
    assert referer.status == 403
    null = page.request.post(url, form=fields, headers={"Origin": "null"})
    assert null.status == 403
    after = _case(data, "obama-biden")
    assert (after.status, after.version, after.reviewed_by) == (before.status, before.version, before.reviewed_by)
    assert len(_audit(data, "obama-biden")) == audit
    # the same fields from the console's own origin are accepted (the refusals above were for the csrf / origin)
    ok = page.request.post(url, form={**fields, "comment": "same person, older photo"},
                           headers={"Origin": urlsplit(page.url)._replace(path="", query="").geturl()},
                           max_redirects=0)
    assert ok.status == 303
    assert _case(data, "obama-biden").status == "MATCH"


# -- 7. everything decided --------------------------------------------------------------------------------------

def test_decide_everything(alice, data):
    page = alice
    page.goto("/console/queue")
    decided = 0
    for _ in range(len(data["cases"]) + 2):
        if urlsplit(page.url).path == "/console/queue":
            if page.locator("#queue-empty").count():
                break
            with page.expect_navigation():
                page.locator("#cases tbody tr a").first.click()
        assert page.locator("#case-status").inner_text() == "OPEN"
        _decide_with_keys(page, "n" if decided % 2 else "m", f"decision {decided}")
        decided += 1
    assert page.locator("#queue-empty").is_visible()
    assert page.locator("#queue-count").inner_text() == "0"
    assert decided == len(data["cases"]) - 4  # the four decided by the tests above
    answer = page.request.get("/console/export.csv")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text())))
    # the hostile reference cannot start a formula in a spreadsheet; the others are as they were
    assert sorted(r["reference"] for r in rows) == sorted("'" + k if k == HOSTILE else k for k in data["cases"])
    assert all(r["status"] in ("MATCH", "NO_MATCH") and r["reviewed_by"] in REVIEWERS and r["comment"] for r in rows)
    by_reference = {r["reference"]: r for r in rows}
    assert (by_reference["blair-multi"]["status"], by_reference["blair-multi"]["reviewed_by"]) == ("MATCH", "alice")
    assert (by_reference["two-people"]["status"], by_reference["two-people"]["reviewed_by"]) == ("NO_MATCH", "bob")
    model = data["results"]["blair-multi"]["model"]
    page.goto("/console/queue")
    counts = page.locator(f"#model-counts tr[data-model='{model}'] td").all_inner_texts()
    assert counts == [model, str(sum(r["status"] == "MATCH" for r in rows)),
                      str(sum(r["status"] == "NO_MATCH" for r in rows)), "0", "0"]


# -- 8. retention -----------------------------------------------------------------------------------------------

def test_retention_erases_images_keeps_decisions(alice, data):
    case_id = data["cases"]["blair-multi"]
    page = alice
    assert page.request.get(f"/console/cases/{case_id}/image/selfie").status == 200
    newest = max(_case(data, reference).created_at for reference in data["cases"])
    time.sleep(max(0.0, newest + 1.0 - time.time()))  # every case is older than 0.00001 days (0.86 s)
    done = _cli({**data["env"], "FACECOMPARE_REVIEW_RETENTION_DAYS": "0.00001"}, "review", "purge")
    assert done.stdout.startswith(f"Erased the images of {len(data['cases'])} cases")
    page.goto(_case_url(data, "blair-multi"))
    assert page.locator("#images-erased").is_visible()
    assert page.locator("img").count() == 0
    assert page.locator(".frame.erased").count() == 2
    for path in ("image/selfie", "image/document", "face/selfie"):
        assert page.request.get(f"/console/cases/{case_id}/{path}").status == 410
    assert page.locator("#case-status").inner_text() == "MATCH"
    decision = page.locator(".decision").inner_text()
    assert "by alice" in decision and "same ears and hairline; the second face is a bystander" in decision
    erased = [e for e in _audit(data, "blair-multi") if e.action == "IMAGES_ERASED"]
    assert len(erased) == 1
