"""The REST API's types: request bodies (JSON with base64, or multipart/form-data), responses and the error
shape. They are the one source of both the request validation (:func:`validate`) and the OpenAPI document
(FastAPI and pydantic generate it from them). This module: what every route shares, and /v1/verify and
/v1/detect; the collections' and users' types are :mod:`.rest_collection_models`."""

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


def refuse(message: str) -> PydanticCustomError:
    return PydanticCustomError(_INVALID, "{message}", {"message": message})


def _threshold(value: Any) -> float:
    try:
        return rest_threshold(value)
    except InvalidParameterException as exc:
        raise refuse(exc.message) from None


def _flag(value: Any, info: ValidationInfo) -> bool:
    try:
        return rest_flag(value, info.field_name)
    except InvalidParameterException as exc:
        raise refuse(exc.message) from None


def _nonempty(data: bytes, name: str) -> bytes:
    if not data:
        raise refuse(f"Request has invalid parameters: {name} is empty: send a JPEG or PNG image.")
    return data


def _base64_image(value: Any, info: ValidationInfo) -> bytes:
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise refuse(f"{info.field_name} is not valid base64.") from None
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


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="ignore")  # other members are ignored (multipart: at most 10 fields)


class VerifyJson(RequestBody):
    """``POST /v1/verify`` as JSON: both images in base64."""

    selfie: Base64Image
    document: Base64Image
    threshold: Threshold = 80.0
    annotate: Flag = False
    queue_review: QueueReview = "none"
    review_batch: ReviewLabel = None
    review_reference: ReviewLabel = None


class VerifyForm(RequestBody):
    """``POST /v1/verify`` as multipart/form-data: both images as files."""

    selfie: FileImage
    document: FileImage
    threshold: Threshold = 80.0
    annotate: Flag = False
    queue_review: QueueReview = "none"
    review_batch: ReviewLabel = None
    review_reference: ReviewLabel = None


class DetectJson(RequestBody):
    """``POST /v1/detect`` as JSON: the image in base64."""

    image: Base64Image
    annotate: Flag = False


class DetectForm(RequestBody):
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
    rotation: int = Field(description="the quarter turn (0, 90, 180 or 270 degrees) at which the faces were found: "
                                      "when none is found upright, detection is retried on the image turned (the "
                                      "rotation retry; the EXIF orientation is applied before, always)")
    annotated_png: str | None = Field(None, description="base64 PNG, when annotate=true")
    request_id: str


class ErrorDetail(BaseModel):
    type: str = Field(description="a Rekognition error type, e.g. InvalidParameterException")
    message: str


class Error(BaseModel):
    """Every REST error."""

    error: ErrorDetail
    request_id: str


def validate(model: type[RequestBody], data: dict, images: tuple[str, ...]) -> RequestBody:
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
