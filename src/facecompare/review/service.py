"""The review queue's rules over a :class:`~facecompare.review.store.ReviewStore`: what may be queued, retention,
decisions, reviewer accounts (argon2id password hashes, from argon2-cffi) and console sessions.

Every surface (the REST API's ``queue_review``, ``facecompare compare --queue-review``, ``facecompare batch
--queue-review``, the console) goes through :class:`ReviewQueue`, so the rules hold the same everywhere.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import secrets
import time
import uuid
from dataclasses import dataclass

from ..errors import InvalidParameterException, quote_input
from .store import (
    ACTIONS,
    DECIDED,
    ESCALATED,
    OPEN,
    CaseFilter,
    CaseImage,
    ReviewCase,
    Reviewer,
    ReviewStore,
    Session,
)

#: FACECOMPARE_REVIEW_RETENTION_DAYS' default: images are erased this many days after a case was queued
DEFAULT_RETENTION_DAYS = 30.0
#: what may be queued: REVIEW cases only, or NO_MATCH cases as well
QUEUE_MODES = {"none": (), "review": ("REVIEW",), "review_or_no_match": ("REVIEW", "NO_MATCH")}
#: a console session ends after this long without a request, and in any case after SESSION_MAX_SECONDS
SESSION_IDLE_SECONDS = 30 * 60
SESSION_MAX_SECONDS = 12 * 3600
MIN_PASSWORD_LENGTH = 12
MAX_COMMENT_LENGTH = 2000
#: anchored with \Z, not $ (which also matches before a trailing newline: "ann\n" would pass)
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}\Z")
MAX_LABEL_LENGTH = 200  # a batch label or a reference: printable text (a batch row's id is a reference)
REASON_PATTERN = re.compile(r"^[A-Z0-9_]{1,64}\Z")
#: failed sign-ins per reviewer name within LOCKOUT_SECONDS before further attempts are refused for that long
MAX_FAILED_SIGN_INS = 5
LOCKOUT_SECONDS = 15 * 60
#: a case id made from a batch label and a row id: a resumed batch queues a row once (uuid5 namespace)
CASE_NAMESPACE = uuid.UUID("6f1b0d2e-6a7c-4c1e-9d0a-6a1f2b3c4d5e")


def queue_mode(value: str | None) -> tuple[str, ...]:
    """The decisions a ``queue_review`` value queues (none, review, review_or_no_match)."""
    key = (value or "none").strip().lower()
    if key not in QUEUE_MODES:
        raise InvalidParameterException(f"queue_review must be one of {', '.join(QUEUE_MODES)}; got {quote_input(value)}.")
    return QUEUE_MODES[key]


def check_label(value: str | None, what: str) -> str | None:
    if value is None or value == "":
        return None
    # str.isprintable refuses control characters (C0, C1) and format characters such as the bidi overrides, which
    # would make a label read differently from what it is
    if not isinstance(value, str) or len(value) > MAX_LABEL_LENGTH or not value.isprintable():
        raise InvalidParameterException(f"{what} must be 1-200 printable characters; got {quote_input(value)}.")
    return value


def batch_case_id(batch: str, reference: str) -> str:
    """The id of the case of a batch's row (its label and the row's id): the same on every run."""
    return str(uuid.uuid5(CASE_NAMESPACE, f"{batch}\x00{reference}"))


def media_type(data: bytes) -> str:
    """The media type of an image to queue, sniffed from its bytes (JPEG, PNG, HEIC/HEIF, WebP, AVIF, PDF)."""
    from ..formats import media_type as sniffed

    found = sniffed(data)
    if found is None:
        raise InvalidParameterException("Only JPEG, PNG, HEIC/HEIF, WebP, AVIF and PDF images can be queued for review.")
    return found


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SignIn:
    token: str  # for the cookie; only its hash is stored
    session: Session


class ReviewQueue:
    """Queueing, retention, decisions, accounts and sessions. ``clock`` is injectable for retention tests."""

    def __init__(self, store: ReviewStore, retention_days: float = DEFAULT_RETENTION_DAYS, clock=time.time) -> None:
        if not retention_days > 0:
            raise InvalidParameterException("FACECOMPARE_REVIEW_RETENTION_DAYS must be a positive number of days.")
        self.store = store
        self.retention_days = float(retention_days)
        self.clock = clock
        from argon2 import PasswordHasher

        self._hasher = PasswordHasher()  # argon2id, the library's current recommended parameters
        self._dummy_hash: str | None = None  # for unknown names (the same time spent); made at the first sign-in
        self._last_purge = 0.0

    # -- queueing ---------------------------------------------------------------------------------------------

    def queue(self, result: dict, model: str, selfie: bytes, document: bytes, *, source: str,
              batch: str | None = None, reference: str | None = None, case_id: str | None = None,
              actor: str | None = None) -> tuple[ReviewCase, bool]:
        """Keep a verification (``verification_dict``'s or a batch row's dictionary) and its two images for review.
        Returns the case and whether it is new (a batch row queued again is not)."""
        batch, reference = check_label(batch, "batch"), check_label(reference, "reference")
        if case_id is None and batch and reference:
            # a retry of the same call (same labels, same images) finds its case; other images are another case
            digests = "\x00".join(hashlib.sha256(data).hexdigest() for data in (selfie, document))
            case_id = batch_case_id(batch, f"{reference}\x00{digests}")
        case_id = case_id or str(uuid.uuid4())
        evidence = {key: result.get(key) for key in ("selfie_face", "document_face", "selfie_faces", "document_faces",
                                                     "notes", "other_faces") if key in result}
        band = result.get("review_band")
        if not band or len(band) != 2 or result.get("threshold") is None or not result.get("decision"):
            raise InvalidParameterException("A case needs the verification's decision, threshold and review band.")
        case = ReviewCase(case_id=case_id, created_at=self.clock(), source=source, model=model,
                          engine_decision=result["decision"], similarity=result.get("similarity"),
                          distance=result.get("distance"), threshold=float(result["threshold"]),
                          review_band=(float(band[0]), float(band[1])), reasons=list(result.get("reasons") or []),
                          evidence=evidence, batch=batch, reference=reference)
        images = [CaseImage("selfie", media_type(selfie), selfie), CaseImage("document", media_type(document), document)]
        stored, created = self.store.add_case(case, images, actor or f"system:{source}")
        self.purge_if_due()
        return stored, created

    # -- retention --------------------------------------------------------------------------------------------

    def purge(self) -> list[str]:
        """Erase the images of the cases older than the retention period; returns their ids."""
        now = self.clock()
        self._last_purge = now
        erased = self.store.erase_images(now - self.retention_days * 86400, "system:retention", now)
        self.store.delete_sessions(idle_before=now - SESSION_IDLE_SECONDS, created_before=now - SESSION_MAX_SECONDS)
        return erased

    def purge_if_due(self, every: float = 60.0) -> None:
        if self.clock() - self._last_purge >= every:
            self.purge()

    def erases_at(self, case: ReviewCase) -> float:
        return case.created_at + self.retention_days * 86400

    # -- decisions --------------------------------------------------------------------------------------------

    def decide(self, case_id: str, action: str, reviewer: str, comment: str, version: int) -> ReviewCase:
        if action not in ACTIONS:
            raise InvalidParameterException(f"The decision must be one of {', '.join(ACTIONS)}.")
        comment = (comment or "").strip()
        if not comment:
            raise InvalidParameterException("A comment is required: say what you saw.")
        if len(comment) > MAX_COMMENT_LENGTH:
            raise InvalidParameterException(f"The comment is longer than {MAX_COMMENT_LENGTH} characters.")
        return self.store.decide(case_id, action, reviewer, comment, int(version), self.clock())

    @staticmethod
    def case_filter(status: str = "open", reason: str | None = None, batch: str | None = None,
                    min_age_hours: float | None = None, max_age_hours: float | None = None,
                    now: float | None = None) -> CaseFilter:
        statuses = {"open": (OPEN,), "escalated": (ESCALATED,), "pending": (OPEN, ESCALATED), "decided": DECIDED,
                    "all": ()}.get(status)
        if statuses is None:
            raise InvalidParameterException("status must be open, escalated, pending, decided or all.")
        if reason and not REASON_PATTERN.match(reason):
            raise InvalidParameterException(f"Not a reason code: {quote_input(reason)}.")
        now = time.time() if now is None else now
        return CaseFilter(statuses=statuses, reason=reason or None, batch=batch or None,
                          created_before=None if min_age_hours is None else now - min_age_hours * 3600,
                          created_after=None if max_age_hours is None else now - max_age_hours * 3600)

    def export_csv(self, where: CaseFilter, handle: io.TextIOBase | None = None) -> str | None:
        """The cases of ``where`` as CSV, one row per case with its decision (to ``handle``, or returned). The free
        text cells (batch, reference, comment: the caller's or the reviewer's words) cannot start a formula."""
        out = handle or io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["case_id", "queued_at", "source", "batch", "reference", "model", "engine_decision",
                         "similarity", "threshold", "reasons", "status", "reviewed_by", "reviewed_at", "comment",
                         "images_erased_at"])
        for case in self.store.iter_cases(where):
            writer.writerow([case.case_id, iso(case.created_at), case.source, spreadsheet_safe(case.batch or ""),
                             spreadsheet_safe(case.reference or ""), case.model, case.engine_decision,
                             "" if case.similarity is None else case.similarity, case.threshold, " ".join(case.reasons),
                             case.status, case.reviewed_by or "", iso(case.reviewed_at),
                             spreadsheet_safe(case.comment or ""), iso(case.images_erased_at)])
        return None if handle else out.getvalue()

    # -- reviewers --------------------------------------------------------------------------------------------

    def add_reviewer(self, username: str, password: str) -> Reviewer:
        check_username(username)
        check_password(password)
        return self.store.add_reviewer(username, self._hasher.hash(password), self.clock())

    def set_password(self, username: str, password: str) -> None:
        check_password(password)
        self.store.update_reviewer(username, password_hash=self._hasher.hash(password))
        self.store.delete_sessions(username=username)
        self.store.append_audit("system:cli", "PASSWORD_CHANGED", self.clock(), new_state=username)

    def set_disabled(self, username: str, disabled: bool) -> None:
        self.store.update_reviewer(username, disabled=disabled)
        if disabled:
            self.store.delete_sessions(username=username)
        self.store.append_audit("system:cli", "REVIEWER_DISABLED" if disabled else "REVIEWER_ENABLED", self.clock(),
                                new_state=username)

    def sign_in(self, username: str, password: str) -> SignIn | None:
        """A new session for a right name and password of an enabled reviewer; None otherwise (and the attempt is
        audited). After MAX_FAILED_SIGN_INS failures within LOCKOUT_SECONDS a name is refused for that long."""
        from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

        now = self.clock()
        username = (username or "")[:64]
        if self._locked_out(username, now):
            self.store.append_audit(username or "-", "SIGN_IN_REFUSED", now, comment="too many failed attempts")
            return None
        found = self.store.reviewer(username) if USERNAME_PATTERN.match(username) else None
        ok = False
        try:
            if found is None and self._dummy_hash is None:
                self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
            ok = self._hasher.verify(found[1] if found else self._dummy_hash, password or "") and found is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        if not ok or found[0].disabled:
            self.store.append_audit(username or "-", "SIGN_IN_FAILED", now)
            return None
        if self._hasher.check_needs_rehash(found[1]):
            self.store.update_reviewer(username, password_hash=self._hasher.hash(password))
        token = secrets.token_urlsafe(32)
        session = Session(token_hash(token), username, secrets.token_urlsafe(32), now, now)
        self.store.add_session(session)
        self.store.append_audit(username, "SIGN_IN", now)
        return SignIn(token, session)

    def _locked_out(self, username: str, now: float) -> bool:
        """MAX_FAILED_SIGN_INS failures of the name within LOCKOUT_SECONDS, since its last sign-in. Counted in the
        audit log, so that every worker process and every restart sees the same count."""
        return self.store.failed_sign_ins(username or "-", now - LOCKOUT_SECONDS) >= MAX_FAILED_SIGN_INS

    def session(self, token: str | None) -> Session | None:
        """The live session of a cookie's token (its idle time refreshed), or None."""
        if not token or len(token) > 128:
            return None
        now = self.clock()
        hashed = token_hash(token)
        session = self.store.session(hashed)
        if session is None:
            return None
        if now - session.last_seen > SESSION_IDLE_SECONDS or now - session.created_at > SESSION_MAX_SECONDS:
            self.store.delete_sessions(token_hash=hashed)
            return None
        found = self.store.reviewer(session.username)
        if found is None or found[0].disabled:
            self.store.delete_sessions(token_hash=hashed)
            return None
        if now - session.last_seen > 30:
            self.store.touch_session(hashed, now)
        return session

    def sign_out(self, session: Session) -> None:
        self.store.delete_sessions(token_hash=session.token_hash)
        self.store.append_audit(session.username, "SIGN_OUT", self.clock())


