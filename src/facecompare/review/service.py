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
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
#: failed sign-ins within LOCKOUT_SECONDS (of the first) before further attempts are refused until it ends: of one
#: name from one client, of one client under any names, of one name from all clients
MAX_FAILED_SIGN_INS = 5
MAX_FAILED_SIGN_INS_PER_CLIENT = 20
MAX_FAILED_SIGN_INS_PER_NAME = 50
LOCKOUT_SECONDS = 15 * 60
#: password checks (argon2id: 64 MiB and tens of ms of CPU each) running at once per process, by default
#: (FACECOMPARE_CONSOLE_MAX_SIGN_INS)
DEFAULT_CONCURRENT_HASHES = 2
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


class SignInBusy(Exception):
    """Too many sign-ins are being checked at once in this process (the console answers 429 with Retry-After)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def attempt_keys(username: str, client: str) -> dict[str, str]:
    """The sign-in budgets an attempt counts against, as digests (the store keeps no name or address in clear)."""
    def digest(*parts: str) -> str:
        return hashlib.sha256("\x00".join(("facecompare-sign-in", *parts)).encode("utf-8", "surrogatepass")).hexdigest()

    return {"client": digest("client", client), "name": digest("name", username),
            "name_from_client": digest("name+client", username, client)}


@dataclass(frozen=True)
class SignIn:
    token: str  # for the cookie; only its hash is stored
    session: Session


class ReviewQueue:
    """Queueing, retention, decisions, accounts and sessions. ``clock`` is injectable for retention tests."""

    def __init__(self, store: ReviewStore, retention_days: float = DEFAULT_RETENTION_DAYS, clock=time.time,
                 max_concurrent_hashes: int = DEFAULT_CONCURRENT_HASHES) -> None:
        if not retention_days > 0:
            raise InvalidParameterException("FACECOMPARE_REVIEW_RETENTION_DAYS must be a positive number of days.")
        self.store = store
        self.retention_days = float(retention_days)
        self.clock = clock
        from ..extras import require_extra

        require_extra("console", "the review queue")
        from argon2 import PasswordHasher

        self._hasher = PasswordHasher()  # argon2id, the library's current recommended parameters
        self._dummy_hash: str | None = None  # for unknown names (the same time spent); made at the first sign-in
        self._last_purge = 0.0
        self.max_concurrent_hashes = max(1, int(max_concurrent_hashes))
        self._hash_slots = threading.BoundedSemaphore(self.max_concurrent_hashes)

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
        self.store.delete_sign_in_attempts(before=now - LOCKOUT_SECONDS)
        return erased

    def erase_reference(self, reference: str) -> tuple[list[str], list[str]]:
        """Erase now, before retention ends, the images of every case of ``reference`` (a data subject's erasure
        request); audited as IMAGES_ERASED by ``system:cli``. Returns (all its case ids, those erased now)."""
        reference = check_label(reference, "reference")
        if reference is None:
            raise InvalidParameterException("Name the reference whose cases are to be erased.")
        return self.store.erase_reference(reference, "system:cli", self.clock(),
                                          "erasure request (facecompare review erase)")

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

    def sign_in(self, username: str, password: str, client: str = "-") -> SignIn | None:
        """A new session for a right name and password of an enabled reviewer; None otherwise.

        What an attacker can make this cost (issue 22):

        * at most ``max_concurrent_hashes`` password checks run at once in this process; beyond that
          :class:`SignInBusy` is raised before anything is hashed or written (the console answers 429);
        * every attempt is counted *before* its password is checked, atomically in the store, under three keys: the
          name from this client (MAX_FAILED_SIGN_INS), the client over all names (MAX_FAILED_SIGN_INS_PER_CLIENT) and
          the name over all clients (MAX_FAILED_SIGN_INS_PER_NAME), each within LOCKOUT_SECONDS of its first
          failure. An attempt over any budget is refused without a hash. So concurrent guesses cannot pass the
          limit, and one client cannot lock a reviewer out of the console for others (only a distributed attack
          on the name's own budget can);
        * the audit log gets a row for a failure of a *known* reviewer name only (SIGN_IN_FAILED), and one row when
          a lock begins (SIGN_IN_REFUSED for a known name; SIGN_IN_THROTTLED, actor ``system:console``, when a client
          has spent its budget); unknown names are only counted. So the log grows by at most about
          MAX_FAILED_SIGN_INS_PER_CLIENT + 2 rows per client and window, and no typed name can look like an actor
          of the service itself (``system:...``: reviewer names cannot contain a colon)."""
        from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

        if not self._hash_slots.acquire(blocking=False):
            raise SignInBusy(f"{self.max_concurrent_hashes} sign-ins are being checked; try again in a second.")
        try:
            now = self.clock()
            username = (username or "")[:64]
            known = self.store.reviewer(username) if USERNAME_PATTERN.match(username) else None
            keys = attempt_keys(username, client)
            refused = self._count_attempt(keys, username if known else None, now)
            if refused:
                return None
            ok = False
            try:
                if known is None and self._dummy_hash is None:
                    self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
                ok = self._hasher.verify(known[1] if known else self._dummy_hash, password or "") and known is not None
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                ok = False
            if not ok or known[0].disabled:
                if known is not None:
                    self.store.append_audit(username, "SIGN_IN_FAILED", now)
                return None
            self.store.forget_sign_in_attempts(forget=(keys["name"], keys["name_from_client"]),
                                               undo=(keys["client"],))
            if self._hasher.check_needs_rehash(known[1]):
                self.store.update_reviewer(username, password_hash=self._hasher.hash(password))
        finally:
            self._hash_slots.release()
        token = secrets.token_urlsafe(32)
        session = Session(token_hash(token), username, secrets.token_urlsafe(32), now, now)
        self.store.add_session(session)
        self.store.append_audit(username, "SIGN_IN", now)
        return SignIn(token, session)

    def _count_attempt(self, keys: dict[str, str], known_name: str | None, now: float) -> bool:
        """Count one attempt under each key (client first: a client over its budget adds no rows for new names);
        True when it is over a budget and must be refused unhashed. A lock's first refusal is audited once."""
        since = now - LOCKOUT_SECONDS
        count = self.store.count_sign_in_attempt(keys["client"], now, since)
        if count > MAX_FAILED_SIGN_INS_PER_CLIENT:
            if count == MAX_FAILED_SIGN_INS_PER_CLIENT + 1:
                self.store.append_audit("system:console", "SIGN_IN_THROTTLED", now,
                                        comment=f"a client failed {MAX_FAILED_SIGN_INS_PER_CLIENT} sign-ins within "
                                                f"{LOCKOUT_SECONDS // 60} minutes; its further attempts are refused")
            return True
        for key, limit in ((keys["name_from_client"], MAX_FAILED_SIGN_INS), (keys["name"], MAX_FAILED_SIGN_INS_PER_NAME)):
            count = self.store.count_sign_in_attempt(key, now, since)
            if count > limit:
                if count == limit + 1 and known_name is not None:
                    self.store.append_audit(known_name, "SIGN_IN_REFUSED", now, comment="too many failed attempts")
                return True
        return False

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


def queue_result(queue: ReviewQueue, modes: tuple[str, ...], result: dict, model: str,
                 read_images: Callable[[], tuple[bytes, bytes]], *, source: str, batch: str | None = None,
                 reference: str | None = None, case_id: str | None = None) -> tuple[ReviewCase, bool] | None:
    """Queue ``result`` (a verification as ``verification_dict`` gives it, or a batch row's dictionary) with its two
    images when its decision is one of ``modes`` (:func:`queue_mode`'s); None when it is not. ``read_images()``
    gives the (selfie, document) bytes and is called only then. Returns the case and whether it is new."""
    if result.get("decision") not in modes:
        return None
    selfie, document = read_images()
    return queue.queue(result, model, selfie, document, source=source, batch=batch, reference=reference,
                       case_id=case_id)


@dataclass(frozen=True)
class VerifiedCase:
    """:func:`verify_and_queue`'s answer: the engine's Verification, the two analysed images, and the case queued
    (None when the decision is not one that is queued)."""

    verification: Any
    selfie: Any
    document: Any
    case: ReviewCase | None


def verify_and_queue(verifier, selfie, document, threshold: float, modes: tuple[str, ...],
                     queue: Callable[[], ReviewQueue], read_images: Callable[[], tuple[bytes, bytes]], *,
                     source: str, batch: str | None = None, reference: str | None = None, embed_second: int = 1,
                     close_queue: bool = False) -> VerifiedCase:
    """The KYC decision on two images (``verifier.load``'s), and its case queued with the two images when the
    decision is one of ``modes``: ``facecompare compare --queue-review`` (source ``cli``) and ``POST /v1/verify``
    with ``queue_review`` (source ``api``). ``queue()`` gives the review queue and is called only when a case is
    queued (``close_queue``: its store is closed afterwards); ``embed_second``: the document's faces to embed."""
    from ..native import other_faces, verification_dict

    selfie_image, document_image = verifier.analyze_pair(selfie, document, embed_first=1, embed_second=embed_second)
    verification = verifier.decide(selfie_image, document_image, threshold)
    case = None
    if verification.decision in modes:
        opened = queue()
        try:
            case, _ = queue_result(opened, modes, {**verification_dict(verification), "other_faces":
                                                   other_faces(verification)}, verifier.recognizer.name, read_images,
                                   source=source, batch=batch, reference=reference)
        finally:
            if close_queue:
                opened.store.close()
    return VerifiedCase(verification, selfie_image, document_image, case)


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
