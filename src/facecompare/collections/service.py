"""Collections (1:N search): Rekognition's collection operations on the dataclasses, over a store and a search index.

One :class:`Collections` object serves every surface (the AWS endpoint, the REST API, the CLI, ``dedupe``). It
never sees HTTP; the Rekognition response dictionaries are built from its results by
:mod:`facecompare.rekognition`.

Choices where Rekognition's documentation is silent or where this engine differs (README, "Collections (1:N)"):

* A collection is bound to the recognizer that created it (its name is the FaceModelVersion, with its metric and
  dimension); indexing into or searching a collection with another recognizer is InvalidParameterException.
* IndexFaces' ids are deterministic (uuid5), which is what makes a retried IndexFaces store nothing new: ImageId
  from (image SHA-256, ExternalImageId), FaceId from (image SHA-256, ExternalImageId, model, the face's box).
  The same image indexed into two collections gets the same ids there, as Rekognition documents.
* With more faces than MaxFaces, the faces that pass the strictest QualityFilter level go first, then the
  largest; the others are UnindexedFaces with EXCEEDS_MAX_FACES. FaceRecords are largest first.
* Page size: :data:`DEFAULT_PAGE_SIZE` (1000) when MaxResults is omitted or 0 (0 would otherwise be a page
  that never moves). Search: :data:`DEFAULT_MAX_MATCHES` (4096, the model's maximum) when MaxFaces is omitted:
  the threshold, not the count, is what bounds a search.
* Pagination tokens are ``v1:<kind>:<mac>:<position>``: the last id of the page (a collection id longer than
  fits is cut and followed by a hash of the whole id) and an HMAC over the kind, the collection and the
  position, keyed by a random secret kept in the store (:meth:`CollectionStore.pagination_key`, made with the
  schema): replicas sharing a store accept each other's tokens, and no one without the database can forge one.
  The MAC catches tokens that were edited, cut, or carried to another collection.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..checks import (
    check_collection_id,
    check_external_image_id,
    check_face_id,
    check_face_ids,
    check_int,
    check_quality_filter,
    check_tags,
    check_threshold,
    check_user_id,
)
from ..engine import MAX_FACES, Verifier
from ..errors import (
    InvalidParameterException,
    ServiceQuotaExceededException,
    quote_input,
)
from ..faces import Face
from ..images import DecodedImage, decode_bytes, read_source_bytes
from ..quality import quality_reasons, strictest_level_passed
from ..settings import Settings
from .indexes import DEFAULT_MAX_MATCHES, MAX_MATCHES, IndexEntry, IndexFactory, IndexKeeping, default_index_factory
from .paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Paging  # noqa: F401 - the page sizes are imported from here
from .store import CollectionInfo, CollectionStore, Refusal, StoredFace
from .users import UserOperations

DEFAULT_MAX_FACES_PER_COLLECTION = 20_000_000  # Rekognition's documented maximum

REASONS = ("EXCEEDS_MAX_FACES", "EXTREME_POSE", "LOW_BRIGHTNESS", "LOW_SHARPNESS", "LOW_CONFIDENCE",
           "SMALL_BOUNDING_BOX", "LOW_FACE_QUALITY")
#: the namespace of facecompare's deterministic ids (uuid5)
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/facecompare/collections")


@dataclass(frozen=True)
class IndexedFace:
    stored: StoredFace
    face: Face


@dataclass(frozen=True)
class UnindexedFace:
    face: Face
    reasons: list[str]


@dataclass
class IndexResult:
    records: list[IndexedFace]  # largest first
    unindexed: list[UnindexedFace]
    image_width: int
    image_height: int


@dataclass(frozen=True)
class FaceMatch:
    face: StoredFace
    similarity: float


@dataclass
class SearchResult:
    searched_face: Face
    matches: list[FaceMatch] = field(default_factory=list)


def image_digest(image: object, settings: Settings) -> tuple[str, object]:
    """(SHA-256 hex of the image's bytes, the image to analyse). Bytes are hashed as given; a file or stream is
    read once, within the file size limit and with the loader's errors, hashed and decoded from those bytes; a
    decoded image by its encoded bytes when it kept them, else by its pixels; a PIL image or an array by its
    pixels and shape."""
    h = hashlib.sha256()
    if isinstance(image, (bytes, bytearray, memoryview)):
        h.update(image)
        return h.hexdigest(), image
    if isinstance(image, (str, os.PathLike)) or hasattr(image, "read"):
        data = read_source_bytes(image, settings)
        h.update(data)
        return h.hexdigest(), decode_bytes(data, settings)
    if isinstance(image, DecodedImage):
        encoded = image.encoded  # the JPEG bytes it decodes from, when it has them
        if encoded is not None:
            h.update(encoded)
            return h.hexdigest(), image
        pil = image.raster
        if pil is not None:
            h.update(f"{pil.mode}{pil.size}".encode())
            h.update(pil.tobytes())
            return h.hexdigest(), image
    if isinstance(image, Image.Image):
        h.update(f"{image.mode}{image.size}".encode())
        h.update(image.tobytes())
        return h.hexdigest(), image
    if isinstance(image, np.ndarray):
        h.update(f"{image.dtype}{image.shape}".encode())
        h.update(np.ascontiguousarray(image).tobytes())
        return h.hexdigest(), image
    raise InvalidParameterException(f"Cannot index an image of type {type(image).__name__}.")


class Collections(UserOperations, IndexKeeping, Paging):
    """The collection operations (see the module docstring; Users and tags: :mod:`.users`; the in-process indexes:
    :mod:`.indexes`; page tokens: :mod:`.paging`). Thread-safe; one per process is enough."""


    def __init__(self, verifier: Verifier, store: CollectionStore, *, approximate_above: int | None = None,
                 index_factory: IndexFactory | None = None,
                 max_faces_per_collection: int = DEFAULT_MAX_FACES_PER_COLLECTION) -> None:
        self.verifier = verifier
        self.store = store
        self.approximate_above = approximate_above
        self.index_factory = index_factory or default_index_factory(approximate_above)
        self.max_faces_per_collection = max_faces_per_collection
        self._indexes: dict[str, IndexEntry] = {}
        self._indexes_lock = threading.Lock()
        self._swept = time.monotonic()
        self._token_key = store.pagination_key()

    @property
    def model_version(self) -> str:
        return self.verifier.recognizer.name

    # -- collections ----------------------------------------------------------------------------------------------

    def create_collection(self, collection_id: str, tags: dict | None = None) -> CollectionInfo:
        check_collection_id(collection_id)
        tags = check_tags(tags)
        recognizer = self.verifier.recognizer
        if not recognizer.dimension:  # an ONNX recognizer knows its dimension once loaded
            recognizer.load()
        return self.store.create_collection(collection_id, recognizer.name, recognizer.metric, recognizer.dimension,
                                            tags)

    def delete_collection(self, collection_id: str) -> None:
        self.store.delete_collection(check_collection_id(collection_id))
        with self._indexes_lock:
            entry = self._indexes.pop(collection_id, None)
        if entry is not None:
            with entry.lock:
                entry.index = None  # its vectors go with it

    def describe_collection(self, collection_id: str) -> CollectionInfo:
        self.sweep()
        return self.store.describe_collection(check_collection_id(collection_id))

    def list_collections(self, next_token: str | None = None,
                         max_results: int | None = None) -> tuple[list[CollectionInfo], str | None]:
        self.sweep()
        limit = self._page_size(max_results)
        after = skip_through = None
        if next_token is not None:
            after, skip_through = self._collection_position(self._read_token(next_token, "c", ""))
        found: list[CollectionInfo] = []
        while len(found) < limit + 1:
            batch = self.store.list_collections(after, limit + 1 - len(found) + (1 if skip_through else 0))
            if not batch:
                break
            after = batch[-1].collection_id
            for info in batch:
                if skip_through is not None:  # a long id's page ended inside the ids sharing its cut prefix
                    if self._hash(info.collection_id) == skip_through:
                        skip_through = None
                    continue
                found.append(info)
        page, more = found[:limit], len(found) > limit
        token = self._make_token("c", "", self._collection_token_position(page[-1].collection_id)) if more else None
        return page, token

    # -- faces ----------------------------------------------------------------------------------------------------

    def _bound(self, collection_id: str) -> CollectionInfo:
        """The collection, refused when it holds another recognizer's embeddings than this service makes."""
        self.sweep()
        info = self.store.describe_collection(check_collection_id(collection_id))
        self.check_model(info)
        return info

    def check_model(self, info: CollectionInfo) -> None:
        recognizer = self.verifier.recognizer
        if info.model != recognizer.name or info.metric != recognizer.metric or (
                recognizer.dimension and info.dimension != recognizer.dimension):
            raise InvalidParameterException(
                f"Collection {quote_input(info.collection_id)} holds faces of model {info.model!r} ({info.metric}, "
                f"{info.dimension}-d); this service runs {recognizer.name!r}. Embeddings of different models are "
                f"not comparable: serve this collection with the recognizer {info.model!r} "
                "(FACECOMPARE_RECOGNIZER), or index the faces again into a new collection."
            )

    def index_faces(self, collection_id: str, image, *, external_image_id: str | None = None,
                    max_faces: int | None = None, quality_filter: str = "AUTO") -> IndexResult:
        info = self._bound(collection_id)
        external_image_id = check_external_image_id(external_image_id)
        if max_faces is not None:
            check_int(max_faces, "MaxFaces", 1, None)
        quality_filter = check_quality_filter(quality_filter)
        digest, image = image_digest(image, self.verifier.settings)
        analyzed = self.verifier.analyze(image, embed=MAX_FACES, max_faces=MAX_FACES)
        min_px = self.verifier.settings.min_face_px
        unindexed: list[UnindexedFace] = []
        passing: list[Face] = []
        for face in analyzed.faces:
            reasons = quality_reasons(quality_filter, face, min_px)
            if face.embedding is None and not reasons:
                reasons = ["LOW_FACE_QUALITY"]
            if reasons:
                unindexed.append(UnindexedFace(face, reasons))
            else:
                passing.append(face)
        if max_faces is not None and len(passing) > max_faces:
            ranked = sorted(passing, key=lambda f: (strictest_level_passed(f), f.bounding_box.area), reverse=True)
            kept = {id(f) for f in ranked[:max_faces]}
            unindexed.extend(UnindexedFace(f, ["EXCEEDS_MAX_FACES"]) for f in passing if id(f) not in kept)
            passing = [f for f in passing if id(f) in kept]
        image_id = str(uuid.uuid5(ID_NAMESPACE, f"image\n{digest}\n{external_image_id or ''}"))
        now = time.time()
        candidates = [StoredFace(
            face_id=self.face_id(digest, external_image_id, info.model, face),
            image_id=image_id, external_image_id=external_image_id,
            bounding_box=(face.bounding_box.width, face.bounding_box.height, face.bounding_box.left,
                          face.bounding_box.top),
            confidence=float(face.confidence), embedding=np.asarray(face.embedding.vector, dtype=np.float32),
            image_sha256=digest, indexed_at=now) for face in passing]
        if candidates:
            existing = {f.face_id for f in self.store.get_faces(info.collection_id, [c.face_id for c in candidates])}
            new = sum(c.face_id not in existing for c in candidates)
            if new and info.face_count + new > self.max_faces_per_collection:
                raise ServiceQuotaExceededException(
                    f"The collection {quote_input(info.collection_id)} holds {info.face_count:,} faces; {new} more "
                    f"would pass the limit of {self.max_faces_per_collection:,} faces per collection. Delete faces or "
                    "use another collection."
                )
        stored = self.store.add_faces(info.collection_id, candidates) if candidates else []
        records = [IndexedFace(s, f) for s, f in zip(stored, passing)]
        return IndexResult(records, unindexed, analyzed.width, analyzed.height)

    @staticmethod
    def face_id(digest: str, external_image_id: str | None, model: str, face: Face) -> str:
        b = face.bounding_box
        box = f"{b.width:.4f},{b.height:.4f},{b.left:.4f},{b.top:.4f}"  # 4 digits: stable across runs
        return str(uuid.uuid5(ID_NAMESPACE, f"face\n{digest}\n{external_image_id or ''}\n{model}\n{box}"))

    def list_faces(self, collection_id: str, next_token: str | None = None, max_results: int | None = None,
                   face_ids: Iterable[str] | None = None,
                   user_id: str | None = None) -> tuple[list[StoredFace], str | None]:
        """ListFaces: a page of the collection's faces (those of ``face_ids``, of ``user_id``, or both)."""

        self.sweep()
        info = self.store.describe_collection(check_collection_id(collection_id))
        limit = self._page_size(max_results)
        scope = info.collection_id + "\0" + info.generation
        if user_id is not None:
            scope += "\0" + check_user_id(user_id)
        after = None
        if next_token is not None:
            after = self._read_token(next_token, "f", scope)
            check_face_id(after, "NextToken")
        if face_ids is not None:
            wanted = sorted(set(check_face_ids(list(face_ids))))
            wanted = [f for f in wanted if after is None or f > after]
            faces = self.store.get_faces(info.collection_id, wanted)  # at most 4096, in face_id order
            if user_id is not None:
                faces = [f for f in faces if f.user_id == user_id]
        else:
            faces = self.store.list_faces(info.collection_id, after, limit + 1, user_id=user_id)
        more = len(faces) > limit
        faces = faces[:limit]
        last = faces[-1].face_id if more else None
        token = self._make_token("f", scope, last) if more else None
        return faces, token

    def delete_faces(self, collection_id: str, face_ids: Iterable[str]) -> tuple[list[str], list[str]]:
        """DeleteFaces: (the ids erased, the ids not erased: not in the collection, or held by a user; see
        :meth:`delete_faces_with_reasons` for which)."""
        deleted, refused = self.delete_faces_with_reasons(collection_id, face_ids)
        return deleted, [r.face_id for r in refused]

    def delete_faces_with_reasons(self, collection_id: str,
                                  face_ids: Iterable[str]) -> tuple[list[str], list[Refusal]]:
        """DeleteFaces: (the ids erased, the faces refused: FACE_NOT_FOUND, or ASSOCIATED_TO_AN_EXISTING_USER with
        the user's id for a face that a user holds; disassociate it first)."""
        self.sweep()
        check_collection_id(collection_id)
        wanted = list(dict.fromkeys(check_face_ids(list(face_ids))))
        deleted = self.store.delete_faces(collection_id, wanted)
        if deleted:
            self._forget(collection_id)
        gone = set(deleted)
        kept = [f for f in wanted if f not in gone]
        owners = {f.face_id: f.user_id for f in self.store.get_faces(collection_id, kept)} if kept else {}
        return deleted, [Refusal(f, "ASSOCIATED_TO_AN_EXISTING_USER", owners[f]) if owners.get(f)
                         else Refusal(f, "FACE_NOT_FOUND") for f in kept]

    # -- search ---------------------------------------------------------------------------------------------------

    def search_faces(self, collection_id: str, face_id: str, *, max_faces: int | None = None,
                     threshold: float = 80.0) -> list[FaceMatch]:
        info = self._bound(collection_id)
        check_face_id(face_id)
        k = DEFAULT_MAX_MATCHES if max_faces is None else check_int(max_faces, "MaxFaces", 1, MAX_MATCHES)
        threshold = check_threshold(threshold, "FaceMatchThreshold")
        found = self.store.get_faces(info.collection_id, [face_id])
        if not found:
            # SearchFaces' modelled errors are InvalidParameterException and ResourceNotFoundException, and the
            # latter names the collection (it exists here); an id that is not in it is a bad parameter
            raise InvalidParameterException(
                f"Request has invalid parameters: face {quote_input(face_id)} is not in collection "
                f"{quote_input(collection_id)}."
            )
        return self._search(info, found[0].embedding, k, threshold, exclude=face_id)

    def search_faces_by_image(self, collection_id: str, image, *, max_faces: int | None = None,
                              threshold: float = 80.0, quality_filter: str = "NONE") -> SearchResult:
        info = self._bound(collection_id)
        k = DEFAULT_MAX_MATCHES if max_faces is None else check_int(max_faces, "MaxFaces", 1, MAX_MATCHES)
        threshold = check_threshold(threshold, "FaceMatchThreshold")
        quality_filter = check_quality_filter(quality_filter)
        analyzed = self.verifier.analyze(image, embed=1, max_faces=1)
        face = analyzed.largest
        if face is None or face.embedding is None:
            raise InvalidParameterException(
                "Request has invalid parameters: no face was found in the image. Use a photo with one clearly "
                "visible face of at least 40x40 pixels."
            )
        reasons = quality_reasons(quality_filter, face, self.verifier.settings.min_face_px)
        if reasons:
            raise InvalidParameterException(
                f"Request has invalid parameters: the largest face does not pass QualityFilter {quality_filter} "
                f"({', '.join(reasons)})."
            )
        return SearchResult(face, self._search(info, face.embedding.vector, k, threshold))

    def _search(self, info: CollectionInfo, vector: np.ndarray, k: int, threshold: float,
                exclude: str | None = None) -> list[FaceMatch]:
        calibration = self.verifier.calibration
        max_distance = calibration.distance_at(threshold) if threshold > 0 else float("inf")
        entry = self._entry(info.collection_id)
        with entry.lock:
            index = self._synced(entry, info)
            hits = index.search(np.asarray(vector, dtype=np.float32), k, max_distance, exclude)
        faces = {f.face_id: f for f in self.store.get_faces(info.collection_id, [i for i, _ in hits])}
        matches = []
        for face_id, d in hits:
            similarity = calibration.similarity(d)
            if face_id in faces and similarity >= threshold:  # a face deleted meanwhile is left out
                matches.append(FaceMatch(faces[face_id], similarity))
        matches.sort(key=lambda m: m.similarity, reverse=True)
        return matches
