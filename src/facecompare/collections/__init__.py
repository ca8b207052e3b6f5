"""Face collections (1:N): Rekognition's collection operations over a store (SQLite or PostgreSQL) and a search
index kept in step with it. The engine never sees SQL; the server never sees the store's tables."""

from .store import (
    DEFAULT_URL,
    Changes,
    CollectionInfo,
    CollectionStore,
    StoredFace,
    StoredUser,
    UserChange,
    open_store,
)

__all__ = ["DEFAULT_URL", "Changes", "CollectionInfo", "CollectionStore", "StoredFace", "StoredUser", "UserChange",
           "open_store"]
