"""The SQLite engine's Users and tags (Rekognition's Users API over the ``users`` and ``user_requests`` tables, and
a collection's tags): a part of :class:`~facecompare.collections.sqlite.SqliteStore`, which supplies the
connection (``_write``, ``_read``), ``_collection_row`` and ``checkpoint``."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence

from ..db.sqlite import chunks
from ..errors import (
    ConflictException,
    IdempotentParameterMismatchException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
    quote_input,
)
from .interface import (
    MAX_FACES_PER_USER,
    StoredFace,
    StoredUser,
    UserChange,
    plan_association,
    plan_disassociation,
)
from .schema import FACE_COLUMNS, REQUEST_TOKEN_SECONDS, face_from_sqlite_row


class SqliteUsers:
    """Users and tags of :class:`~facecompare.collections.sqlite.SqliteStore` (a mixin: see the module docstring)."""

    # -- users --------------------------------------------------------------------------------------------------

    @staticmethod
    def _replayed(db: sqlite3.Connection, coll: int, request: tuple[str, str] | None) -> bool:
        """Whether ``request`` (token, digest) was seen; a token seen with another digest is refused. A new token
        is recorded (and tokens past their day forgotten)."""
        if request is None:
            return False
        token, digest = request
        row = db.execute("SELECT digest FROM user_requests WHERE coll = ? AND token = ?", (coll, token)).fetchone()
        if row is not None:
            if row[0] != digest:
                raise IdempotentParameterMismatchException(
                    f"The ClientRequestToken {quote_input(token)} was used with other parameters; use a new token "
                    "for a new request."
                )
            return True
        now = time.time()
        db.execute("DELETE FROM user_requests WHERE created_at < ?", (now - REQUEST_TOKEN_SECONDS,))
        db.execute("INSERT INTO user_requests (coll, token, digest, created_at) VALUES (?, ?, ?, ?)",
                   (coll, token, digest, now))
        return False

    @staticmethod
    def _user(db: sqlite3.Connection, coll: int, user_id: str) -> StoredUser | None:
        row = db.execute("SELECT user_id, created_at, face_count FROM users WHERE coll = ? AND user_id = ?",
                         (coll, user_id)).fetchone()
        return StoredUser(*row) if row else None

    @staticmethod
    def _user_not_found(collection_id: str, user_id: str) -> ResourceNotFoundException:
        return ResourceNotFoundException(f"The user {quote_input(user_id)} does not exist in collection "
                                         f"{quote_input(collection_id)}.")

    def create_user(self, collection_id: str, user_id: str,
                    request: tuple[str, str] | None = None) -> StoredUser:
        with self._write() as db:
            coll = self._collection_row(db, collection_id)[0]
            replay = self._replayed(db, coll, request)
            existing = self._user(db, coll, user_id)
            if replay:  # done before: succeed again, change nothing (not even a user deleted since)
                return existing or StoredUser(user_id, time.time(), 0)
            if existing is not None:
                raise ConflictException(f"The user {quote_input(user_id)} already exists in collection "
                                        f"{quote_input(collection_id)}.")
            created = time.time()
            db.execute("INSERT INTO users (coll, user_id, created_at) VALUES (?, ?, ?)", (coll, user_id, created))
            db.execute("UPDATE collections SET user_count = user_count + 1 WHERE id = ?", (coll,))
        return StoredUser(user_id, created, 0)

    def delete_user(self, collection_id: str, user_id: str, request: tuple[str, str] | None = None) -> None:
        with self._write() as db:
            coll = self._collection_row(db, collection_id)[0]
            if self._replayed(db, coll, request):  # done before: succeed again, change nothing
                return
            if self._user(db, coll, user_id) is None:
                raise self._user_not_found(collection_id, user_id)
            db.execute("UPDATE faces SET user_id = NULL WHERE coll = ? AND user_id = ?", (coll, user_id))
            db.execute("DELETE FROM users WHERE coll = ? AND user_id = ?", (coll, user_id))
            db.execute("UPDATE collections SET user_count = user_count - 1 WHERE id = ?", (coll,))
        self.checkpoint()

    def get_user(self, collection_id: str, user_id: str) -> StoredUser | None:
        with self._read() as db:
            return self._user(db, self._collection_row(db, collection_id)[0], user_id)

    def list_users(self, collection_id: str, after: str | None = None, limit: int = 1000) -> list[StoredUser]:
        with self._read() as db:
            coll = self._collection_row(db, collection_id)[0]
            rows = db.execute("SELECT user_id, created_at, face_count FROM users WHERE coll = ? AND user_id > ? "
                              "ORDER BY user_id LIMIT ?", (coll, after or "", int(limit))).fetchall()
        return [StoredUser(*row) for row in rows]

    def user_faces(self, collection_id: str, user_ids: Iterable[str]) -> list[StoredFace]:
        ids = sorted(set(user_ids))
        found: list[StoredFace] = []
        with self._read() as db:
            coll = self._collection_row(db, collection_id)[0]
            for chunk in chunks(ids):
                marks = ",".join("?" * len(chunk))
                found.extend(face_from_sqlite_row(row) for row in db.execute(
                    f"SELECT {FACE_COLUMNS} FROM faces WHERE coll = ? AND user_id IN ({marks})", (coll, *chunk)))
        found.sort(key=lambda f: (f.user_id, f.face_id))
        return found

    def _owners(self, db: sqlite3.Connection, coll: int, face_ids: list[str]) -> dict[str, str | None]:
        owners: dict[str, str | None] = {}
        for chunk in chunks(face_ids):
            marks = ",".join("?" * len(chunk))
            owners.update(db.execute(f"SELECT face_id, user_id FROM faces WHERE coll = ? AND face_id IN ({marks})",
                                     (coll, *chunk)).fetchall())
        return owners

    def associate_faces(self, collection_id: str, user_id: str, face_ids: Sequence[str],
                        request: tuple[str, str] | None = None,
                        max_faces: int = MAX_FACES_PER_USER) -> UserChange:
        wanted = list(dict.fromkeys(face_ids))
        with self._write() as db:
            coll = self._collection_row(db, collection_id)[0]
            self._replayed(db, coll, request)  # a replay associates again, which changes nothing
            user = self._user(db, coll, user_id)
            if user is None:
                raise self._user_not_found(collection_id, user_id)
            changed, refused, new = plan_association(user, user_id, wanted, self._owners(db, coll, wanted), max_faces)
            if new:
                db.executemany("UPDATE faces SET user_id = ? WHERE coll = ? AND face_id = ?",
                               [(user_id, coll, f) for f in new])
                db.execute("UPDATE users SET face_count = face_count + ? WHERE coll = ? AND user_id = ?",
                           (len(new), coll, user_id))
            user = self._user(db, coll, user_id)
        return UserChange(changed, refused, user)

    def disassociate_faces(self, collection_id: str, user_id: str, face_ids: Sequence[str],
                           request: tuple[str, str] | None = None) -> UserChange:
        wanted = list(dict.fromkeys(face_ids))
        with self._write() as db:
            coll = self._collection_row(db, collection_id)[0]
            self._replayed(db, coll, request)
            if self._user(db, coll, user_id) is None:
                raise self._user_not_found(collection_id, user_id)
            changed, refused = plan_disassociation(user_id, wanted, self._owners(db, coll, wanted))
            if changed:
                db.executemany("UPDATE faces SET user_id = NULL WHERE coll = ? AND face_id = ?",
                               [(coll, f) for f in changed])
                db.execute("UPDATE users SET face_count = face_count - ? WHERE coll = ? AND user_id = ?",
                           (len(changed), coll, user_id))
            user = self._user(db, coll, user_id)
        return UserChange(changed, refused, user)

    # -- tags ---------------------------------------------------------------------------------------------------

    def update_tags(self, collection_id: str, add: dict[str, str], remove: Iterable[str] = (),
                    max_tags: int = 200) -> dict[str, str]:
        with self._write() as db:
            row = self._collection_row(db, collection_id)
            tags = json.loads(row[8])
            tags.update(add)
            for key in remove:
                tags.pop(key, None)
            if len(tags) > max_tags:
                raise ServiceQuotaExceededException(
                    f"The collection {quote_input(collection_id)} would have {len(tags)} tags; the limit is {max_tags}."
                )
            db.execute("UPDATE collections SET tags = ? WHERE id = ?", (json.dumps(tags, sort_keys=True), row[0]))
        return tags
