"""The AWS JSON 1.1 request members every operation shares, checked as boto3 does not (members, sizes, patterns):
an ``Image`` (bytes or S3Object), the optional numbers, ``NextToken`` and a Rekognition ``ResourceArn``; and
:class:`ProtocolError`, the wire-level AWS error types."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

from ..errors import FaceCompareError, ImageTooLargeException, InvalidParameterException, quote_input

MAX_IMAGE_BYTES = 5 * 1024 * 1024


class ProtocolError(FaceCompareError):
    """A wire-level error with an AWS type that is not one of the engine's (e.g. SerializationException). Its
    responses are :mod:`facecompare.server.protocol_errors`'."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = status
_BUCKET = re.compile(r"^[0-9A-Za-z.\-_]{3,255}$")


def check_members(body: dict, allowed: set[str], required: set[str], where: str) -> None:
    if not isinstance(body, dict):
        raise ProtocolError("SerializationException", f"{where} must be a JSON object.")
    unknown = set(body) - allowed
    if unknown:
        raise InvalidParameterException(f"Request has invalid parameters: unknown member(s) "
                                        f"{quote_input(sorted(unknown))} in {where}.")
    missing = required - set(body)
    if missing:
        raise InvalidParameterException(f"Request has invalid parameters: {where} lacks {sorted(missing)}.")


#: reads a request's ``Image`` member (its value, its name) into a source: ``('bytes', data)`` or
#: ``('s3', (bucket, key, version))`` on the wire; the CLI's context reads its own (a path or s3:// URL)
ImageMember = Callable[[object, str], tuple[str, object]]


def image_source(image: object, name: str) -> tuple[str, object]:
    """('bytes', data) or ('s3', (bucket, key, version)) from a request ``Image`` member."""
    check_members(image, {"Bytes", "S3Object"}, set(), name)
    if ("Bytes" in image) == ("S3Object" in image):
        raise InvalidParameterException(f"Request has invalid parameters: {name} needs exactly one of Bytes or S3Object.")
    if "Bytes" in image:
        raw = image["Bytes"]
        if not isinstance(raw, str):
            raise InvalidParameterException(f"Request has invalid parameters: {name}.Bytes must be a base64 string.")
        if len(raw) > (MAX_IMAGE_BYTES + 2) // 3 * 4 + 4:
            raise ImageTooLargeException(
                f"Image size is too large: {name}.Bytes is over {MAX_IMAGE_BYTES:,} bytes; use S3Object for images "
                "up to 15 MB or re-encode it smaller."
            )
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidParameterException(
                f"Request has invalid parameters: {name}.Bytes is not valid base64."
            ) from None
        if not data:
            raise InvalidParameterException(f"Request has invalid parameters: {name}.Bytes is empty.")
        return "bytes", data
    s3 = image["S3Object"]
    check_members(s3, {"Bucket", "Name", "Version"}, {"Bucket", "Name"}, f"{name}.S3Object")
    bucket, key, version = s3.get("Bucket"), s3.get("Name"), s3.get("Version")
    if not isinstance(bucket, str) or not _BUCKET.match(bucket):
        raise InvalidParameterException(
            f"Request has invalid parameters: {name}.S3Object.Bucket {quote_input(bucket)} is not valid."
        )
    if not isinstance(key, str) or not 1 <= len(key) <= 1024:
        raise InvalidParameterException(f"Request has invalid parameters: {name}.S3Object.Name must be 1-1024 characters.")
    if version is not None and (not isinstance(version, str) or not 1 <= len(version) <= 1024):
        raise InvalidParameterException(f"Request has invalid parameters: {name}.S3Object.Version is not valid.")
    return "s3", (bucket, key, version)


def optional(body: dict, name: str, check, *args):
    return check(body[name], name, *args) if name in body else None


def next_token(body: dict) -> str | None:
    token = body.get("NextToken")
    if token is not None and not isinstance(token, str):
        raise InvalidParameterException(f"Request has invalid parameters: NextToken must be a string (got "
                                        f"{quote_input(token)}).")
    return token


_ARN = re.compile(r"arn:aws:rekognition:([a-z0-9\-]{1,64}):([0-9]{12}):([a-z]+)/(.+)")


def resource_arn(value: object) -> tuple[str, str, str, str]:
    """(region, account, resource type, resource id) of a Rekognition ARN; InvalidParameterException otherwise."""
    if not isinstance(value, str) or not 20 <= len(value) <= 2048:
        raise InvalidParameterException(f"Request has invalid parameters: ResourceArn must be an ARN of 20-2048 "
                                        f"characters (got {quote_input(value)}).")
    match = _ARN.fullmatch(value)
    if match is None:
        raise InvalidParameterException(
            "Request has invalid parameters: ResourceArn must be arn:aws:rekognition:<region>:<account>:collection/"
            f"<id> (got {quote_input(value)})."
        )
    return match.group(1), match.group(2), match.group(3), match.group(4)


