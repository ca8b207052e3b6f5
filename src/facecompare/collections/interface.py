"""The collection store's interface: what is kept for 1:N search, the records one engine (SQLite, PostgreSQL)
stores and reads back, and the rules every engine applies the same way. It imports no engine and no database
driver; :func:`facecompare.collections.store.open_store` picks the engine from a URL.

A store holds rows you can read back; a search index is only a cache of them, kept in memory by each process and
rebuilt from the store (:meth:`CollectionStore.all_embeddings`) whenever it is lost or cannot catch up. Per
collection: its id, the recognizer it is bound to (``model``, its FaceModelVersion; a collection never mixes
models), the embedding metric and dimension, tags and creation time. Per face: its ids, the box, the detector's
confidence, the external image id, the embedding, the time it was indexed and the SHA-256 of the image it came
from (for IndexFaces' idempotency). **Never the image.** Deleting a face or a collection erases its rows.

Every change to a collection's faces gets a number from one increasing sequence (``seq``); a search index in any
process keeps the last number it has seen and asks :meth:`CollectionStore.changes_since` for what came after,
so that replicas sharing a database see each other's IndexFaces and DeleteFaces. A collection deleted and created
again under the same id has a new ``generation``, which tells an index to rebuild.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ServiceQuotaExceededException, quote_input


@dataclass(frozen=True)
class CollectionInfo:
    collection_id: str
    model: str  # the recognizer's name (Embedding.model); FaceModelVersion on the wire
    metric: str  # "cosine" or "euclidean" (Embedding.metric)
    dimension: int
    created_at: float  # epoch seconds
    generation: str  # changes when a collection of this id is deleted and created again
    face_count: int = 0
    tags: dict[str, str] = field(default_factory=dict)
    user_count: int = 0


@dataclass(frozen=True)
class StoredFace:
    face_id: str  # UUID
    image_id: str  # UUID, one per indexed image
    external_image_id: str | None
    bounding_box: tuple[float, float, float, float]  # width, height, left, top: ratios of the image
    confidence: float  # detector confidence, 0-100
    embedding: np.ndarray = field(repr=False, compare=False)  # float32, shape (dimension,)
    image_sha256: str = ""  # hex digest of the indexed image's bytes (never the image itself)
    indexed_at: float = 0.0  # epoch seconds
    user_id: str | None = None  # the user the face is associated to (AssociateFaces), if any


#: faces one user may hold (Rekognition's limit)
MAX_FACES_PER_USER = 100


@dataclass(frozen=True)
class StoredUser:
    """A Rekognition User: an id that aggregates up to :data:`MAX_FACES_PER_USER` of a collection's faces. Every
    change here is synchronous, so a user is never CREATING or UPDATING: CREATED until a face is associated,
    ACTIVE while it holds faces (and CREATED again once its last face is disassociated)."""

    user_id: str
    created_at: float  # epoch seconds
    face_count: int = 0

    @property
    def status(self) -> str:
        return "ACTIVE" if self.face_count else "CREATED"


@dataclass(frozen=True)
class Refusal:
    """A face AssociateFaces or DisassociateFaces did not change, in Rekognition's reason enum."""

    face_id: str
    reason: str  # FACE_NOT_FOUND, ASSOCIATED_TO_A_DIFFERENT_USER (LOW_MATCH_CONFIDENCE is the service's)
    user_id: str | None = None  # the other user, for ASSOCIATED_TO_A_DIFFERENT_USER


@dataclass(frozen=True)
class UserChange:
    """What AssociateFaces or DisassociateFaces did: the faces changed, those refused, the user afterwards."""

    changed: list[str]
    refused: list[Refusal]
    user: StoredUser


