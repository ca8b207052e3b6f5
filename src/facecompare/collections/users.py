"""Rekognition Users in a collection: one customer, up to 100 faces (CreateUser ... SearchUsersByImage), and tags.

:class:`UserOperations` is a part of :class:`~facecompare.collections.service.Collections` (a mixin: it uses the
collection's store, its search index and its paging). Choices where Rekognition's documentation is silent
(README, "Collections (1:N)", "Users"):

* Every change is synchronous: a user is CREATED until a face is associated, ACTIVE while it holds faces (never
  CREATING or UPDATING), and AssociateFaces and DisassociateFaces answer with the user's status afterwards.
* How a user scores against a face: :data:`USER_SCORING` (decided by ``benchmarks/bench_user_scoring.py`` on LFW,
  README): the distance of the probe to the mean of the user's (L2-normalised) embeddings, calibrated to a
  Similarity as a face's is. It beat the nearest face and the mix of both on every measure there.
* AssociateFaces checks a face against the user's faces before the request (``UserMatchThreshold``, default 75)
  only when the user has at least one face, as Rekognition documents; a face below it is LOW_MATCH_CONFIDENCE
  with its Confidence (the Similarity). A face already associated to this user counts as associated again.
* Search: candidate users are those of the faces the face index returns near the probe (the index is exact and
  kept in step with the store, so replicas agree), widened by :data:`CANDIDATE_MARGIN` of Similarity so that a
  user whose mean is nearer than any of its faces is not missed; each candidate is then scored on all its
  faces. SearchUsers by FaceId scores every user (the face's own user included: it is the user to associate it
  with); by UserId it leaves the searched user out and scores each user against the searched user's faces.
  ``MaxUsers`` defaults to its maximum, 500 (the threshold, not the count, bounds a search).
* ClientRequestToken (CreateUser, DeleteUser, AssociateFaces, DisassociateFaces; boto3 fills one in per call and
  keeps it across its retries): a request seen again with the same token and parameters is a replay (CreateUser
  and DeleteUser succeed again and change nothing; AssociateFaces and DisassociateFaces run again); the same token
  with other parameters is IdempotentParameterMismatchException.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ..checks import (
    check_client_request_token,
    check_collection_id,
    check_face_id,
    check_int,
    check_quality_filter,
    check_tags,
    check_threshold,
    check_user_face_ids,
    check_user_id,
)
from ..engine import MAX_FACES
from ..errors import InvalidParameterException, ResourceNotFoundException, quote_input
from ..faces import Face
from ..quality import quality_reasons
from .indexes import DEFAULT_MAX_MATCHES
from .store import MAX_FACES_PER_USER, CollectionInfo, Refusal, StoredFace, StoredUser, UserChange

MAX_USER_RESULTS = 500  # ListUsers MaxResults, SearchUsers MaxUsers
DEFAULT_ASSOCIATE_THRESHOLD = 75.0
DEFAULT_USER_MATCH_THRESHOLD = 80.0
#: "mean" (mean embedding; measured best), "best" (nearest face) or "both" (the mean of the two distances): README
USER_SCORING = "mean"
#: Similarity points below the threshold that a face may be and still bring its user in as a candidate
CANDIDATE_MARGIN = 20.0
MAX_TAGS = 200


@dataclass(frozen=True)
class UserMatch:
    user: StoredUser  # as its faces show it: its id and face count (its created_at is not read: 0.0)
    similarity: float


@dataclass
class AssociationResult:
    associated: list[str]
    refused: list[Refusal]
    low_confidence: list[tuple[str, float]]  # (face id, its Similarity to the user) under UserMatchThreshold
    user: StoredUser


@dataclass
class UserSearchByImageResult:
    searched_face: Face | None  # None when the largest face did not pass the QualityFilter
    matches: list[UserMatch] = field(default_factory=list)
    unsearched: list[tuple[Face, list[str]]] = field(default_factory=list)


def _request(token: str | None, *parts: object) -> tuple[str, str] | None:
    """(token, digest of the operation and its parameters) for the store, or None without a token."""
    if token is None:
        return None
    return token, hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()


def user_distance(metric: str, probe: np.ndarray, faces: np.ndarray, scoring: str = USER_SCORING) -> float:
    """The distance of one probe embedding to a user of ``faces`` (rows), in the collection's metric."""
    probe = np.asarray(probe, dtype=np.float64).reshape(-1)
    faces = np.asarray(faces, dtype=np.float64).reshape(-1, len(probe))
    if metric == "cosine":
        unit = faces / np.maximum(np.linalg.norm(faces, axis=1, keepdims=True), 1e-12)
        q = probe / max(float(np.linalg.norm(probe)), 1e-12)
        best = float(1.0 - (unit @ q).max())
        mean = unit.mean(axis=0)
        mean_d = float(1.0 - mean @ q / max(float(np.linalg.norm(mean)), 1e-12))
    else:
        best = float(np.linalg.norm(faces - probe, axis=1).min())
        mean_d = float(np.linalg.norm(faces.mean(axis=0) - probe))
    if scoring == "best":
        return max(best, 0.0)
    if scoring == "mean":
        return max(mean_d, 0.0)
    return max((best + mean_d) / 2, 0.0)


