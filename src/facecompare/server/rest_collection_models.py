"""The REST API's types of the face collections (1:N search), their users and tags: request bodies and query
parameters, and responses (the verify/detect ones and what every route shares are :mod:`.rest_models`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .rest_models import Base64Image, FileImage, RequestBody, Threshold, refuse

COLLECTION_ID_PATTERN = r"^[a-zA-Z0-9_.\-]{1,255}$"
FACE_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
EXTERNAL_IMAGE_ID_PATTERN = r"^[a-zA-Z0-9_.\-:]{1,255}$"
QualityFilter = Literal["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"]
CollectionId = Annotated[str, Field(pattern=COLLECTION_ID_PATTERN, description="1-255 characters of [a-zA-Z0-9_.-]")]
FaceId = Annotated[str, Field(pattern=FACE_ID_PATTERN, description="a face id (UUID) from index")]
ExternalImageId = Annotated[str, Field(pattern=EXTERNAL_IMAGE_ID_PATTERN,
                                       description="your id for the image, kept with each of its faces "
                                                   "(1-255 characters of [a-zA-Z0-9_.-:])")]
MaxResults = Annotated[int, Field(ge=0, le=4096, description="page size (default 1000)")]
NextToken = Annotated[str, Field(max_length=255, description="next_token of the previous page")]
MaxMatches = Annotated[int, Field(ge=1, le=4096, description="at most this many matches")]


class CollectionCreate(RequestBody):
    """``POST /v1/collections``: a new, empty collection bound to the service's recognizer."""

    model_config = ConfigDict(extra="ignore", regex_engine="python-re")  # the tag key's look-ahead

    collection_id: CollectionId
    tags: dict[Annotated[str, Field(min_length=1, max_length=128, pattern=r"^(?!aws:)")],
               Annotated[str, Field(max_length=256)]] | None = Field(None, max_length=200)


class ListQuery(RequestBody):
    """The paging query parameters of ``GET /v1/collections`` and ``GET /v1/collections/{id}/faces``."""

    max_results: MaxResults | None = None
    next_token: NextToken | None = None


MAX_QUERY_FACE_IDS = 300  # face_id query parameters at most: a request line must fit in h11's 16 KiB


USER_ID_PATTERN = r"^[a-zA-Z0-9_.\-:]{1,128}$"
UserId = Annotated[str, Field(pattern=USER_ID_PATTERN, description="your id for the user (1-128 characters of "
                                                                   "[a-zA-Z0-9_.-:])")]
ClientRequestToken = Annotated[str, Field(pattern=r"^[a-zA-Z0-9\-_]{1,64}$",
                                          description="makes a retried request safe: the same token with the same "
                                                      "parameters is a replay (kept a day)")]
UserMatchThreshold = Annotated[float, Field(ge=0, le=100, description="the Similarity (0-100) from which a user "
                                                                      "matches")]


class FacesQuery(ListQuery):
    face_ids: list[FaceId] | None = Field(None, min_length=1, max_length=MAX_QUERY_FACE_IDS)
    user_id: UserId | None = Field(None, description="only the faces of this user")


class UserCreate(RequestBody):
    """``POST /v1/collections/{id}/users``: a new user without faces (Rekognition's CreateUser)."""

    user_id: UserId
    client_request_token: ClientRequestToken | None = None


class UsersQuery(RequestBody):
    """The paging query parameters of ``GET /v1/collections/{id}/users``."""

    max_results: Annotated[int, Field(ge=1, le=500, description="page size (default 500)")] | None = None
    next_token: NextToken | None = None


class UserFacesJson(RequestBody):
    """``POST`` / ``DELETE /v1/collections/{id}/users/{user_id}/faces``: associate or disassociate faces."""

    face_ids: list[FaceId] = Field(min_length=1, max_length=100)
    user_match_threshold: UserMatchThreshold = Field(75.0, description="associate: a face must match the user's "
                                                                       "faces this well (when it has some)")
    client_request_token: ClientRequestToken | None = None