def check_username(username: str) -> None:
    if not isinstance(username, str) or not USERNAME_PATTERN.match(username):
        raise InvalidParameterException("A reviewer name is 1-64 letters, digits or ._@- and starts with a letter or "
                                        f"digit; got {quote_input(username)}.")


def check_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidParameterException(f"A password must have at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > 1024:
        raise InvalidParameterException("A password must have at most 1024 characters.")


def iso(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def spreadsheet_safe(text: str) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection): a leading = + - @ gets a quote."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def retention_days_from_env(environ: dict | None = None) -> float:
    """FACECOMPARE_REVIEW_RETENTION_DAYS (default 30): a positive number of days."""
    import math
    import os

    raw = ((os.environ if environ is None else environ).get("FACECOMPARE_REVIEW_RETENTION_DAYS") or "").strip()
    if not raw:
        return DEFAULT_RETENTION_DAYS
    try:
        days = float(raw)
    except ValueError:
        days = math.nan
    if not math.isfinite(days) or days <= 0:
        raise InvalidParameterException(f"FACECOMPARE_REVIEW_RETENTION_DAYS={quote_input(raw)} is not valid: it must "
                                        "be a positive number of days.")
    return days


def open_queue(url: str | None = None, environ: dict | None = None, clock=time.time) -> ReviewQueue:
    """The queue on the store of ``url`` (default FACECOMPARE_COLLECTIONS) with the retention of
    FACECOMPARE_REVIEW_RETENTION_DAYS."""
    import os

    from .store import open_review_store

    environ = os.environ if environ is None else environ
    days = retention_days_from_env(environ)
    return ReviewQueue(open_review_store(url or environ.get("FACECOMPARE_COLLECTIONS")), days, clock)
