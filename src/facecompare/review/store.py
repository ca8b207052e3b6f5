"""The review store: its interface and records (:mod:`.interface`), re-exported here for callers, and
:func:`open_review_store`, which picks the engine from the collections' URL (``FACECOMPARE_COLLECTIONS``): the
review tables live in the same database as the face collections. This module imports no database driver: an
engine is imported when a store of it is opened."""

from __future__ import annotations

from ..db.url import POSTGRES, engine_of
from .interface import (
    ACTIONS,
    DECIDED,
    ESCALATED,
    OPEN,
    ROLES,
    STATUSES,
    AuditEntry,
    CaseConflict,
    CaseFilter,
    CaseImage,
    ReviewCase,
    Reviewer,
    ReviewStore,
    Session,
)

__all__ = ["ACTIONS", "DECIDED", "ESCALATED", "OPEN", "ROLES", "STATUSES", "AuditEntry", "CaseConflict", "CaseFilter",
           "CaseImage", "ReviewCase", "Reviewer", "ReviewStore", "Session", "open_review_store"]


def open_review_store(url: str | None = None) -> ReviewStore:
    """The review store in the database of ``url`` (the collections' URL: ``sqlite:///path`` or
    ``postgresql://...``; the collections' default file when empty)."""
    engine, url = engine_of(url)
    if engine != POSTGRES:
        from .sqlite import SqliteReviewStore

        return SqliteReviewStore(url)
    try:
        from .postgres import PostgresReviewStore
    except ImportError:
        from ..errors import ModelNotAvailableError

        raise ModelNotAvailableError("Review cases on PostgreSQL need psycopg 3 and psycopg_pool: pip install "
                                     "'facecompare[postgres]'.") from None
    return PostgresReviewStore(url)
