"""Console sign-in under abuse (issue 22): password checks are bounded (a 429 before hashing), every attempt is
counted before its password is checked (concurrent guesses cannot pass the limit), budgets are per client as well as
per name (one client cannot lock a reviewer out), the audit log grows by a bounded number of rows per client and no
typed name becomes an actor of the service itself, and the connection cap covers /console."""

from __future__ import annotations

import re
import threading

import pytest
from starlette.testclient import TestClient

from facecompare.errors import ConfigurationError
from facecompare.review import service
from facecompare.review.service import (
    MAX_FAILED_SIGN_INS,
    MAX_FAILED_SIGN_INS_PER_CLIENT,
    ReviewQueue,
    SignInBusy,
)
from facecompare.review.store import open_review_store
from facecompare.server.app import create_app
from facecompare.server.config import ServerConfig, client_address, trusted_proxies
from facecompare.server.limits import OVER_CAPACITY
from facecompare.settings import Settings
from facecompare.storage import S3Reader
from fake_clock import Clock

PASSWORD = "correct horse battery staple"
WRONG = "not the password at all"
BASE = "https://console.test"


@pytest.fixture
def queue(tmp_path):
    q = ReviewQueue(open_review_store(f"sqlite:///{tmp_path / 'store.db'}"), 30, Clock(), max_concurrent_hashes=64)
    q.add_reviewer("alice", PASSWORD)
    q.add_reviewer("bob", PASSWORD)
    yield q
    q.store.close()


def actions(queue, action=None):
    return [(e.actor, e.action) for e in reversed(queue.store.audit_log(limit=10_000))
            if action is None or e.action == action]


def attempt_rows(queue) -> int:
    with queue.store._tx(write=False) as db:
        return db.execute("SELECT COUNT(*) FROM facecompare_review_sign_in_attempts").fetchone()[0]


def test_concurrent_wrong_passwords_are_counted_before_the_hash(queue):
    """39 guesses at once for one name from one client: only MAX_FAILED_SIGN_INS passwords are checked."""
    barrier = threading.Barrier(39)
    results = []

    def guess(i):
        barrier.wait()
        results.append(queue.sign_in("alice", f"{WRONG} {i}", client="198.51.100.7"))

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(39)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [None] * 39
    assert actions(queue, "SIGN_IN_FAILED") == [("alice", "SIGN_IN_FAILED")] * MAX_FAILED_SIGN_INS
    assert actions(queue, "SIGN_IN_REFUSED") == [("alice", "SIGN_IN_REFUSED")]  # once per lock, not per attempt
    # and the right password from that client is refused too until the window ends
    assert queue.sign_in("alice", PASSWORD, client="198.51.100.7") is None


def test_one_client_cannot_lock_a_reviewer_out(queue):
    for _ in range(MAX_FAILED_SIGN_INS + 3):
        assert queue.sign_in("alice", WRONG, client="198.51.100.7") is None
    assert queue.sign_in("alice", PASSWORD, client="198.51.100.7") is None  # the attacker's client is locked out
    signed = queue.sign_in("alice", PASSWORD, client="192.0.2.10")  # alice's own browser is not
    assert signed is not None and signed.session.username == "alice"
    # the window ends for the attacker too
    queue.clock.now += service.LOCKOUT_SECONDS + 1
    assert queue.sign_in("alice", PASSWORD, client="198.51.100.7") is not None


def test_a_name_guessed_from_many_clients_is_locked_for_all(queue, monkeypatch):
    monkeypatch.setattr(service, "MAX_FAILED_SIGN_INS_PER_NAME", 8)
    for i in range(8):
        assert queue.sign_in("alice", WRONG, client=f"198.51.100.{i}") is None
    assert queue.sign_in("alice", PASSWORD, client="192.0.2.10") is None  # a distributed attack locks the name
    assert queue.sign_in("bob", PASSWORD, client="192.0.2.10") is not None
    assert actions(queue, "SIGN_IN_REFUSED") == [("alice", "SIGN_IN_REFUSED")]


