"""The REST API's types: request bodies (JSON with base64, or multipart/form-data), responses and the error
shape. They are the one source of both the request validation (:func:`validate`) and the OpenAPI document
(FastAPI and pydantic generate it from them)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo
from pydantic_core import PydanticCustomError

from ..engine import check_threshold
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
                                     description="a JPEG or PNG image, base64"), BeforeValidator(_base64_image)]
FileImage = Annotated[bytes, Field(min_length=1, description="a JPEG or PNG image file"), BeforeValidator(_file_image)]
Threshold = Annotated[float, Field(ge=0, le=100, description="the similarity (0-100) from which two faces match; "
                                                             "a number, or a numeric string"),
                      BeforeValidator(_threshold)]
Flag = Annotated[bool, Field(description="also return the images with the faces drawn, as a base64 PNG "
                                         "(true/false, 1/0, yes/no, on/off)"), BeforeValidator(_flag)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")  # other members are ignored (multipart: at most 10 fields)


class VerifyJson(_Body):
    """``POST /v1/verify`` as JSON: both images in base64."""

    selfie: Base64Image
    document: Base64Image
    threshold: Threshold = 80.0
    annotate: Flag = False


class VerifyForm(_Body):
    """``POST /v1/verify`` as multipart/form-data: both images as files."""

    selfie: FileImage
    document: FileImage
    threshold: Threshold = 80.0
    annotate: Flag = False


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
    request_id: str


class Detection(BaseModel):
    """The faces in an image, largest first, in Rekognition's FaceDetail shape."""

    faces: list[dict[str, Any]]
    width: int
    height: int
    rotation: int = Field(description="the EXIF rotation applied, in degrees")
    annotated_png: str | None = Field(None, description="base64 PNG, when annotate=true")
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