class UserOperations:
    """The Users API and tagging; mixed into :class:`~facecompare.collections.service.Collections`, which supplies
    ``store``, ``verifier``, ``sweep``, ``_bound``, the indexes (``_entry``, ``_synced``) and
    the page tokens (``_make_token``, ``_read_token``)."""

    user_scoring: str = USER_SCORING

    # -- users ----------------------------------------------------------------------------------------------

    def create_user(self, collection_id: str, user_id: str, client_request_token: str | None = None) -> StoredUser:
        info = self._collection(collection_id)
        user_id = check_user_id(user_id)
        token = check_client_request_token(client_request_token)
        return self.store.create_user(info.collection_id, user_id, _request(token, "CreateUser", user_id))

    def delete_user(self, collection_id: str, user_id: str, client_request_token: str | None = None) -> None:
        info = self._collection(collection_id)
        user_id = check_user_id(user_id)
        token = check_client_request_token(client_request_token)
        self.store.delete_user(info.collection_id, user_id, _request(token, "DeleteUser", user_id))

    def list_users(self, collection_id: str, next_token: str | None = None,
                   max_results: int | None = None) -> tuple[list[StoredUser], str | None]:

        info = self._collection(collection_id)
        limit = MAX_USER_RESULTS if max_results is None else check_int(max_results, "MaxResults", 1,
                                                                          MAX_USER_RESULTS)
        scope = info.collection_id + "\0" + info.generation
        after = None
        if next_token is not None:
            after = check_user_id(self._read_token(next_token, "u", scope), "NextToken")
        users = self.store.list_users(info.collection_id, after, limit + 1)
        more = len(users) > limit
        users = users[:limit]
        return users, (self._make_token("u", scope, users[-1].user_id) if more else None)

    def associate_faces(self, collection_id: str, user_id: str, face_ids: Iterable[str], *,
                        user_match_threshold: float = DEFAULT_ASSOCIATE_THRESHOLD,
                        client_request_token: str | None = None) -> AssociationResult:
        info = self._bound(collection_id)
        user_id = check_user_id(user_id)
        wanted = list(dict.fromkeys(check_user_face_ids(list(face_ids))))
        threshold = check_threshold(user_match_threshold, "UserMatchThreshold")
        token = check_client_request_token(client_request_token)
        request = _request(token, "AssociateFaces", user_id, ",".join(sorted(wanted)), threshold)
        user = self._user(info, user_id)
        low: list[tuple[str, float]] = []
        passing = wanted
        if user.face_count:
            own = self.store.user_faces(info.collection_id, [user_id])
            if own:
                matrix = np.stack([f.embedding for f in own])
                candidates = {f.face_id: f for f in self.store.get_faces(info.collection_id, wanted)}
                passing = []
                for face_id in wanted:
                    face = candidates.get(face_id)
                    if face is not None and face.user_id is None:
                        similarity = self._similarity(info, face.embedding, matrix)
                        if similarity < threshold:
                            low.append((face_id, similarity))
                            continue
                    passing.append(face_id)  # the store decides about the rest (not found, another user's)
        if passing:
            change = self.store.associate_faces(info.collection_id, user_id, passing, request)
        else:
            change = UserChange([], [], user)
        return AssociationResult(change.changed, change.refused, low, change.user)

    def disassociate_faces(self, collection_id: str, user_id: str, face_ids: Iterable[str], *,
                           client_request_token: str | None = None) -> UserChange:
        info = self._collection(collection_id)
        user_id = check_user_id(user_id)
        wanted = list(dict.fromkeys(check_user_face_ids(list(face_ids))))
        token = check_client_request_token(client_request_token)
        request = _request(token, "DisassociateFaces", user_id, ",".join(sorted(wanted)))
        return self.store.disassociate_faces(info.collection_id, user_id, wanted, request)

    # -- search ---------------------------------------------------------------------------------------------

    def search_users(self, collection_id: str, *, user_id: str | None = None, face_id: str | None = None,
                     user_match_threshold: float = DEFAULT_USER_MATCH_THRESHOLD,
                     max_users: int | None = None) -> list[UserMatch]:
        """SearchUsers: by ``face_id`` (every user, the face's own included) or by ``user_id`` (the other users,
        scored against the searched user's faces); exactly one of them."""

        info = self._bound(collection_id)
        if (user_id is None) == (face_id is None):
            raise InvalidParameterException("Request has invalid parameters: SearchUsers needs exactly one of "
                                            "UserId or FaceId.")
        threshold = check_threshold(user_match_threshold, "UserMatchThreshold")
        k = MAX_USER_RESULTS if max_users is None else check_int(max_users, "MaxUsers", 1, MAX_USER_RESULTS)
        if face_id is not None:
            check_face_id(face_id)
            found = self.store.get_faces(info.collection_id, [face_id])
            if not found:
                raise InvalidParameterException(
                    f"Request has invalid parameters: face {quote_input(face_id)} is not in collection "
                    f"{quote_input(collection_id)}."
                )
            return self._search_users(info, [found[0].embedding], k, threshold)
        user = self._user(info, check_user_id(user_id))
        faces = self.store.user_faces(info.collection_id, [user.user_id])
        if not faces:
            return []  # a user without faces looks like nobody
        return self._search_users(info, [f.embedding for f in faces], k, threshold, exclude=user.user_id)

    def search_users_by_image(self, collection_id: str, image, *,
                              user_match_threshold: float = DEFAULT_USER_MATCH_THRESHOLD,
                              max_users: int | None = None, quality_filter: str = "NONE") -> UserSearchByImageResult:
        """SearchUsersByImage: the largest face is searched; the others are UnsearchedFaces (FACE_NOT_LARGEST, and
        the QualityFilter's reasons). A largest face that fails the QualityFilter is not searched: no
        SearchedFace, no matches, and it is the first of the UnsearchedFaces with its reasons."""
        info = self._bound(collection_id)
        threshold = check_threshold(user_match_threshold, "UserMatchThreshold")
        k = MAX_USER_RESULTS if max_users is None else check_int(max_users, "MaxUsers", 1, MAX_USER_RESULTS)
        quality_filter = check_quality_filter(quality_filter)
        analyzed = self.verifier.analyze(image, embed=1, max_faces=MAX_FACES)
        face = analyzed.largest
        if face is None or face.embedding is None:
            raise InvalidParameterException(
                "Request has invalid parameters: no face was found in the image. Use a photo with one clearly "
                "visible face of at least 40x40 pixels."
            )
        min_px = self.verifier.settings.min_face_px
        others = [(f, ["FACE_NOT_LARGEST", *quality_reasons(quality_filter, f, min_px)]) for f in analyzed.faces[1:]]
        reasons = quality_reasons(quality_filter, face, min_px)
        if reasons:
            return UserSearchByImageResult(None, [], [(face, reasons), *others])
        matches = self._search_users(info, [face.embedding.vector], k, threshold)
        return UserSearchByImageResult(face, matches, others)

    def _search_users(self, info: CollectionInfo, probes: list[np.ndarray], k: int, threshold: float,
                      exclude: str | None = None) -> list[UserMatch]:
        """Users at or above ``threshold`` for the probes (one face, or a searched user's faces: a user's score is
        its best over the probes), most similar first, at most ``k``."""
        calibration = self.verifier.calibration
        floor = max(threshold - CANDIDATE_MARGIN, 0.0)
        max_distance = calibration.distance_at(floor) if floor > 0 else float("inf")
        entry = self._entry(info.collection_id)
        hits: list[tuple[str, float]] = []
        with entry.lock:
            index = self._synced(entry, info)
            for probe in probes:
                hits += index.search(np.asarray(probe, dtype=np.float32), DEFAULT_MAX_MATCHES, max_distance)
        near = self.store.get_faces(info.collection_id, {face_id for face_id, _ in hits})
        candidates = {f.user_id for f in near if f.user_id is not None and f.user_id != exclude}
        if not candidates:
            return []
        by_user: dict[str, list[StoredFace]] = {}
        # one read for every candidate's faces: a user deleted meanwhile has none (DeleteUser unlinks them in its
        # transaction), and a user with faces is ACTIVE, so the faces say all the answer needs of the user
        for face in self.store.user_faces(info.collection_id, candidates):
            by_user.setdefault(face.user_id, []).append(face)
        matches = []
        for uid, faces in by_user.items():
            matrix = np.stack([f.embedding for f in faces])
            similarity = max(self._similarity(info, probe, matrix) for probe in probes)
            if similarity >= threshold:
                matches.append(UserMatch(StoredUser(uid, 0.0, len(faces)), similarity))
        matches.sort(key=lambda m: (-m.similarity, m.user.user_id))
        return matches[:k]

    def _similarity(self, info: CollectionInfo, probe: np.ndarray, faces: np.ndarray) -> float:
        return self.verifier.calibration.similarity(user_distance(info.metric, probe, faces, self.user_scoring))

    # -- tags -----------------------------------------------------------------------------------------------

    def tag_collection(self, collection_id: str, tags: dict) -> dict[str, str]:

        info = self._collection(collection_id)
        return self.store.update_tags(info.collection_id, check_tags(tags), (), MAX_TAGS)

    def untag_collection(self, collection_id: str, keys: Iterable[str]) -> dict[str, str]:

        info = self._collection(collection_id)
        keys = list(keys)
        if len(keys) > MAX_TAGS:
            raise InvalidParameterException(f"Request has invalid parameters: TagKeys must have at most {MAX_TAGS} "
                                            "keys.")
        check_tags(dict.fromkeys(keys, ""))  # the keys' rules
        return self.store.update_tags(info.collection_id, {}, keys, MAX_TAGS)

    def collection_tags(self, collection_id: str) -> dict[str, str]:
        return dict(self._collection(collection_id).tags)

    # -- helpers --------------------------------------------------------------------------------------------

    def _collection(self, collection_id: str) -> CollectionInfo:

        self.sweep()
        return self.store.describe_collection(check_collection_id(collection_id))

    def _user(self, info: CollectionInfo, user_id: str) -> StoredUser:
        user = self.store.get_user(info.collection_id, user_id)
        if user is None:
            raise ResourceNotFoundException(f"The user {quote_input(user_id)} does not exist in collection "
                                            f"{quote_input(info.collection_id)}.")
        return user


__all__ = ["MAX_FACES_PER_USER", "AssociationResult", "UserMatch", "UserOperations", "UserSearchByImageResult",
           "check_client_request_token", "check_user_face_ids", "check_user_id", "user_distance"]