class UserSearchJson(RequestBody):
    """``POST /v1/collections/{id}/users/search`` as JSON: an image in base64 (its largest face), a face id or a
    user id of the collection; exactly one of them."""

    image: Base64Image | None = None
    face_id: FaceId | None = None
    user_id: UserId | None = None
    threshold: UserMatchThreshold = 80.0
    max_users: Annotated[int, Field(ge=1, le=500, description="at most this many users (default 500)")] | None = None
    quality_filter: QualityFilter = Field("NONE", description="with an image: do not search a face below this bar")

    @model_validator(mode="after")
    def _one_source(self):
        if sum(x is not None for x in (self.image, self.face_id, self.user_id)) != 1:
            raise refuse("Request has invalid parameters: send exactly one of image (a JPEG or PNG), face_id and "
                          "user_id.")
        return self


class UserSearchForm(UserSearchJson):
    """``POST /v1/collections/{id}/users/search`` as multipart/form-data: the image as a file."""

    image: FileImage | None = None


class TagsJson(RequestBody):
    """``POST /v1/collections/{id}/tags``: tags to set (Rekognition's TagResource)."""

    model_config = ConfigDict(extra="ignore", regex_engine="python-re")  # the tag key's look-ahead

    tags: dict[Annotated[str, Field(min_length=1, max_length=128, pattern=r"^(?!aws:)")],
               Annotated[str, Field(max_length=256)]] = Field(max_length=200)


class TagKeysJson(RequestBody):
    """``DELETE /v1/collections/{id}/tags``: tag keys to remove (UntagResource)."""

    keys: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(max_length=200)


class IndexJson(RequestBody):
    """``POST /v1/collections/{id}/faces`` as JSON: the image in base64."""

    image: Base64Image
    external_image_id: ExternalImageId | None = None
    max_faces: Annotated[int, Field(ge=1, description="index at most this many faces (largest first; at most 100)")] \
        | None = None
    quality_filter: QualityFilter = Field("AUTO", description="faces below this bar are not indexed (default AUTO)")


class IndexForm(IndexJson):
    """``POST /v1/collections/{id}/faces`` as multipart/form-data: the image as a file."""

    image: FileImage


class DeleteFacesJson(RequestBody):
    """``DELETE /v1/collections/{id}/faces``: the ids of the faces to erase."""

    face_ids: list[FaceId] = Field(min_length=1, max_length=4096)


class SearchJson(RequestBody):
    """``POST /v1/collections/{id}/search`` as JSON: an image in base64 (its largest face is searched for) or
    the id of a face in the collection; exactly one of them."""

    image: Base64Image | None = None
    face_id: FaceId | None = None
    threshold: Threshold = 80.0
    max_faces: MaxMatches | None = None
    quality_filter: QualityFilter = Field("NONE", description="with an image: refuse a searched face below this bar")

    @model_validator(mode="after")
    def _one_source(self):
        if (self.image is None) == (self.face_id is None):
            raise refuse("Request has invalid parameters: send exactly one of image and face_id.")
        return self


class SearchForm(SearchJson):
    """``POST /v1/collections/{id}/search`` as multipart/form-data: the image as a file (or a face_id field)."""

    image: FileImage | None = None


class BoundingBox(BaseModel):
    width: float = Field(description="ratio of the image width")
    height: float = Field(description="ratio of the image height")
    left: float
    top: float


class Collection(BaseModel):
    """A collection."""

    collection_id: str
    face_model_version: str = Field(description="the recognizer the collection is bound to")
    face_count: int
    created_at: float = Field(description="epoch seconds")
    tags: dict[str, str] = Field(default_factory=dict)
    user_count: int = 0


class CollectionCreated(Collection):
    request_id: str


class CollectionDescription(Collection):
    request_id: str


class CollectionDeleted(BaseModel):
    collection_id: str
    deleted: bool = True
    request_id: str


class CollectionList(BaseModel):
    """A page of collections, in id order."""

    collections: list[Collection]
    next_token: str | None = Field(None, description="pass it as next_token for the next page; absent at the end")
    request_id: str


