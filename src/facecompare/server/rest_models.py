"""The REST API's types: request bodies (JSON with base64, or multipart/form-data), responses and the error
shape. They are the one source of both the request validation (:func:`validate`) and the OpenAPI document
(FastAPI and pydantic generate it from them)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..checks import check_threshold
from ..errors import InvalidParameterException, quote_input

_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off", ""})
_INVALID = "invalid_parameter"  # the pydantic error type of a refusal that carries our own message


def rest_threshold(value) -> float:
    """A JSON number, or a numeric string (all multipart sends), from 0 to 100."""
    if isinstance(value, str):
        try:
            value = float(value)  # "nan", "inf" and "1e400" parse; check_threshold refuses them
        except ValueError:
            raise InvalidParameterException(
                f"Request has invalid parameters: threshold must be a number from 0 to 100 "
                f"(got {quote_input(value)})."
            ) from None
    return check_threshold(value, "threshold")  # refuses booleans, NaN, infinities, huge integers


def rest_flag(value, name: str) -> bool:
    """A JSON boolean, or one of the usual strings (multipart); anything else is refused, not taken as false."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidParameterException(
        f"Request has invalid parameters: {name} must be true or false (got {quote_input(value)})."
    )


def _refuse(message: str) -> PydanticCustomError:
    return PydanticCustomError(_INVALID, "{message}", {"message": message})


def _threshold(value: Any) -> float:
    try:
        return rest_threshold(value)
    except InvalidParameterException as exc:
        raise _refuse(exc.message) from None


def _flag(value: Any, info: ValidationInfo) -> bool:
    try:
        return rest_flag(value, info.field_name)
    except InvalidParameterException as exc:
        raise _refuse(exc.message) from None


def _nonempty(data: bytes, name: str) -> bytes:
    if not data:
        raise _refuse(f"Request has invalid parameters: {name} is empty: send a JPEG or PNG image.")
    return data


def _base64_image(value: Any, info: ValidationInfo) -> bytes:
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise _refuse(f"{info.field_name} is not valid base64.") from None
    return _nonempty(data, info.field_name)


def _file_image(value: Any, info: ValidationInfo) -> bytes:
    return _nonempty(value, info.field_name)  # the bytes of an uploaded file (text fields never get here)


Base64Image = Annotated[bytes, Field(min_length=1, json_schema_extra={"format": "byte"},
                                     description="a JPEG, PNG, HEIC, WebP, AVIF or PDF image, base64"),
                      BeforeValidator(_base64_image)]
FileImage = Annotated[bytes, Field(min_length=1, description="a JPEG, PNG, HEIC, WebP, AVIF or PDF image file"),
                      BeforeValidator(_file_image)]
Threshold = Annotated[float, Field(ge=0, le=100, description="the similarity (0-100) from which two faces match; "
                                                             "a number, or a numeric string"),
                      BeforeValidator(_threshold)]
Flag = Annotated[bool, Field(description="also return the images with the faces drawn, as a base64 PNG "
                                         "(true/false, 1/0, yes/no, on/off)"), BeforeValidator(_flag)]
QueueReview = Annotated[Literal["none", "review", "review_or_no_match"],
                       Field(description="keep the case and its two images for a person to review in the console "
                                         "(/console): `review` when the decision is REVIEW, `review_or_no_match` for "
                                         "NO_MATCH too. The images are erased after FACECOMPARE_REVIEW_RETENTION_DAYS "
                                         "(default 30). Default `none`: nothing is stored.")]
