"""The protocol errors of both HTTP surfaces in one place: :class:`ProtocolError` (a wire-level AWS error type
that is not one of the engine's; defined beside the request members it guards, :mod:`facecompare.aws.wire`, so
that the CLI raises it without importing the server), the AWS error response (``{"__type", "Message"}`` at the
status AWS uses), the REST one (``{"error": {"type", "message"}}``) with the REST statuses that differ from
AWS's, and the retry headers both send with a throttling error."""

from __future__ import annotations

import json

from starlette.responses import JSONResponse, Response

from ..aws.wire import ProtocolError
from ..errors import FaceCompareError
from .sigv4 import AuthError

AWS_CONTENT_TYPE = "application/x-amz-json-1.1"

# the REST statuses of errors that AWS answers with a 400: an unknown collection or face is a 404, a collection
# that exists already a 409
REST_STATUS = {"ResourceNotFoundException": 404, "ResourceAlreadyExistsException": 409, "ConflictException": 409,
               "IdempotentParameterMismatchException": 409}


def retry_headers(exc: FaceCompareError) -> dict[str, str]:
    seconds = getattr(exc, "retry_after", None)
    if seconds is None:
        return {}
    # Retry-After for any HTTP client; x-amz-retry-after (milliseconds) is what botocore's standard retry
    # mode reads to lengthen its backoff
    return {"Retry-After": str(seconds), "x-amz-retry-after": str(int(1000 * seconds))}


def aws_error(exc: FaceCompareError, request_id: str) -> Response:
    body = {"__type": exc.code, "Message": exc.message}
    if isinstance(exc, AuthError):
        body = {"__type": exc.code, "message": exc.message}
    return Response(json.dumps(body), status_code=exc.http_status, media_type=AWS_CONTENT_TYPE,
                    headers={"x-amzn-RequestId": request_id, **retry_headers(exc)})


def rest_error(exc: FaceCompareError, request_id: str, status: int | None = None) -> JSONResponse:
    retry = retry_headers(exc)
    return JSONResponse({"error": {"type": exc.code, "message": exc.message}, "request_id": request_id},
                        status_code=status or REST_STATUS.get(exc.code) or getattr(exc, "rest_status", exc.http_status),
                        headers={"x-request-id": request_id, **({"Retry-After": retry["Retry-After"]}
                                                                if retry else {})})


__all__ = ["AWS_CONTENT_TYPE", "REST_STATUS", "ProtocolError", "aws_error", "rest_error", "retry_headers"]
