"""The reviewer console at ``/console``: where a person resolves the REVIEW cases that callers queued.

Server-rendered pages (Jinja2 templates in ``templates/``, autoescaped) with one small script and one stylesheet
served from ``static/``: nothing is fetched from outside, and the Content-Security-Policy forbids it.

* Sign-in with a reviewer account (``facecompare reviewer add``); passwords are argon2id hashes
  (:mod:`facecompare.review.service`). A session is a random token in a cookie (HttpOnly, SameSite=Strict, Secure
  unless FACECOMPARE_CONSOLE_SECURE_COOKIES=off, path /console); the database holds only its SHA-256. Sessions end
  after 30 minutes idle or 12 hours.
* Every form that changes something carries the session's CSRF token (the sign-in form a double-submit token),
  and a request whose Origin is another site is refused.
* Pages: the queue (filters: status, reason, batch, age), a case (both images with the compared faces boxed,
  zoom, similarity against the threshold and the review band, reason codes, detector confidence, pose, quality;
  MATCH / NO_MATCH / ESCALATE with a required comment), the audit log (read-only), CSV export of decisions.
* Responses are never cached (``Cache-Control: no-store``): face images stay out of browser caches.
"""

from __future__ import annotations

import hmac
import math
import re
import secrets
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import anyio
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles

from ...errors import FaceCompareError, InvalidParameterException, ResourceNotFoundException
from ...review.service import SESSION_IDLE_SECONDS, ReviewQueue, SignInBusy, iso
from ...review.store import ACTIONS, ROLES, CaseConflict, ReviewCase, Session
from ..config import client_address
from ..limits import OVER_CAPACITY, RETRY_AFTER_SECONDS
from . import render

HERE = Path(__file__).parent
SESSION_COOKIE = "facecompare_console"
LOGIN_COOKIE = "facecompare_console_login"
PAGE_SIZE = 100
#: the largest offset (queue) or sequence number (audit log) a query string may give: beyond any real store, and
#: far inside SQLite's and PostgreSQL's 64-bit integers (a larger number is a 400, not an overflow and a 500)
MAX_QUERY_NUMBER = 10**12
CASE_ID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
#: what each reason code means, for the case page
REASON_TEXT = {
    "SIMILARITY_IN_REVIEW_BAND": "The similarity is inside the review band around the threshold: the model is unsure.",
    "NO_FACE_IN_SELFIE": "No face was found in the selfie.",
    "NO_FACE_ON_DOCUMENT": "No face was found on the document.",
    "MULTIPLE_FACES_IN_SELFIE": "The selfie shows a second face almost as large as the first: who is the applicant?",
    "FACE_TOO_SMALL": "A compared face is smaller than the minimum width: details may be missing.",
    "LOW_QUALITY": "A compared face is too dark, too bright or blurred.",
}
AGES = {"": (None, None), "lt1h": (None, 1.0), "lt24h": (None, 24.0), "ge24h": (24.0, None), "ge7d": (168.0, None)}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _age(seconds: float) -> str:
    if seconds < 3600:
        return f"{max(0, int(seconds // 60))} min"
    if seconds < 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def query_number(value: str | None, name: str) -> int | None:
    """A whole number from a query string: ASCII digits only, at most MAX_QUERY_NUMBER; None when absent or empty.
    Anything else (1e20, -5, full-width digits, a 30-digit number) is an InvalidParameterException (a 400 page)."""
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 13 or int(value) > MAX_QUERY_NUMBER:
        raise InvalidParameterException(f"{name} must be a whole number from 0 to {MAX_QUERY_NUMBER:,}.")
    return int(value)