def plan_association(user: StoredUser, user_id: str, wanted: list[str], owners: dict[str, str | None],
                     max_faces: int) -> tuple[list[str], list[Refusal], list[str]]:
    """AssociateFaces' rules, the same for every engine: of the ``wanted`` faces (``owners``: face id -> its user, or
    None, for the faces that exist), those that end up with the user, those refused and why, and those newly
    associated; ServiceQuotaExceededException when the new ones would pass ``max_faces``."""
    changed, refused, new = [], [], []
    for face_id in wanted:
        if face_id not in owners:
            refused.append(Refusal(face_id, "FACE_NOT_FOUND"))
        elif owners[face_id] not in (None, user_id):
            refused.append(Refusal(face_id, "ASSOCIATED_TO_A_DIFFERENT_USER", owners[face_id]))
        else:
            changed.append(face_id)
            if owners[face_id] is None:
                new.append(face_id)
    if user.face_count + len(new) > max_faces:
        raise ServiceQuotaExceededException(
            f"The user {quote_input(user_id)} holds {user.face_count} faces; {len(new)} more would pass the "
            f"limit of {max_faces} faces per user."
        )
    return changed, refused, new


def plan_disassociation(user_id: str, wanted: list[str], owners: dict[str, str | None]
                        ) -> tuple[list[str], list[Refusal]]:
    """DisassociateFaces' rules, the same for every engine: of the ``wanted`` faces, those the user holds (to be
    released), and the others refused with their reason (held by another user, or not held at all)."""
    changed, refused = [], []
    for face_id in wanted:
        owner = owners.get(face_id)
        if owner == user_id:
            changed.append(face_id)
        elif owner is not None:
            refused.append(Refusal(face_id, "ASSOCIATED_TO_A_DIFFERENT_USER", owner))
        else:
            refused.append(Refusal(face_id, "FACE_NOT_FOUND"))
    return changed, refused


@dataclass(frozen=True)
class Changes:
    """What happened to a collection's faces after sequence number ``since``, up to ``seq``."""

    generation: str
    seq: int
    added: list[StoredFace]
    deleted: list[str]  # face ids


