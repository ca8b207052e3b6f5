"""The review store's interface: cases a person must look at, their images until retention erases them, the reviewers, their
sessions, and an append-only audit log.

Review cases live in the same database as the face collections (``FACECOMPARE_COLLECTIONS``: the SQLite file by
default, PostgreSQL when configured), in tables of their own (``facecompare_review_*``) with their own schema
version. Nothing is stored unless a caller asks for a case to be queued (``queue_review``); what a case keeps:

- the two images as they were sent, **until the retention period ends** (``FACECOMPARE_REVIEW_RETENTION_DAYS``,
  default 30): then the image rows are deleted and the case keeps only its decision record;
- the decision record: the engine's answer (decision, similarity, distance, threshold, review band, reason codes)
  and the evidence shown to the reviewer (the compared faces' boxes, detector confidence, pose, quality), where
  the case came from (``api``, ``cli``, ``batch`` and a batch label, the caller's reference), and the reviewer's
  decision, name, time and comment. No embedding is stored.

The audit log is append-only in the database itself: triggers refuse any UPDATE or DELETE of its rows.

This module is the interface every engine implements and the records it stores; it imports no engine and no
database driver. :func:`facecompare.review.store.open_review_store` picks the engine from the URL.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field

#: what a case can be: waiting for a person, sent up to a senior reviewer, or decided
OPEN, ESCALATED = "OPEN", "ESCALATED"
DECIDED = ("MATCH", "NO_MATCH")
STATUSES = (OPEN, ESCALATED, *DECIDED)
#: the reviewer's buttons and the status each leads to
ACTIONS = {"MATCH": "MATCH", "NO_MATCH": "NO_MATCH", "ESCALATE": ESCALATED}
ROLES = ("selfie", "document")


class CaseConflict(Exception):
    """The case changed since the reviewer loaded it (another reviewer decided it first), or it is decided."""

    def __init__(self, message: str, current: ReviewCase | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.current = current


@dataclass(frozen=True)
class ReviewCase:
    case_id: str
    created_at: float  # epoch seconds
    source: str  # "api", "cli" or "batch"
    model: str  # the recognizer that scored the pair (calibrate --from-reviews fits per model)
    engine_decision: str  # what the engine answered: REVIEW, or NO_MATCH when that was queued too
    similarity: float | None
    distance: float | None
    threshold: float
    review_band: tuple[float, float]
    reasons: list[str]
    evidence: dict = field(default_factory=dict)  # verification_dict without images: faces, counts, notes
    batch: str | None = None  # a label that groups cases (a batch run's)
    reference: str | None = None  # the caller's reference (a batch row's id)
    status: str = OPEN
    reviewed_by: str | None = None
    reviewed_at: float | None = None
    comment: str | None = None
    images_erased_at: float | None = None
    version: int = 1  # raised by every change: a decision names the version it was made on


@dataclass(frozen=True)
class CaseImage:
    role: str  # "selfie" or "document"
    media_type: str  # image/jpeg, image/png, image/heic, image/webp, image/avif or application/pdf
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: float
    actor: str  # a reviewer's name, or "system:..." (queueing, retention)
    action: str  # CASE_QUEUED, MATCH, NO_MATCH, ESCALATE, IMAGES_ERASED, SIGN_IN, SIGN_IN_FAILED, SIGN_OUT, ...
    case_id: str | None
    previous_state: str | None
    new_state: str | None
    comment: str | None = None


@dataclass(frozen=True)
class Reviewer:
    username: str
    created_at: float
    disabled: bool = False


@dataclass(frozen=True)
class Session:
    token_hash: str  # SHA-256 of the cookie's token: the token itself is never stored
    username: str
    csrf_token: str
    created_at: float
    last_seen: float


@dataclass(frozen=True)
class CaseFilter:
    """Which cases a queue shows: statuses, a reason code, a batch label, and an age window (epoch seconds)."""

    statuses: tuple[str, ...] = (OPEN,)
    reason: str | None = None
    batch: str | None = None
    created_after: float | None = None
    created_before: float | None = None


class ReviewStore(ABC):
    """One interface for every engine; every method is one transaction and safe to call from several threads."""

    url: str

    # -- cases ------------------------------------------------------------------------------------------------

    @abstractmethod
    def add_case(self, case: ReviewCase, images: Iterable[CaseImage], actor: str) -> tuple[ReviewCase, bool]:
        """Store the case, its images and a CASE_QUEUED audit entry. A case whose id exists is left as it is and
        returned with ``False`` (a resumed batch queues each row once)."""

    @abstractmethod
    def get_case(self, case_id: str) -> ReviewCase:
        """The case; :class:`~facecompare.errors.ResourceNotFoundException` when there is none of that id."""

    @abstractmethod
    def list_cases(self, where: CaseFilter, offset: int = 0, limit: int = 100) -> list[ReviewCase]:
        """Cases oldest first (a queue is worked from its oldest case)."""

    @abstractmethod
    def count_cases(self, where: CaseFilter) -> int: ...

    @abstractmethod
    def neighbours(self, case: ReviewCase, where: CaseFilter) -> tuple[str | None, str | None]:
        """The ids of the cases just before and just after ``case`` in the queue ``where``."""

    @abstractmethod
    def get_image(self, case_id: str, role: str) -> CaseImage | None:
        """The image, or None once retention has erased it."""

    @abstractmethod
    def decide(self, case_id: str, action: str, actor: str, comment: str, version: int, now: float) -> ReviewCase:
        """Apply MATCH, NO_MATCH or ESCALATE made on ``version`` of the case and audit it with its previous state.
        :class:`CaseConflict` when the case changed since (another reviewer) or is already decided."""

    @abstractmethod
    def erase_images(self, created_before: float, actor: str, now: float) -> list[str]:
        """Delete the images of every case created before ``created_before``; audit IMAGES_ERASED for each case;
        return their ids. The case rows (the decision records) stay."""

    @abstractmethod
    def erase_reference(self, reference: str, actor: str, now: float, comment: str) -> tuple[list[str], list[str]]:
        """A data subject's erasure: delete the images of every case of ``reference`` now (IMAGES_ERASED audited
        with ``comment``); returns (the ids of all its cases, those whose images were erased now)."""

    @abstractmethod
    def reviewed_counts(self) -> dict[str, dict[str, int]]:
        """For each model: how many cases have each status."""

    @abstractmethod
    def reviewed_distances(self, model: str) -> tuple[list[float], list[bool]]:
        """Distances and the reviewers' labels (MATCH = same person) of the decided cases of ``model``."""

    @abstractmethod
    def batches(self) -> list[str]:
        """The batch labels of the cases, for the queue's filter."""

    # -- the audit log ------------------------------------------------------------------------------------------

    @abstractmethod
    def append_audit(self, actor: str, action: str, now: float, case_id: str | None = None,
                     previous_state: str | None = None, new_state: str | None = None,
                     comment: str | None = None) -> None: ...

    @abstractmethod
    def failed_sign_ins(self, username: str, since: float) -> int:
        """How many SIGN_IN_FAILED entries ``username`` has at or after ``since`` and after its last SIGN_IN (the
        lockout's count, read from the log so that every process and every restart sees the same)."""

    @abstractmethod
    def count_sign_in_attempt(self, key: str, now: float, since: float) -> int:
        """Count one sign-in attempt under ``key`` and return the key's count, atomically (concurrent attempts of
        every process each get their own number). A count whose window began at or before ``since`` starts again
        at 1 with its window at ``now``."""

    @abstractmethod
    def forget_sign_in_attempts(self, forget: Iterable[str] = (), undo: Iterable[str] = ()) -> None:
        """After a successful sign-in: drop the counts of ``forget``, take the attempt back from ``undo``."""

    @abstractmethod
    def delete_sign_in_attempts(self, before: float) -> int:
        """Drop the counts whose window began before ``before`` (they have ended)."""

    @abstractmethod
    def audit_log(self, case_id: str | None = None, before_seq: int | None = None,
                  limit: int = 200) -> list[AuditEntry]:
        """Entries newest first (all, or one case's), those numbered below ``before_seq``."""

    # -- reviewers and sessions -------------------------------------------------------------------------------

    @abstractmethod
    def add_reviewer(self, username: str, password_hash: str, now: float) -> Reviewer:
        """:class:`~facecompare.errors.ResourceAlreadyExistsException` when the name is taken."""

    @abstractmethod
    def reviewer(self, username: str) -> tuple[Reviewer, str] | None:
        """The reviewer and their password hash, or None."""

    @abstractmethod
    def list_reviewers(self) -> list[Reviewer]: ...

    @abstractmethod
    def update_reviewer(self, username: str, *, password_hash: str | None = None,
                        disabled: bool | None = None) -> None: ...

    @abstractmethod
    def add_session(self, session: Session) -> None: ...

    @abstractmethod
    def session(self, token_hash: str) -> Session | None: ...

    @abstractmethod
    def touch_session(self, token_hash: str, now: float) -> None: ...

    @abstractmethod
    def delete_sessions(self, *, token_hash: str | None = None, username: str | None = None,
                        idle_before: float | None = None, created_before: float | None = None) -> int:
        """Delete one session, a reviewer's sessions, or the sessions idle or old past a limit."""

    def close(self) -> None:  # noqa: B027 - engines without resources need not override
        """Release connections."""
