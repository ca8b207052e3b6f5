"""Exceptions named after AWS Rekognition's error types.

Every error the engine raises for bad input is one of these; each carries a message that says what to do.
The HTTP surfaces map ``http_status`` and ``code`` onto the AWS JSON error shape (``__type``, ``Message``).
"""

from __future__ import annotations


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
