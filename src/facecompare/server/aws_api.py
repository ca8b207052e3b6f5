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

from .. import rekognition as shapes
from ..engine import MAX_FACES
from ..errors import FaceCompareError, InvalidImageFormatException
from ..formats import BASE_FORMATS, sniff_format
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


def check_aws_format(pipeline: Pipeline, data: bytes) -> bytes:
    """Rekognition's contract on the AWS endpoint: JPEG and PNG only (sniffed from the bytes), the other formats
    facecompare reads only with FACECOMPARE_AWS_EXTRA_FORMATS=on."""
    if not pipeline.config.aws_extra_formats and sniff_format(data) not in BASE_FORMATS:
        raise InvalidImageFormatException(
            "Request has invalid image format: the data is not a JPEG or PNG image. Convert it to JPEG or PNG "
            "(this server's operator can let the AWS endpoint accept HEIC/HEIF, WebP, AVIF and PDF with "
            "FACECOMPARE_AWS_EXTRA_FORMATS=on)."
        )
    return data


def aws_image(pipeline: Pipeline, source: tuple[str, object]):
    """An image of a request, its format checked (:func:`check_aws_format`) before anything is decoded."""
    kind, value = source
    data = check_aws_format(pipeline, pipeline.image_bytes(source))
    return pipeline.load_image(("bytes", data)) if kind == "bytes" else pipeline.verifier.load(
        data, max_bytes=pipeline.s3.max_bytes)


# -- one handler per operation: parsed parameters in, the response shape out (run in an engine thread) ----------

def compare_faces(pipeline: Pipeline, params: dict) -> dict:
    source = aws_image(pipeline, params["source"])
    target = aws_image(pipeline, params["target"])
    comparison = pipeline.verifier.compare(source, target, params["threshold"], params["quality_filter"])
    return compare_faces_response(comparison)


def detect_faces(pipeline: Pipeline, params: dict) -> dict:
    image = aws_image(pipeline, params["image"])
    return detect_faces_response(pipeline.verifier.analyze(image, embed=0, max_faces=MAX_FACES), params["attributes"])


# collections: the store's calls run on the engine queue too (they are short, and one queue keeps the limits,
# metrics and log lines of every operation in one place)

def create_collection(pipeline: Pipeline, params: dict) -> dict:
    info = pipeline.collections.create_collection(params["collection_id"], params["tags"])
    return shapes.create_collection_response(info, pipeline.config.region)


def delete_collection(pipeline: Pipeline, params: dict) -> dict:
    pipeline.collections.delete_collection(params["collection_id"])
    return shapes.delete_collection_response()


def describe_collection(pipeline: Pipeline, params: dict) -> dict:
    info = pipeline.collections.describe_collection(params["collection_id"])
    return shapes.describe_collection_response(info, pipeline.config.region)


def list_collections(pipeline: Pipeline, params: dict) -> dict:
    infos, token = pipeline.collections.list_collections(params["next_token"], params["max_results"])
    return shapes.list_collections_response(infos, token)


def index_faces(pipeline: Pipeline, params: dict) -> dict:
    collections = pipeline.collections
    collections.describe_collection(params["collection_id"])  # an unknown collection before any image work
    result = collections.index_faces(params["collection_id"],
                                     check_aws_format(pipeline, pipeline.image_bytes(params["image"])),
                                     external_image_id=params["external_image_id"], max_faces=params["max_faces"],
                                     quality_filter=params["quality_filter"])
    return shapes.index_faces_response(result, collections.model_version)


def list_faces(pipeline: Pipeline, params: dict) -> dict:
    collections = pipeline.collections
    info = collections.describe_collection(params["collection_id"])
    if params["user_id"] is not None:  # no face is associated to a user here (users are not implemented)
        collections.list_faces(params["collection_id"], params["next_token"], params["max_results"],
                               params["face_ids"])  # the token and filters are still checked
        return shapes.list_faces_response([], None, info.model)
    faces, token = collections.list_faces(params["collection_id"], params["next_token"], params["max_results"],
                                          params["face_ids"])
    return shapes.list_faces_response(faces, token, info.model)


def delete_faces(pipeline: Pipeline, params: dict) -> dict:
    deleted, not_found = pipeline.collections.delete_faces(params["collection_id"], params["face_ids"])
    return shapes.delete_faces_response(deleted, not_found)


def search_faces(pipeline: Pipeline, params: dict) -> dict:
    collections = pipeline.collections
    matches = collections.search_faces(params["collection_id"], params["face_id"], max_faces=params["max_faces"],
                                       threshold=params["threshold"])
    return shapes.search_faces_response(params["face_id"], matches, collections.model_version)


def search_faces_by_image(pipeline: Pipeline, params: dict) -> dict:
    collections = pipeline.collections
    collections.describe_collection(params["collection_id"])  # an unknown collection before any image work
    result = collections.search_faces_by_image(params["collection_id"], aws_image(pipeline, params["image"]),
                                               max_faces=params["max_faces"], threshold=params["threshold"],
                                               quality_filter=params["quality_filter"])
    return shapes.search_faces_by_image_response(result, collections.model_version)


# operation -> (its parameters from the request body, its handler)
OPERATIONS: dict[str, tuple[Callable[[dict], dict], Callable[[Pipeline, dict], dict]]] = {
    "CompareFaces": (aws.parse_compare, compare_faces),
    "DetectFaces": (aws.parse_detect, detect_faces),
    "CreateCollection": (aws.parse_create_collection, create_collection),
    "DeleteCollection": (aws.parse_delete_collection, delete_collection),
    "DescribeCollection": (aws.parse_describe_collection, describe_collection),
    "ListCollections": (aws.parse_list_collections, list_collections),
    "IndexFaces": (aws.parse_index_faces, index_faces),
    "ListFaces": (aws.parse_list_faces, list_faces),
    "DeleteFaces": (aws.parse_delete_faces, delete_faces),
    "SearchFaces": (aws.parse_search_faces, search_faces),
    "SearchFacesByImage": (aws.parse_search_faces_by_image, search_faces_by_image),
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
