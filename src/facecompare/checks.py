"""Request values that every surface checks the same way (the library, the CLI, REST and the AWS endpoint):
thresholds, QualityFilter, collection, face and user ids, tokens, tags. Each check returns the value or raises
InvalidParameterException with the message the AWS endpoint sends. A leaf: it imports only the errors and the
quality levels."""

from __future__ import annotations

import re
import unicodedata

from .errors import InvalidParameterException, quote_input
from .quality import QUALITY_FILTERS

MAX_FACE_IDS = 4096  # DeleteFaces / ListFaces FaceIds
MAX_USER_FACE_IDS = 100  # AssociateFaces / DisassociateFaces FaceIds
COLLECTION_ID = re.compile(r"[a-zA-Z0-9_.\-]{1,255}")
EXTERNAL_IMAGE_ID = re.compile(r"[a-zA-Z0-9_.\-:]{1,255}")
FACE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
USER_ID = re.compile(r"[a-zA-Z0-9_.\-:]{1,128}")
CLIENT_REQUEST_TOKEN = re.compile(r"[a-zA-Z0-9\-_]{1,64}")
_TAG_EXTRA = set("_.:/=+-@")


def check_pattern(value: object, pattern: re.Pattern, name: str, rule: str) -> str:
    """``value`` when it is a string that ``pattern`` matches whole; otherwise InvalidParameterException saying
    ``{name} must be {rule} (got ...)``."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidParameterException(f"Request has invalid parameters: {name} must be {rule} (got {quote_input(value)}).")
    return value


def check_threshold(value: object, name: str) -> float:
    """``value`` as a float from 0 to 100; anything else (a boolean, a string, NaN, an infinity, an integer too
    large for a float) is InvalidParameterException."""
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an integer of hundreds of digits (JSON allows it)
            number = None
    if number is None or not 0.0 <= number <= 100.0:  # NaN fails the comparison too
        raise InvalidParameterException(
            f"Request has invalid parameters: {name} must be a number from 0 to 100 (got {quote_input(value)})."
        )
    return number


def check_quality_filter(value: object) -> str:
    if value not in QUALITY_FILTERS:
        raise InvalidParameterException(
            "Request has invalid parameters: QualityFilter must be one of "
            f"{', '.join(QUALITY_FILTERS)} (got {quote_input(value)})."
        )
    return str(value)


def check_collection_id(value: object, name: str = "CollectionId") -> str:
    return check_pattern(value, COLLECTION_ID, name, "1-255 characters of a-z, A-Z, 0-9, '_', '.' and '-'")


def check_external_image_id(value: object) -> str | None:
    if value is None:
        return None
    return check_pattern(value, EXTERNAL_IMAGE_ID, "ExternalImageId",
                         "1-255 characters of a-z, A-Z, 0-9, '_', '.', '-' and ':'")


def check_face_id(value: object, name: str = "FaceId") -> str:
    return check_pattern(value, FACE_ID, name, "a lower-case UUID")


def _check_id_list(values: object, name: str, most: int) -> list[str]:
    if isinstance(values, str) or not isinstance(values, (list, tuple)) or not 1 <= len(values) <= most:
        raise InvalidParameterException(f"Request has invalid parameters: {name} must be a list of 1 to {most} face ids.")
    return [check_face_id(v, name) for v in values]


def check_face_ids(values: object, name: str = "FaceIds") -> list[str]:
    return _check_id_list(values, name, MAX_FACE_IDS)


def check_user_face_ids(values: object, name: str = "FaceIds") -> list[str]:
    return _check_id_list(values, name, MAX_USER_FACE_IDS)


def check_user_id(value: object, name: str = "UserId") -> str:
    return check_pattern(value, USER_ID, name, "1-128 characters of a-z, A-Z, 0-9, '_', '.', '-' and ':'")


def check_client_request_token(value: object) -> str | None:
    if value is None:
        return None
    return check_pattern(value, CLIENT_REQUEST_TOKEN, "ClientRequestToken",
                         "1-64 characters of a-z, A-Z, 0-9, '-' and '_'")


def check_int(value: object, name: str, low: int, high: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        upper = f" to {high}" if high is not None else " or more"
        raise InvalidParameterException(
            f"Request has invalid parameters: {name} must be an integer from {low}{upper} (got {quote_input(value)})."
        )
    return value


def _tag_text_ok(text: str) -> bool:
    return all(c.isalnum() or c in _TAG_EXTRA or unicodedata.category(c).startswith(("L", "N", "Z")) for c in text)


def check_tags(tags: object) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, dict) or len(tags) > 200:
        raise InvalidParameterException("Request has invalid parameters: Tags must be a map of at most 200 entries.")
    for key, value in tags.items():
        if (not isinstance(key, str) or not 1 <= len(key) <= 128 or key.startswith("aws:")
                or not _tag_text_ok(key)):
            raise InvalidParameterException(
                f"Request has invalid parameters: tag key {quote_input(key)} must be 1-128 letters, digits, spaces "
                "or _.:/=+-@ and must not start with 'aws:'."
            )
        if not isinstance(value, str) or len(value) > 256 or not _tag_text_ok(value):
            raise InvalidParameterException(
                f"Request has invalid parameters: the value of tag {quote_input(key)} must be 0-256 letters, "
                "digits, spaces or _.:/=+-@."
            )
    return dict(tags)
