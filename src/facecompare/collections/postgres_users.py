"""The PostgreSQL engine's Users and tags (Rekognition's Users API over ``facecompare_users`` and
``facecompare_user_requests``, and a collection's tags): a part of
:class:`~facecompare.collections.postgres.PostgresStore`, which supplies ``_run`` (one transaction), the
collection's lock (``_lock``), ``_exists``, ``_not_found`` and ``_face``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence

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
from .schema import FACE_COLUMNS, REQUEST_TOKEN_SECONDS


class PostgresUsers:
    """Users and tags of :class:`~facecompare.collections.postgres.PostgresStore` (a mixin: see the module
    docstring)."""

    # users -------------------------------------------------------------------------------------------------

    @staticmethod
    def _replayed(cur, collection_id: str, request: tuple[str, str] | None) -> bool:
        """Whether ``request`` (token, digest) was seen; a token seen with another digest is refused. A new token
        is recorded (and the collection's tokens past their day forgotten). Called under the collection's lock."""
        if request is None:
            return False
        token, digest = request
        cur.execute("SELECT digest FROM facecompare_user_requests WHERE collection_id = %s AND token = %s",
                    (collection_id, token))
        row = cur.fetchone()
        if row is not None:
            if row[0] != digest:
                raise IdempotentParameterMismatchException(
                    f"The ClientRequestToken {quote_input(token)} was used with other parameters; use a new token "
                    "for a new request."
                )
            return True
        now = time.time()
        cur.execute("DELETE FROM facecompare_user_requests WHERE collection_id = %s AND created_at < %s",
                    (collection_id, now - REQUEST_TOKEN_SECONDS))
        cur.execute("INSERT INTO facecompare_user_requests (collection_id, token, digest, created_at) "
                    "VALUES (%s, %s, %s, %s)", (collection_id, token, digest, now))
        return False

    @staticmethod
    def _user(cur, collection_id: str, user_id: str) -> StoredUser | None:
        cur.execute("SELECT user_id, created_at, face_count FROM facecompare_users WHERE collection_id = %s AND "
                    "user_id = %s", (collection_id, user_id))
        row = cur.fetchone()
        return StoredUser(row[0], float(row[1]), int(row[2])) if row else None

    @staticmethod
    def _user_not_found(collection_id: str, user_id: str) -> ResourceNotFoundException:
        return ResourceNotFoundException(f"The user {quote_input(user_id)} does not exist in collection "
                                         f"{quote_input(collection_id)}.")

    def create_user(self, collection_id: str, user_id: str,
                    request: tuple[str, str] | None = None) -> StoredUser:
        def work(cur):
            self._lock(cur, collection_id)
            replay = self._replayed(cur, collection_id, request)
            existing = self._user(cur, collection_id, user_id)
            if replay:  # done before: succeed again, change nothing (not even a user deleted since)
                return existing or StoredUser(user_id, time.time(), 0)
            if existing is not None:
                raise ConflictException(f"The user {quote_input(user_id)} already exists in collection "
                                        f"{quote_input(collection_id)}.")
            created = time.time()
            cur.execute("INSERT INTO facecompare_users (collection_id, user_id, created_at) VALUES (%s, %s, %s)",
                        (collection_id, user_id, created))
            cur.execute("UPDATE facecompare_collections SET user_count = user_count + 1 WHERE collection_id = %s",
                        (collection_id,))
            return StoredUser(user_id, created, 0)

        return self._run(work)

    def delete_user(self, collection_id: str, user_id: str, request: tuple[str, str] | None = None) -> None:
        def work(cur):
            self._lock(cur, collection_id)
            if self._replayed(cur, collection_id, request):  # done before: succeed again, change nothing
                return
            if self._user(cur, collection_id, user_id) is None:
                raise self._user_not_found(collection_id, user_id)
            cur.execute("UPDATE facecompare_faces SET user_id = NULL WHERE collection_id = %s AND user_id = %s",
                        (collection_id, user_id))
            cur.execute("DELETE FROM facecompare_users WHERE collection_id = %s AND user_id = %s",
                        (collection_id, user_id))
            cur.execute("UPDATE facecompare_collections SET user_count = user_count - 1 WHERE collection_id = %s",
                        (collection_id,))

        self._run(work)

    def get_user(self, collection_id: str, user_id: str) -> StoredUser | None:
        def work(cur):
            self._exists(cur, collection_id)
            return self._user(cur, collection_id, user_id)

        return self._run(work)

    def list_users(self, collection_id: str, after: str | None = None, limit: int = 1000) -> list[StoredUser]:
        def work(cur):
            self._exists(cur, collection_id)
            cur.execute("SELECT user_id, created_at, face_count FROM facecompare_users WHERE collection_id = %s AND "
                        "(%s::text IS NULL OR user_id > %s) ORDER BY user_id LIMIT %s",
                        (collection_id, after, after, int(limit)))
            return [StoredUser(r[0], float(r[1]), int(r[2])) for r in cur.fetchall()]

        return self._run(work)

    def user_faces(self, collection_id: str, user_ids: Iterable[str]) -> list[StoredFace]:
        ids = sorted(set(user_ids))

        def work(cur):
            self._exists(cur, collection_id)
            if not ids:
                return []
            cur.execute(f"SELECT {FACE_COLUMNS} FROM facecompare_faces WHERE collection_id = %s AND "
                        "user_id = ANY(%s) ORDER BY user_id, face_id", (collection_id, ids))
            return [self._face(row) for row in cur.fetchall()]

        return self._run(work)

    @staticmethod
    def _owners(cur, collection_id: str, face_ids: list[str]) -> dict[str, str | None]:
        cur.execute("SELECT face_id, user_id FROM facecompare_faces WHERE collection_id = %s AND face_id = ANY(%s) "
                    "FOR UPDATE", (collection_id, face_ids))
        return dict(cur.fetchall())

    def associate_faces(self, collection_id: str, user_id: str, face_ids: Sequence[str],
                        request: tuple[str, str] | None = None,
                        max_faces: int = MAX_FACES_PER_USER) -> UserChange:
        wanted = list(dict.fromkeys(face_ids))

        def work(cur):
            self._lock(cur, collection_id)
            self._replayed(cur, collection_id, request)  # a replay associates again, which changes nothing
            user = self._user(cur, collection_id, user_id)
            if user is None:
                raise self._user_not_found(collection_id, user_id)
            changed, refused, new = plan_association(user, user_id, wanted,
                                                     self._owners(cur, collection_id, wanted), max_faces)
            if new:
                cur.execute("UPDATE facecompare_faces SET user_id = %s WHERE collection_id = %s AND face_id = ANY(%s)",
                            (user_id, collection_id, new))
                cur.execute("UPDATE facecompare_users SET face_count = face_count + %s WHERE collection_id = %s AND "
                            "user_id = %s", (len(new), collection_id, user_id))
            return UserChange(changed, refused, self._user(cur, collection_id, user_id))

        return self._run(work)

    def disassociate_faces(self, collection_id: str, user_id: str, face_ids: Sequence[str],
                           request: tuple[str, str] | None = None) -> UserChange:
        wanted = list(dict.fromkeys(face_ids))

        def work(cur):
            self._lock(cur, collection_id)
            self._replayed(cur, collection_id, request)
            if self._user(cur, collection_id, user_id) is None:
                raise self._user_not_found(collection_id, user_id)
            changed, refused = plan_disassociation(user_id, wanted, self._owners(cur, collection_id, wanted))
            if changed:
                cur.execute("UPDATE facecompare_faces SET user_id = NULL WHERE collection_id = %s AND "
                            "face_id = ANY(%s)", (collection_id, changed))
                cur.execute("UPDATE facecompare_users SET face_count = face_count - %s WHERE collection_id = %s AND "
                            "user_id = %s", (len(changed), collection_id, user_id))
            return UserChange(changed, refused, self._user(cur, collection_id, user_id))

        return self._run(work)

    # tags --------------------------------------------------------------------------------------------------

    def update_tags(self, collection_id: str, add: dict[str, str], remove: Iterable[str] = (),
                    max_tags: int = 200) -> dict[str, str]:
        remove = list(remove)

        def work(cur):
            cur.execute("SELECT tags FROM facecompare_collections WHERE collection_id = %s FOR NO KEY UPDATE",
                        (collection_id,))
            row = cur.fetchone()
            if row is None:
                raise self._not_found(collection_id)
            tags = dict(row[0] or {})
            tags.update(add)
            for key in remove:
                tags.pop(key, None)
            if len(tags) > max_tags:
                raise ServiceQuotaExceededException(
                    f"The collection {quote_input(collection_id)} would have {len(tags)} tags; the limit is {max_tags}."
                )
            cur.execute("UPDATE facecompare_collections SET tags = %s::jsonb WHERE collection_id = %s",
                        (json.dumps(tags), collection_id))
            return tags

        return self._run(work)
