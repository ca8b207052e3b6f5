"""Exceptions named after AWS Rekognition's error types.

Every error the engine raises for bad input is one of these; each carries a message that says what to do.
The HTTP surfaces map ``http_status`` and ``code`` onto the AWS JSON error shape (``__type``, ``Message``).
"""

from __future__ import annotations

import reprlib

QUOTE_LIMIT = 64  # characters of client input an error message may quote


def quote_input(value: object, limit: int = QUOTE_LIMIT) -> str:
    """A short rendering of a client-supplied value for an error message: its ``repr`` cut to ``limit``
    characters, ending in an ellipsis when cut. Safe on hostile values: a huge integer is described, not
    converted to text; a deeply nested list is rendered only a few levels deep (``reprlib``); a long string is
    cut before ``repr`` sees it."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4 * limit:
        text = f"<an integer of {value.bit_length()} bits>"
    elif isinstance(value, str):
        text = repr(value[:limit])
        if len(value) > limit:
            text += "…"
    else:
        short = reprlib.Repr()
        short.maxlevel, short.maxstring, short.maxother = 2, limit + 2, limit + 2
        short.maxlist = short.maxtuple = short.maxdict = short.maxset = 4
        try:
            text = short.repr(value)
        except (ValueError, RecursionError):  # an object whose repr is itself hostile
            text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


class FaceCompareError(Exception):
    """Base class. ``code`` is the Rekognition ``__type``; ``http_status`` the status AWS uses for it."""

    code = "InternalServerError"
    http_status = 500
    default_message = "Internal server error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class InvalidParameterException(FaceCompareError):
    code = "InvalidParameterException"
    http_status = 400
    default_message = "Request has invalid parameters."


class InvalidImageFormatException(FaceCompareError):
    code = "InvalidImageFormatException"
    http_status = 400
    default_message = "Request has invalid image format."


class ImageTooLargeException(FaceCompareError):
    code = "ImageTooLargeException"
    http_status = 400
    default_message = "Image size is too large."


class InvalidS3ObjectException(FaceCompareError):
    code = "InvalidS3ObjectException"
    http_status = 400
    default_message = "Request has invalid S3 object."


class AccessDeniedException(FaceCompareError):
    code = "AccessDeniedException"
    http_status = 400
    default_message = "You are not authorized to perform this action."


class InternalServerError(FaceCompareError):
    code = "InternalServerError"
    http_status = 500
    default_message = "Internal server error"


class ModelNotAvailableError(FaceCompareError):
    """A model package is missing from the environment (an installation problem, not bad input)."""

    code = "InternalServerError"
    http_status = 500
    default_message = "A face model is not installed."


class ResourceNotFoundException(FaceCompareError):
    code = "ResourceNotFoundException"
    http_status = 400
    default_message = "The resource specified in the request cannot be found."


class ResourceAlreadyExistsException(FaceCompareError):
    code = "ResourceAlreadyExistsException"
    http_status = 400
    default_message = "A resource with the specified ID already exists."


class InvalidPaginationTokenException(FaceCompareError):
    code = "InvalidPaginationTokenException"
    http_status = 400
    default_message = "Pagination token in the request is not valid."


class ServiceQuotaExceededException(FaceCompareError):
    code = "ServiceQuotaExceededException"
    http_status = 400
    default_message = "The size of the collection exceeds the allowed limit."


class ConflictException(FaceCompareError):
    """A user of that id exists already (CreateUser without the token of the request that created it)."""

    code = "ConflictException"
    http_status = 400
    default_message = "A User with the same Id already exists within the collection."


class IdempotentParameterMismatchException(FaceCompareError):
    """A ClientRequestToken used again with other parameters than the first request that carried it."""

    code = "IdempotentParameterMismatchException"
    http_status = 400
    default_message = "A ClientRequestToken input parameter was reused with an operation, but at least one of the " \
                      "other input parameters is different from the previous call to the operation."


class ConfigurationError(Exception):
    """A setting (an environment variable, a configuration value) is not valid. Not a request error: it is not a
    ``FaceCompareError`` and has no AWS code. Library code raises it; only the CLI turns it into exit status 2,
    printing ``facecompare <command>: <message>``. ``setting`` names the variable when there is one."""

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        self.message = message
        self.setting = setting
        super().__init__(message)
