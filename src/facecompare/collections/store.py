"""The collection store: its interface and records (:mod:`.interface`), re-exported here for callers, and
:func:`open_store`, which picks the engine from a URL (``FACECOMPARE_COLLECTIONS``).

Engines: ``sqlite:///path/to/file.db`` (the embedded default, :mod:`.sqlite`) and ``postgresql://...``
(:mod:`.postgres`, the ``postgres`` extra). This module imports no database driver: an engine is imported when a
store of it is opened.
"""

from __future__ import annotations

from ..db.url import DEFAULT_URL, POSTGRES, engine_of, redact_url
from .interface import (
    MAX_FACES_PER_USER,
    Changes,
    CollectionInfo,
    CollectionStore,
    Refusal,
    StoredFace,
    StoredUser,
    UserChange,
    plan_association,
    plan_disassociation,
)

__all__ = ["DEFAULT_URL", "MAX_FACES_PER_USER", "Changes", "CollectionInfo", "CollectionStore", "Refusal", "StoredFace",
           "StoredUser", "UserChange", "open_store", "plan_association", "plan_disassociation", "redact_url"]


def open_store(url: str | None = None) -> CollectionStore:
    """The engine for ``url`` (``sqlite:///path`` or ``postgresql://...``); DEFAULT_URL when empty."""
    engine, url = engine_of(url)
    if engine != POSTGRES:
        from .sqlite import SqliteStore

        return SqliteStore(url)
    try:
        from .postgres import PostgresStore
    except ImportError:
        from ..errors import ModelNotAvailableError

        raise ModelNotAvailableError("Collections on PostgreSQL need psycopg 3 and psycopg_pool: pip install "
                                     "'facecompare[postgres]'.") from None
    return PostgresStore(url)