def tokens_match(expected: str | None, given: str | None) -> bool:
    """A CSRF token check in constant time, on bytes: a token of any text (non-ASCII included) is just wrong."""
    if not expected or not isinstance(given, str):
        return False
    return hmac.compare_digest(expected.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass"))


def _number(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


class Console:
    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline
        self.templates = Environment(loader=FileSystemLoader(str(HERE / "templates")),
                                     autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
        self.templates.filters.update(iso=iso, age=_age, number=_number)
        self.templates.globals.update(reason_text=REASON_TEXT, actions=list(ACTIONS))

    @property
    def queue(self) -> ReviewQueue:
        return self.pipeline.review

    def mount(self) -> Mount:
        router = Router(routes=[
            Route("/", self.home, methods=["GET"]),
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/queue", self.queue_page, methods=["GET"]),
            Route("/cases/{case_id}", self.case_page, methods=["GET"]),
            Route("/cases/{case_id}/decision", self.decide, methods=["POST"]),
            Route("/cases/{case_id}/image/{role}", self.image, methods=["GET"]),
            Route("/cases/{case_id}/face/{role}", self.face, methods=["GET"]),
            Route("/audit", self.audit_page, methods=["GET"]),
            Route("/export.csv", self.export, methods=["GET"]),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="console-static"),
        ])

        async def console(scope, receive, send) -> None:
            # the worker's connection cap (FACECOMPARE_MAX_CONNECTIONS) holds for the console as for the APIs: a
            # request over it is a 503 page before any session lookup or password check
            if scope["type"] == "http" and scope.get(OVER_CAPACITY):
                self.pipeline.metrics.throttled.labels("connections").inc()
                response = self.error_page(503, "The service has too many connections open; try again in a second.")
                response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
                await response(scope, receive, send)
                return
            await router(scope, receive, send)

        return Mount("/console", app=console)

    # -- plumbing ---------------------------------------------------------------------------------------------

    async def run(self, function, *args):
        return await anyio.to_thread.run_sync(lambda: function(*args))

    def page(self, name: str, status: int = 200, **context) -> HTMLResponse:
        return HTMLResponse(self.templates.get_template(name).render(**context), status_code=status,
                            headers=SECURITY_HEADERS)

    def error_page(self, status: int, message: str, session: Session | None = None) -> HTMLResponse:
        return self.page("error.html", status, message=message, session=session)

    def cookie(self, response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/console", httponly=True, samesite="strict",
                            secure=self.pipeline.config.console_secure_cookies)

    async def session(self, request: Request) -> Session | None:
        return await self.run(self.queue.session, request.cookies.get(SESSION_COOKIE))

    def same_origin(self, request: Request) -> bool:
        """A state-changing request must come from the console's own pages: its Origin (or, without one, its
        Referer) is one of FACECOMPARE_CONSOLE_ORIGINS when that is set (behind a proxy that rewrites the Host
        header), else names the request's own host. Browsers send Origin on every POST; an Origin of another site,
        ``null``, or no Origin with a Referer of another site, is refused."""
        origin = request.headers.get("origin") or request.headers.get("referer")
        if not origin:
            return True  # a non-browser client (the CSRF token still has to match)
        if origin == "null":
            return False
        parts = urlsplit(origin)
        allowed = self.pipeline.config.console_origins
        if allowed:
            return f"{parts.scheme}://{parts.netloc}".lower() in allowed
        return parts.netloc == request.headers.get("host", "")

    def to_login(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/console/login?{urlencode({'next': target})}", status_code=303,
                                headers=SECURITY_HEADERS)

    async def form(self, request: Request) -> dict:
        try:
            form = await request.form(max_files=0, max_fields=20, max_part_size=64 * 1024)
        except Exception:  # a malformed body (python-multipart's and Starlette's errors)
            raise InvalidParameterException("The form could not be read.") from None
        try:
            return {key: value for key, value in form.items() if isinstance(value, str)}
        finally:
            await form.close()

    # -- sign-in ----------------------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/console/queue", status_code=303, headers=SECURITY_HEADERS)

    @staticmethod
    def safe_next(target: str | None) -> str:
        """Only a path inside the console (no scheme, no host, no //) can be where sign-in leads."""
        if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
            return target
        return "/console/queue"

    async def login_page(self, request: Request, message: str | None = None, status: int = 200) -> Response:
        token = secrets.token_urlsafe(24)
        secure_context = request.url.scheme == "https" or request.url.hostname in ("localhost", "127.0.0.1", "::1")
        response = self.page("login.html", status, login_csrf=token, message=message,
                             next=self.safe_next(request.query_params.get("next")),
                             insecure=self.pipeline.config.console_secure_cookies and not secure_context)
        self.cookie(response, LOGIN_COOKIE, token, 600)
        return response

    async def login(self, request: Request) -> Response:
        try:
            fields = await self.form(request)
        except InvalidParameterException as exc:
            return await self.login_page(request, exc.message, 400)
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        if not self.same_origin(request) or not tokens_match(cookie, fields.get("csrf")):
            return await self.login_page(request, "The sign-in form expired; please try again.", 403)
        client = client_address(request.client.host if request.client else None,
                                request.headers.get("x-forwarded-for"), self.pipeline.config.trusted_proxies)
        try:
            signed = await self.run(self.queue.sign_in, fields.get("username", ""), fields.get("password", ""), client)
        except SignInBusy:
            response = await self.login_page(request, "The console is busy checking other sign-ins; try again in a "
                                             "second.", 429)
            response.headers["Retry-After"] = "1"
            return response
        if signed is None:
            return await self.login_page(request, "Wrong name or password, or the account is disabled or locked "
                                         "after repeated failures.", 401)
        response = RedirectResponse(self.safe_next(fields.get("next")), status_code=303, headers=SECURITY_HEADERS)
        self.cookie(response, SESSION_COOKIE, signed.token, None)
        response.delete_cookie(LOGIN_COOKIE, path="/console")
        return response

    async def logout(self, request: Request) -> Response:
        """Sign out: only with the session's CSRF token from the console's own origin. A forged sign-out (another
        site's form, a wrong token) ends nothing and leaves the cookie in place (403)."""
        session = await self.session(request)
        if session is not None:
            try:
                fields = await self.form(request)
            except InvalidParameterException as exc:
                return self.error_page(400, exc.message, session)
            if not self.same_origin(request) or not tokens_match(session.csrf_token, fields.get("csrf")):
                return self.error_page(403, "This sign-out did not come from your console session; use the "
                                       "console's own button.", session)
            await self.run(self.queue.sign_out, session)
        response = RedirectResponse("/console/login", status_code=303, headers=SECURITY_HEADERS)
        response.delete_cookie(SESSION_COOKIE, path="/console")
        return response

    # -- the queue --------------------------------------------------------------------------------------------

    def filters(self, request: Request) -> dict:
        q = request.query_params
        return {"status": q.get("status", "open"), "reason": q.get("reason", ""), "batch": q.get("batch", ""),
                "age": q.get("age", "")}

    @staticmethod
    def filter_query(filters: dict) -> str:
        """The query string that keeps a queue's filters from page to page (the empty ones left out)."""
        return urlencode({k: v for k, v in filters.items() if v})

    def case_filter(self, filters: dict):
        if filters["age"] not in AGES:
            raise InvalidParameterException("age must be one of lt1h, lt24h, ge24h, ge7d.")
        older, newer = AGES[filters["age"]]
        return self.queue.case_filter(filters["status"], filters["reason"] or None, filters["batch"] or None,
                                      min_age_hours=older, max_age_hours=newer, now=self.queue.clock())

    async def queue_page(self, request: Request) -> Response:
        session = await self.session(request)
        if session is None:
            return self.to_login(request)
        filters = self.filters(request)
        try:
            where = self.case_filter(filters)
            offset = query_number(request.query_params.get("offset"), "offset") or 0
        except InvalidParameterException as exc:
            return self.error_page(400, exc.message, session)

        def load():
            self.queue.purge_if_due()
            return (self.queue.store.list_cases(where, offset, PAGE_SIZE), self.queue.store.count_cases(where),
                    self.queue.store.batches(), self.queue.store.reviewed_counts())

        cases, total, batches, counts = await self.run(load)
        query = self.filter_query(filters)
        done = await self.decided(request)
        return self.page("queue.html", session=session, cases=cases, total=total, batches=batches, counts=counts,
                         filters=filters, query=query, offset=offset, page_size=PAGE_SIZE, now=self.queue.clock(),
                         done=done,
                         reasons=sorted(REASON_TEXT))

    async def decided(self, request: Request) -> str | None:
        """What the flash after a decision says, from the store, never from the request: ``done`` only names the
        case ("STATUS case-id", as the decision's redirect writes it); it is shown when that case exists and has
        that status (decided or escalated), and otherwise not at all."""
        parts = (request.query_params.get("done") or "").split(" ")
        if len(parts) != 2 or parts[0] not in (*ACTIONS.values(),) or not CASE_ID_PATTERN.match(parts[1]):
            return None
        try:
            case = await self.run(self.queue.store.get_case, parts[1])
        except ResourceNotFoundException:
            return None
        return f"{case.status} {case.case_id}" if case.status == parts[0] else None

    # -- a case -----------------------------------------------------------------------------------------------

    async def case_page(self, request: Request, message: str | None = None, status: int = 200) -> Response:
        session = await self.session(request)
        if session is None:
            return self.to_login(request)
        filters = self.filters(request)
        try:
            where = self.case_filter(filters)
            case = await self.run(self.queue.store.get_case, request.path_params["case_id"])
        except ResourceNotFoundException as exc:
            return self.error_page(404, exc.message, session)
        except InvalidParameterException as exc:
            return self.error_page(400, exc.message, session)
        before, after = await self.run(self.queue.store.neighbours, case, where)
        audit = await self.run(lambda: self.queue.store.audit_log(case_id=case.case_id, limit=50))
        query = self.filter_query(filters)
        return self.page("case.html", status, session=session, case=case, audit=audit, previous=before, next=after,
                         query=query, message=message, now=self.queue.clock(), erases_at=self.queue.erases_at(case),
                         done=await self.decided(request),
                         faces={role: case.evidence.get(f"{role}_face") for role in ROLES}, roles=ROLES,
                         boxes={role: render.face_box(case, role) for role in ROLES},
                         scale=self.scale(case))

    @staticmethod
    def scale(case: ReviewCase) -> dict:
        """Where the similarity, the threshold and the review band sit on a 0-100 scale (for the case page's bar)."""
        low, high = case.review_band
        return {"low": max(0.0, min(100.0, low)), "high": max(0.0, min(100.0, high)), "threshold": case.threshold,
                "similarity": None if case.similarity is None else max(0.0, min(100.0, case.similarity))}

    async def decide(self, request: Request) -> Response:
        session = await self.session(request)
        if session is None:
            return self.error_page(403, "Sign in to decide cases: your session has ended.")
        try:
            fields = await self.form(request)
        except InvalidParameterException as exc:
            return self.error_page(400, exc.message, session)
        if not self.same_origin(request) or not tokens_match(session.csrf_token, fields.get("csrf")):
            return self.error_page(403, "This form did not come from your console session; reload the case and "
                                   "decide again.", session)
        case_id = request.path_params["case_id"]
        try:
            version = int(fields.get("version", ""))
            case = await self.run(self.queue.decide, case_id, fields.get("action", ""), session.username,
                                  fields.get("comment", ""), version)
        except ValueError:
            return self.error_page(400, "The form is missing the case's version; reload the case.", session)
        except ResourceNotFoundException as exc:
            return self.error_page(404, exc.message, session)
        except (InvalidParameterException, CaseConflict) as exc:
            return await self.case_page(request, exc.message, 409 if isinstance(exc, CaseConflict) else 400)
        # on to the next case of the same queue (the decided one has left it), or back to the queue
        filters = self.filters(request)  # the queue the case was opened from (the form's action URL carries it)
        query = self.filter_query(filters)
        try:
            where = self.case_filter(filters)
            _, after = await self.run(self.queue.store.neighbours, case, where)
            if after is None:  # the last of the queue: back to its oldest case still waiting, if any
                first = await self.run(self.queue.store.list_cases, where, 0, 1)
                after = first[0].case_id if first else None
        except InvalidParameterException:
            after = None
        done = urlencode({"done": f"{case.status} {case.case_id}"})
        target = f"/console/cases/{after}?{query}&{done}" if after else f"/console/queue?{query}&{done}"
        return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)

    async def _image(self, request: Request, draw) -> Response:
        session = await self.session(request)
        if session is None:
            return Response(status_code=403, headers=SECURITY_HEADERS)
        role = request.path_params["role"]
        if role not in ROLES:
            return Response(status_code=404, headers=SECURITY_HEADERS)

        def work():
            case = self.queue.store.get_case(request.path_params["case_id"])
            image = self.queue.store.get_image(case.case_id, role)
            return None if image is None else draw(case, role, image.data, self.pipeline.verifier.settings)

        try:
            data = await self.run(work)
        except ResourceNotFoundException:
            return Response(status_code=404, headers=SECURITY_HEADERS)
        except FaceCompareError:  # a stored image that no longer decodes (cannot happen for queued ones)
            return Response(status_code=422, headers=SECURITY_HEADERS)
        if data is None:
            return Response(status_code=410, headers=SECURITY_HEADERS)  # erased by retention, or no face
        return Response(data, media_type="image/png", headers=SECURITY_HEADERS)

    async def image(self, request: Request) -> Response:
        return await self._image(request, render.annotated_panel)

    async def face(self, request: Request) -> Response:
        return await self._image(request, render.zoomed_face)

    # -- audit and export -------------------------------------------------------------------------------------

    async def audit_page(self, request: Request) -> Response:
        session = await self.session(request)
        if session is None:
            return self.to_login(request)
        try:
            before_seq = query_number(request.query_params.get("before"), "before")
        except InvalidParameterException as exc:
            return self.error_page(400, exc.message, session)
        case_id = request.query_params.get("case") or None
        entries = await self.run(lambda: self.queue.store.audit_log(case_id=case_id, before_seq=before_seq,
                                                                    limit=PAGE_SIZE))
        return self.page("audit.html", session=session, entries=entries, case_id=case_id, page_size=PAGE_SIZE)

    async def export(self, request: Request) -> Response:
        session = await self.session(request)
        if session is None:
            return self.to_login(request)
        filters = self.filters(request)
        if "status" not in request.query_params:
            filters["status"] = "all"
        try:
            where = self.case_filter(filters)
        except InvalidParameterException as exc:
            return self.error_page(400, exc.message, session)
        text = await self.run(self.queue.export_csv, where)
        await self.run(lambda: self.queue.store.append_audit(session.username, "EXPORT", self.queue.clock(),
                                                             comment=urlencode(filters)))
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        return Response(text, media_type="text/csv; charset=utf-8",
                        headers={**SECURITY_HEADERS,
                                 "Content-Disposition": f'attachment; filename="review-decisions-{stamp}.csv"'})


__all__ = ["Console", "SESSION_COOKIE", "SESSION_IDLE_SECONDS"]