class CollectionStore(ABC):
    """One interface for every engine. Methods raise :class:`~facecompare.errors.ResourceNotFoundException` for
    an unknown collection id and :class:`~facecompare.errors.ResourceAlreadyExistsException` when creating one
    that exists. All methods are safe to call from several threads; an engine serialises what it must."""

    url: str

    @abstractmethod
    def create_collection(self, collection_id: str, model: str, metric: str, dimension: int,
                          tags: dict[str, str] | None = None) -> CollectionInfo: ...

    @abstractmethod
    def delete_collection(self, collection_id: str) -> None:
        """Erase the collection and every face in it (rows deleted, not marked)."""

    @abstractmethod
    def describe_collection(self, collection_id: str) -> CollectionInfo: ...

    @abstractmethod
    def list_collections(self, after: str | None = None, limit: int = 1000) -> list[CollectionInfo]:
        """Collections ordered by id, those with an id greater than ``after``, at most ``limit``."""

    @abstractmethod
    def add_faces(self, collection_id: str, faces: Sequence[StoredFace]) -> list[StoredFace]:
        """Store the faces in one transaction. A face whose ``face_id`` is already in the collection is not stored
        again: the stored row is returned in its place (IndexFaces is idempotent and boto3 retries)."""

    @abstractmethod
    def get_faces(self, collection_id: str, face_ids: Iterable[str]) -> list[StoredFace]:
        """The faces of those ids that exist, in ``face_id`` order."""

    @abstractmethod
    def list_faces(self, collection_id: str, after: str | None = None, limit: int = 1000,
                   user_id: str | None = None) -> list[StoredFace]:
        """Faces ordered by ``face_id``, those greater than ``after``, at most ``limit`` (of one user only, when
        ``user_id`` is given)."""

    @abstractmethod
    def delete_faces(self, collection_id: str, face_ids: Iterable[str]) -> list[str]:
        """Erase those faces; returns the ids that existed and are now gone. A face associated to a user is not
        erased (DeleteFaces refuses it with ASSOCIATED_TO_AN_EXISTING_USER: disassociate it first)."""

    # users (Rekognition's Users API). ``request`` is (ClientRequestToken, digest of the request's parameters) or
    # None: a token seen before with the same digest replays the request (CreateUser and DeleteUser then succeed
    # again and change nothing); with another digest it is IdempotentParameterMismatchException. Tokens are kept a
    # day, and only their digests (no user id in clear).

    @abstractmethod
    def create_user(self, collection_id: str, user_id: str,
                    request: tuple[str, str] | None = None) -> StoredUser:
        """A new user without faces; ConflictException when the id exists (unless the request is a replay)."""

    @abstractmethod
    def delete_user(self, collection_id: str, user_id: str, request: tuple[str, str] | None = None) -> None:
        """Disassociate the user's faces (they stay in the collection) and erase the user;
        ResourceNotFoundException for an unknown user (unless the request is a replay)."""

    @abstractmethod
    def get_user(self, collection_id: str, user_id: str) -> StoredUser | None: ...

    @abstractmethod
    def list_users(self, collection_id: str, after: str | None = None, limit: int = 1000) -> list[StoredUser]:
        """Users ordered by id, those greater than ``after``, at most ``limit``."""

    @abstractmethod
    def user_faces(self, collection_id: str, user_ids: Iterable[str]) -> list[StoredFace]:
        """Every face associated to those users, ordered by (user id, face id)."""

    @abstractmethod
    def associate_faces(self, collection_id: str, user_id: str, face_ids: Sequence[str],
                        request: tuple[str, str] | None = None,
                        max_faces: int = MAX_FACES_PER_USER) -> UserChange:
        """Associate the faces to the user in one transaction: a face not in the collection is FACE_NOT_FOUND, one
        of another user ASSOCIATED_TO_A_DIFFERENT_USER, one of this user already counts as associated.
        ServiceQuotaExceededException (nothing changed) when the user would pass ``max_faces``."""

    @abstractmethod
    def disassociate_faces(self, collection_id: str, user_id: str, face_ids: Sequence[str],
                           request: tuple[str, str] | None = None) -> UserChange:
        """The reverse: a face of another user is ASSOCIATED_TO_A_DIFFERENT_USER, one that is not in the
        collection or not associated is FACE_NOT_FOUND."""

    @abstractmethod
    def update_tags(self, collection_id: str, add: dict[str, str], remove: Iterable[str] = (),
                    max_tags: int = 200) -> dict[str, str]:
        """Set and remove tags of a collection in one transaction; the tags afterwards. More than ``max_tags``
        afterwards is ServiceQuotaExceededException (nothing changed)."""

    @abstractmethod
    def changes_since(self, collection_id: str, generation: str | None, seq: int) -> Changes | None:
        """Faces added and deleted after ``seq`` in this ``generation``; ``None`` when the caller must rebuild from
        :meth:`all_embeddings` (another generation, or the deletion log no longer reaches back to ``seq``)."""

    @abstractmethod
    def all_embeddings(self, collection_id: str) -> tuple[str, int, list[str], np.ndarray]:
        """(generation, seq, face ids, float32 matrix of their embeddings, one row per id) in one snapshot."""

    @abstractmethod
    def pagination_key(self) -> bytes:
        """The random key that signs pagination tokens: made with the schema and kept in the store, so that every
        process and replica on one database shares it (whatever URL each reaches it by) and no one can derive it."""

    @abstractmethod
    def first_use_of_signature(self, digest: bytes, until: float, now: float) -> bool:
        """True (and ``digest`` kept until ``until``) the first time a request signature's digest is noted, False
        when it is still kept: every process and replica on one store shares this memory, so a replayed signed
        IndexFaces is refused whichever of them it reaches. Digests kept past ``now`` are dropped on the way."""

    @abstractmethod
    def forget_signature(self, digest: bytes) -> None:
        """Drop a noted digest (its request failed and may be sent again)."""

    def close(self) -> None:  # noqa: B027 - engines without resources need not override
        """Release connections."""