def test_a_client_has_a_budget_over_all_names_and_the_log_grows_boundedly(queue):
    before = len(actions(queue))
    for i in range(MAX_FAILED_SIGN_INS_PER_CLIENT + 40):
        assert queue.sign_in(f"nobody{i}", WRONG, client="203.0.113.9") is None
    # unknown names are counted, not written: one row when the client's budget is spent, none per attempt
    assert actions(queue)[before:] == [("system:console", "SIGN_IN_THROTTLED")]
    # a client over its budget adds no counters for new names either
    assert attempt_rows(queue) <= 2 * MAX_FAILED_SIGN_INS_PER_CLIENT + 1
    assert queue.sign_in("bob", PASSWORD, client="203.0.113.9") is None  # that client is refused for any name
    assert queue.sign_in("bob", PASSWORD, client="192.0.2.10") is not None
    queue.clock.now += service.LOCKOUT_SECONDS + 1
    queue.purge()
    assert attempt_rows(queue) == 0  # ended windows are deleted


@pytest.mark.parametrize("name", ["system:retention", "system:cli", "system:console", "-", "<b>x</b>", "ann\n"])
def test_no_typed_name_becomes_an_actor(queue, name):
    assert queue.sign_in(name, WRONG, client="203.0.113.9") is None
    assert [actor for actor, _ in actions(queue)] == ["system:cli", "system:cli"]  # the two REVIEWER_ADDED rows


def test_a_success_takes_its_attempt_back(queue):
    for _ in range(MAX_FAILED_SIGN_INS_PER_CLIENT + 5):
        assert queue.sign_in("alice", PASSWORD, client="192.0.2.10") is not None


def test_password_checks_beyond_the_bound_are_refused_before_hashing(queue):
    slots = [queue._hash_slots.acquire(blocking=False) for _ in range(queue.max_concurrent_hashes)]
    assert all(slots)
    try:
        before = (len(actions(queue)), attempt_rows(queue))
        with pytest.raises(SignInBusy):
            queue.sign_in("alice", PASSWORD, client="192.0.2.10")
        assert (len(actions(queue)), attempt_rows(queue)) == before  # nothing counted, nothing written
    finally:
        for _ in slots:
            queue._hash_slots.release()
    assert queue.sign_in("alice", PASSWORD, client="192.0.2.10") is not None


def test_the_pipeline_takes_the_bound_from_the_configuration(tmp_path):
    config = ServerConfig.from_env({"FACECOMPARE_CONSOLE_MAX_SIGN_INS": "3", "FACECOMPARE_AUTH": "off",
                                    "FACECOMPARE_COLLECTIONS": f"sqlite:///{tmp_path / 's.db'}"})
    app = create_app(Settings(), ServerConfig(**{**config.__dict__, "warm": False}), s3=S3Reader())
    assert app.state.pipeline.review.max_concurrent_hashes == 3
    app.state.pipeline.close()
    with pytest.raises(ConfigurationError, match="FACECOMPARE_CONSOLE_MAX_SIGN_INS"):
        ServerConfig.from_env({"FACECOMPARE_CONSOLE_MAX_SIGN_INS": "0"})


# -- over HTTP -----------------------------------------------------------------------------------------------------

def make_app(tmp_path, **config):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    app = create_app(Settings(), ServerConfig(auth=False, warm=False, collections_url=url,
                                              allowed_hosts=frozenset({"console.test"}),
                                              **config), s3=S3Reader())
    app.state.pipeline.review.add_reviewer("alice", PASSWORD)
    return app


def post_sign_in(client, username="alice", password=PASSWORD, headers=None):
    page = client.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post("/console/login", data={"csrf": token, "username": username, "password": password},
                       headers=headers or {})