class StoredFace(BaseModel):
    """A face kept in a collection (never its image)."""

    face_id: str
    image_id: str = Field(description="one id per indexed image")
    external_image_id: str | None
    bounding_box: BoundingBox
    confidence: float = Field(description="the detector's confidence, 0-100")
    indexed_at: float = Field(description="epoch seconds")
    user_id: str | None = Field(None, description="the user the face is associated to")


class UnindexedFace(BaseModel):
    face: dict[str, Any] = Field(description="the face, as in /v1/detect")
    reasons: list[str] = Field(description="Rekognition's reasons: EXCEEDS_MAX_FACES, LOW_SHARPNESS, ...")


class IndexedFace(BaseModel):
    face: StoredFace
    detail: dict[str, Any] = Field(description="the face, as in /v1/detect")


class IndexResult(BaseModel):
    """The faces indexed (largest first) and those left out, with why."""

    faces: list[IndexedFace]
    unindexed: list[UnindexedFace]
    face_model_version: str
    image_width: int
    image_height: int
    request_id: str


class FaceList(BaseModel):
    """A page of a collection's faces, in face_id order."""

    faces: list[StoredFace]
    next_token: str | None = Field(None, description="pass it as next_token for the next page; absent at the end")
    face_model_version: str
    request_id: str


class UserFace(BaseModel):
    face_id: str
    user_id: str


class FacesDeleted(BaseModel):
    deleted: list[str] = Field(description="ids of the faces erased")
    not_found: list[str] = Field(description="ids that were not in the collection")
    associated: list[UserFace] = Field(default_factory=list, description="faces kept because a user holds them "
                                                                         "(disassociate them first)")
    request_id: str


class FaceMatch(BaseModel):
    similarity: float = Field(description="0-100")
    face: StoredFace


class SearchResult(BaseModel):
    """The faces of the collection that match the searched face, highest similarity first."""

    searched_face_id: str | None = Field(None, description="with face_id: the face searched for")
    searched_face: dict[str, Any] | None = Field(None, description="with an image: its largest face, as in /v1/detect")
    matches: list[FaceMatch]
    face_model_version: str
    request_id: str


class User(BaseModel):
    user_id: str
    status: Literal["CREATED", "ACTIVE", "CREATING", "UPDATING"] = Field(
        description="CREATED: no faces yet; ACTIVE: holds faces")


class UserCreated(User):
    request_id: str


class UserDeleted(BaseModel):
    user_id: str
    deleted: bool = True
    request_id: str


class UserList(BaseModel):
    """A page of a collection's users, in id order."""

    users: list[User]
    next_token: str | None = Field(None, description="pass it as next_token for the next page; absent at the end")
    request_id: str


class FaceRefusal(BaseModel):
    face_id: str
    reason: str = Field(description="FACE_NOT_FOUND, ASSOCIATED_TO_A_DIFFERENT_USER or LOW_MATCH_CONFIDENCE")
    user_id: str | None = Field(None, description="the other user, or this one for LOW_MATCH_CONFIDENCE")
    similarity: float | None = Field(None, description="LOW_MATCH_CONFIDENCE: the face's similarity to the user")


class UserFacesChanged(BaseModel):
    """The faces associated (or disassociated), those refused and why, and the user afterwards."""

    changed: list[str]
    refused: list[FaceRefusal]
    user: User
    request_id: str


class UserMatch(BaseModel):
    similarity: float = Field(description="0-100")
    user: User


class UserSearchResult(BaseModel):
    """The users that match, highest similarity first."""

    searched_face_id: str | None = None
    searched_user_id: str | None = None
    searched_face: dict[str, Any] | None = Field(None, description="with an image: its largest face, as in "
                                                                   "/v1/detect (absent when it failed the filter)")
    unsearched: list[UnindexedFace] = Field(default_factory=list, description="with an image: the faces not "
                                                                              "searched, and why")
    matches: list[UserMatch]
    face_model_version: str
    request_id: str


class Tags(BaseModel):
    tags: dict[str, str]
    request_id: str
