"""``POST /``: AWS Rekognition's JSON 1.1 protocol, for the unmodified boto3 ``rekognition`` client.

Its steps of the request path (:meth:`.pipeline.Pipeline.serve`): authentication is the declared length and
the SigV4 signature of the headers; parsing is the body (and its payload hash), the operation from
X-Amz-Target and its parameters (:mod:`.aws`); dispatch is one handler per operation. Errors are ``{"__type",
"Message"}`` with the status AWS uses."""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..engine import MAX_FACES
from ..errors import FaceCompareError
from ..rekognition import compare_faces_response, detect_faces_response
from . import aws, sigv4
from .pipeline import NOT_JSON, NOT_JSON_MESSAGE, Call, Pipeline, parse_json, retry_headers

AWS_CONTENT_TYPE = "application/x-amz-json-1.1"


def aws_error(exc: FaceCompareError, request_id: str) -> Response:
    body = {"__type": exc.code, "Message": exc.message}
    if isinstance(exc, sigv4.AuthError):
        body = {"__type": exc.code, "message": exc.message}
    return Response(json.dumps(body), status_code=exc.http_status, media_type=AWS_CONTENT_TYPE,
                    headers={"x-amzn-RequestId": request_id, **retry_headers(exc)})


# -- one handler per operation: parsed parameters in, the response shape out (run in an engine thread) ----------

def compare_faces(pipeline: Pipeline, params: dict) -> dict:
    source = pipeline.load_image(params["source"])
    target = pipeline.load_image(params["target"])
    comparison = pipeline.verifier.compare(source, target, params["threshold"], params["quality_filter"])
    return compare_faces_response(comparison)


def detect_faces(pipeline: Pipeline, params: dict) -> dict:
    image = pipeline.load_image(params["image"])
    return detect_faces_response(pipeline.verifier.analyze(image, embed=0, max_faces=MAX_FACES), params["attributes"])


# operation -> (its parameters from the request body, its handler)
OPERATIONS: dict[str, tuple[Callable[[dict], dict], Callable[[Pipeline, dict], dict]]] = {
    "CompareFaces": (aws.parse_compare, compare_faces),
    "DetectFaces": (aws.parse_detect, detect_faces),
}
assert set(OPERATIONS) == set(aws.OPERATIONS)


class AwsApi:
    """The AWS surface (:class:`.pipeline.Surface`) and its route."""

    name = "aws"

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def routes(self) -> list[Route]:
        return [Route("/", self.endpoint, methods=["POST"])]

    async def endpoint(self, request: Request) -> Response:
        return await self.pipeline.serve(self, request)

    error = staticmethod(aws_error)

    def authenticate(self, request: Request) -> sigv4.PendingSignature | None:
        """SigV4 from the headers (the payload hash waits for the body: boto3 sends no x-amz-content-sha256).
        An over-long Content-Length is refused first, from that header: an unsigned or wrongly signed request
        never makes the service buffer a body."""
        self.pipeline.check_declared_length(request)
        config = self.pipeline.config
        if not config.auth:
            return None
        return sigv4.verify_headers(request.method, request.url.path, request.headers.raw, config.access_keys,
                                    region=config.region, query=request.scope.get("query_string", b""))

    def operation_hint(self, request: Request) -> str | None:
        return aws.operation_from_target(request.headers.get("x-amz-target"))

    async def parse(self, request: Request, pending: sigv4.PendingSignature | None, context: dict) -> Call:
        body = await self.pipeline.read_body(request)
        if pending is not None:
            pending.verify_payload(body)
        operation = context["operation"] = aws.operation_from_target(request.headers.get("x-amz-target"))
        payload = parse_json(body)
        if payload is NOT_JSON:
            raise aws.ProtocolError("SerializationException", NOT_JSON_MESSAGE)
        parse, handler = OPERATIONS[operation]
        return Call(handler, parse(payload))

    @staticmethod
    def respond(result: dict, request_id: str) -> Response:
        return Response(json.dumps(result), media_type=AWS_CONTENT_TYPE, headers={"x-amzn-RequestId": request_id})