def test_the_console_answers_429_when_sign_ins_are_busy(tmp_path):
    app = make_app(tmp_path)
    queue = app.state.pipeline.review
    with TestClient(app, base_url=BASE, follow_redirects=False) as client:
        for _ in range(queue.max_concurrent_hashes):
            queue._hash_slots.acquire()
        try:
            response = post_sign_in(client)
            assert response.status_code == 429 and response.headers["retry-after"] == "1"
            assert "busy" in response.text
        finally:
            for _ in range(queue.max_concurrent_hashes):
                queue._hash_slots.release()
        assert post_sign_in(client).status_code == 303
    app.state.pipeline.close()


def test_forwarded_headers_are_ignored_unless_the_proxy_is_trusted(tmp_path):
    """A client cannot escape its budget by sending X-Forwarded-For, unless the operator trusts its address."""
    app = make_app(tmp_path)  # clients without lifespan (its end closes the stores), two addresses on one app
    client = TestClient(app, base_url=BASE, follow_redirects=False, client=("203.0.113.9", 5000))
    for i in range(MAX_FAILED_SIGN_INS):
        assert post_sign_in(client, password=WRONG, headers={"x-forwarded-for": f"10.0.0.{i}"}).status_code == 401
    # locked out from its own address whatever it claims to forward
    assert post_sign_in(client, headers={"x-forwarded-for": "10.9.9.9"}).status_code == 401
    reviewer = TestClient(app, base_url=BASE, follow_redirects=False, client=("192.0.2.10", 5000))
    assert post_sign_in(reviewer).status_code == 303  # the reviewer's own address is not
    app.state.pipeline.close()
    (tmp_path / "t").mkdir()
    trusted = make_app(tmp_path / "t", trusted_proxies=trusted_proxies("127.0.0.1"))
    with TestClient(trusted, base_url=BASE, follow_redirects=False, client=("127.0.0.1", 5000)) as proxy:
        for _ in range(MAX_FAILED_SIGN_INS):
            assert post_sign_in(proxy, password=WRONG, headers={"x-forwarded-for": "203.0.113.9"}).status_code == 401
        assert post_sign_in(proxy, headers={"x-forwarded-for": "203.0.113.9"}).status_code == 401
        assert post_sign_in(proxy, headers={"x-forwarded-for": "192.0.2.10"}).status_code == 303
    trusted.state.pipeline.close()


def test_client_address():
    proxies = trusted_proxies("127.0.0.1, 10.0.0.0/8")
    assert client_address("203.0.113.9", "1.2.3.4", proxies) == "203.0.113.9"  # not a proxy: header ignored
    assert client_address("127.0.0.1", "1.2.3.4", ()) == "127.0.0.1"  # no trusted proxies: header ignored
    assert client_address("127.0.0.1", "1.2.3.4, 203.0.113.9, 10.1.2.3", proxies) == "203.0.113.9"  # from the right
    assert client_address("127.0.0.1", "10.1.1.1", proxies) == "127.0.0.1"
    assert client_address(None, None, proxies) == "-"
    with pytest.raises(ConfigurationError, match="FACECOMPARE_TRUSTED_PROXIES"):
        trusted_proxies("proxy.example")


def test_the_connection_cap_covers_the_console(tmp_path):
    app = make_app(tmp_path)

    async def over_capacity(scope, receive, send):  # what FaceCompareH11Protocol does over the cap
        scope[OVER_CAPACITY] = True
        await app(scope, receive, send)

    with TestClient(app, base_url=BASE, follow_redirects=False) as normal:
        page = normal.get("/console/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        capped = TestClient(over_capacity, base_url=BASE, follow_redirects=False, cookies=normal.cookies)
        assert capped.get("/console/login").status_code == 503
        response = capped.post("/console/login", data={"csrf": token, "username": "alice", "password": WRONG})
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert [e.action for e in app.state.pipeline.review.store.audit_log()] == ["REVIEWER_ADDED"]
    app.state.pipeline.close()