ReviewLabel = Annotated[str | None, Field(None, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$",
                                          description="with queue_review: a label shown in the console and used to "
                                                      "filter its queue")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")  # other members are ignored (multipart: at most 10 fields)


class VerifyJson(_Body):
    """``POST /v1/verify`` as JSON: both images in base64."""

    selfie: Base64Image
    document: Base64Image
    threshold: Threshold = 80.0
    annotate: Flag = False
    queue_review: QueueReview = "none"
    review_batch: ReviewLabel = None
    review_reference: ReviewLabel = None


class VerifyForm(_Body):
    """``POST /v1/verify`` as multipart/form-data: both images as files."""

    selfie: FileImage
    document: FileImage
    threshold: Threshold = 80.0
    annotate: Flag = False
    queue_review: QueueReview = "none"
    review_batch: ReviewLabel = None
    review_reference: ReviewLabel = None


class DetectJson(_Body):
    """``POST /v1/detect`` as JSON: the image in base64."""

    image: Base64Image
    annotate: Flag = False


class DetectForm(_Body):
    """``POST /v1/detect`` as multipart/form-data: the image as a file."""

    image: FileImage
    annotate: Flag = False


class Verification(BaseModel):
    """The KYC decision."""

    decision: Literal["MATCH", "NO_MATCH", "REVIEW"]
    similarity: float | None = Field(description="0-100, None when there is no pair of faces to compare")
    distance: float | None
    threshold: float
    review_band: list[float]
    reasons: list[str] = Field(description="why the decision is not MATCH, or needs a person (REVIEW)")
    notes: list[str]
    selfie_face: dict[str, Any] | None
    document_face: dict[str, Any] | None
    selfie_faces: int
    document_faces: int
    annotated_png: str | None = Field(None, description="base64 PNG, when annotate=true")
    review_case_id: str | None = Field(None, description="the review case kept for this call (queue_review), "
                                                         "shown in the console at /console/cases/{id}")
    request_id: str


class Detection(BaseModel):
    """The faces in an image, largest first, in Rekognition's FaceDetail shape."""

    faces: list[dict[str, Any]]
    width: int
    height: int
    rotation: int = Field(description="the EXIF rotation applied, in degrees")
    annotated_png: str | None = Field(None, description="base64 PNG, when annotate=true")
    request_id: str


# -- collections (1:N search) ---------------------------------------------------------------------------------

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


class CollectionCreate(_Body):
    """``POST /v1/collections``: a new, empty collection bound to the service's recognizer."""

    model_config = ConfigDict(extra="ignore", regex_engine="python-re")  # the tag key's look-ahead

    collection_id: CollectionId
    tags: dict[Annotated[str, Field(min_length=1, max_length=128, pattern=r"^(?!aws:)")],
               Annotated[str, Field(max_length=256)]] | None = Field(None, max_length=200)


class ListQuery(_Body):
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


class UserCreate(_Body):
    """``POST /v1/collections/{id}/users``: a new user without faces (Rekognition's CreateUser)."""

    user_id: UserId
    client_request_token: ClientRequestToken | None = None


class UsersQuery(_Body):
    """The paging query parameters of ``GET /v1/collections/{id}/users``."""

    max_results: Annotated[int, Field(ge=1, le=500, description="page size (default 500)")] | None = None
    next_token: NextToken | None = None


class UserFacesJson(_Body):
    """``POST`` / ``DELETE /v1/collections/{id}/users/{user_id}/faces``: associate or disassociate faces."""

    face_ids: list[FaceId] = Field(min_length=1, max_length=100)
    user_match_threshold: UserMatchThreshold = Field(75.0, description="associate: a face must match the user's "
                                                                       "faces this well (when it has some)")
    client_request_token: ClientRequestToken | None = None


class UserSearchJson(_Body):
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
            raise _refuse("Request has invalid parameters: send exactly one of image (a JPEG or PNG), face_id and "
                          "user_id.")
        return self


class UserSearchForm(UserSearchJson):
    """``POST /v1/collections/{id}/users/search`` as multipart/form-data: the image as a file."""

    image: FileImage | None = None


class TagsJson(_Body):
    """``POST /v1/collections/{id}/tags``: tags to set (Rekognition's TagResource)."""

    model_config = ConfigDict(extra="ignore", regex_engine="python-re")  # the tag key's look-ahead

    tags: dict[Annotated[str, Field(min_length=1, max_length=128, pattern=r"^(?!aws:)")],
               Annotated[str, Field(max_length=256)]] = Field(max_length=200)


class TagKeysJson(_Body):
    """``DELETE /v1/collections/{id}/tags``: tag keys to remove (UntagResource)."""

    keys: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(max_length=200)


class IndexJson(_Body):
    """``POST /v1/collections/{id}/faces`` as JSON: the image in base64."""

    image: Base64Image
    external_image_id: ExternalImageId | None = None
    max_faces: Annotated[int, Field(ge=1, description="index at most this many faces (largest first; at most 100)")] \
        | None = None
    quality_filter: QualityFilter = Field("AUTO", description="faces below this bar are not indexed (default AUTO)")


class IndexForm(IndexJson):
    """``POST /v1/collections/{id}/faces`` as multipart/form-data: the image as a file."""

    image: FileImage


class DeleteFacesJson(_Body):
    """``DELETE /v1/collections/{id}/faces``: the ids of the faces to erase."""

    face_ids: list[FaceId] = Field(min_length=1, max_length=4096)


class SearchJson(_Body):
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
            raise _refuse("Request has invalid parameters: send exactly one of image and face_id.")
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


class ErrorDetail(BaseModel):
    type: str = Field(description="a Rekognition error type, e.g. InvalidParameterException")
    message: str


class Error(BaseModel):
    """Every REST error."""

    error: ErrorDetail
    request_id: str


def validate(model: type[_Body], data: dict, images: tuple[str, ...]) -> _Body:
    """``data`` as ``model``, or the InvalidParameterException the first problem calls for, in the order the
    checks have always had: an image that is not valid, then missing images (all named), then the other
    fields in their order."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
    order = list(model.model_fields)

    def rank(error: dict) -> tuple[int, int]:
        name = error["loc"][0] if error["loc"] else ""
        position = order.index(name) if name in order else len(order)
        if name in images:
            return (1 if error["type"] == "missing" else 0, position)
        return (2, position)

    first = min(errors, key=rank)
    name = first["loc"][0] if first["loc"] else ""
    if first["type"] == "missing" and name in images:
        missing = [n for n in images if any(e["type"] == "missing" and e["loc"][:1] == (n,) for e in errors)]
        raise InvalidParameterException(
            f"Missing image field(s) {', '.join(missing)}: send multipart/form-data files or JSON with base64."
        )
    if first["type"] == _INVALID:
        raise InvalidParameterException(first["ctx"]["message"])
    raise InvalidParameterException(f"Request has invalid parameters: {quote_input(str(name))} "
                                    f"{first['msg'][:200]}.")
