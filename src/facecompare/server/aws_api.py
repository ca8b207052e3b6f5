"""``POST /``: AWS Rekognition's JSON 1.1 protocol, for the unmodified boto3 ``rekognition`` client.

Its steps of the request path (:meth:`.pipeline.Pipeline.serve`): authentication is the declared length and
the SigV4 signature of the headers; parsing is the body (and its payload hash), the operation from
X-Amz-Target and its parameters (:mod:`.aws`); dispatch is one handler per operation. Errors are ``{"__type",
"Message"}`` with the status AWS uses."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import rekognition as shapes
from ..engine import MAX_FACES
from ..errors import FaceCompareError, InvalidImageFormatException, ResourceNotFoundException, quote_input
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


def changes_state(operation: str) -> bool:
    """Whether an operation writes (IndexFaces, DeleteFaces, Create/DeleteCollection, and any Create*, Delete*,
    Put*, Update*, Associate*, Disassociate* added later); replayed signatures are refused for these."""
    return operation == "IndexFaces" or operation.startswith(
        ("Create", "Delete", "Put", "Update", "Associate", "Disassociate", "Tag", "Untag"))


def first_use_in_store(handler: Callable, context: dict) -> Callable:
    """``handler`` run only if the request's signature is new to the collection store too (in the engine thread, as
    the store is blocking): this process's memory refuses a replay sent to it again, the store's one sent to another
    worker or replica on the same database. A replay found there is refused and stays noted (it must not be
    forgotten as a failed first use); a first use is forgotten again if its request fails, as in this process."""

    def guarded(pipeline: Pipeline, params: dict):
        digest = hashlib.sha256(context["signature"].encode()).digest()
        now = time.time()
        if not pipeline.collections.store.first_use_of_signature(digest, now + pipeline.replays.window, now):
            context.pop("signature", None)
            raise sigv4.AuthError("InvalidSignatureException", sigv4.REPLAY_MESSAGE)
        context["stored_signature"] = digest
        return handler(pipeline, params)

    return guarded


def has_request_token(payload: object) -> bool:
    """Whether a request carries a ClientRequestToken, which makes its operation idempotent (a replay of it is a
    retry: the store answers as before and changes nothing)."""
    return isinstance(payload, dict) and isinstance(payload.get("ClientRequestToken"), str) and bool(
        payload["ClientRequestToken"])


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
    faces, token = collections.list_faces(params["collection_id"], params["next_token"], params["max_results"],
                                          params["face_ids"], user_id=params["user_id"])
    return shapes.list_faces_response(faces, token, info.model)


def delete_faces(pipeline: Pipeline, params: dict) -> dict:
    deleted, refused = pipeline.collections.delete_faces_with_reasons(params["collection_id"], params["face_ids"])
    return shapes.delete_faces_response(deleted, refused)


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


# users

def create_user(pipeline: Pipeline, params: dict) -> dict:
    pipeline.collections.create_user(params["collection_id"], params["user_id"], params["token"])
    return {}


def delete_user(pipeline: Pipeline, params: dict) -> dict:
    pipeline.collections.delete_user(params["collection_id"], params["user_id"], params["token"])
    return {}


def list_users(pipeline: Pipeline, params: dict) -> dict:
    users, token = pipeline.collections.list_users(params["collection_id"], params["next_token"],
                                                   params["max_results"])
    return shapes.list_users_response(users, token)


def associate_faces(pipeline: Pipeline, params: dict) -> dict:
    result = pipeline.collections.associate_faces(params["collection_id"], params["user_id"], params["face_ids"],
                                                  user_match_threshold=params["threshold"],
                                                  client_request_token=params["token"])
    return shapes.associate_faces_response(result)


def disassociate_faces(pipeline: Pipeline, params: dict) -> dict:
    change = pipeline.collections.disassociate_faces(params["collection_id"], params["user_id"], params["face_ids"],
                                                     client_request_token=params["token"])
    return shapes.disassociate_faces_response(change)


def search_users(pipeline: Pipeline, params: dict) -> dict:
    collections = pipeline.collections
    matches = collections.search_users(params["collection_id"], user_id=params["user_id"], face_id=params["face_id"],
                                       user_match_threshold=params["threshold"], max_users=params["max_users"])
    return shapes.search_users_response(matches, collections.model_version, face_id=params["face_id"],
                                        user_id=params["user_id"])


def search_users_by_image(pipeline: Pipeline, params: dict) -> dict:
    collections = pipeline.collections
    collections.describe_collection(params["collection_id"])  # an unknown collection before any image work
    result = collections.search_users_by_image(params["collection_id"], aws_image(pipeline, params["image"]),
                                               user_match_threshold=params["threshold"],
                                               max_users=params["max_users"], quality_filter=params["quality_filter"])
    return shapes.search_users_by_image_response(result, collections.model_version)


# tags: a collection's ARN as this service makes it (its region, the account of rekognition.ACCOUNT)

def _tagged_collection(pipeline: Pipeline, arn: tuple[str, str, str, str]) -> str:
    region, account, kind, resource = arn
    if kind != "collection" or region != pipeline.config.region or account != shapes.ACCOUNT:
        raise ResourceNotFoundException(f"The resource {quote_input(f'{kind}/{resource}')} does not exist here: "
                                        f"this service holds collections of region {pipeline.config.region} and "
                                        f"account {shapes.ACCOUNT}.")
    return resource


def tag_resource(pipeline: Pipeline, params: dict) -> dict:
    pipeline.collections.tag_collection(_tagged_collection(pipeline, params["arn"]), params["tags"])
    return {}


def untag_resource(pipeline: Pipeline, params: dict) -> dict:
    pipeline.collections.untag_collection(_tagged_collection(pipeline, params["arn"]), params["keys"])
    return {}


def list_tags_for_resource(pipeline: Pipeline, params: dict) -> dict:
    return shapes.list_tags_response(pipeline.collections.collection_tags(_tagged_collection(pipeline, params["arn"])))


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
    "CreateUser": (aws.parse_create_user, create_user),
    "DeleteUser": (aws.parse_delete_user, delete_user),
    "ListUsers": (aws.parse_list_users, list_users),
    "AssociateFaces": (aws.parse_associate_faces, associate_faces),
    "DisassociateFaces": (aws.parse_disassociate_faces, disassociate_faces),
    "SearchUsers": (aws.parse_search_users, search_users),
    "SearchUsersByImage": (aws.parse_search_users_by_image, search_users_by_image),
    "TagResource": (aws.parse_tag_resource, tag_resource),
    "UntagResource": (aws.parse_untag_resource, untag_resource),
    "ListTagsForResource": (aws.parse_list_tags_for_resource, list_tags_for_resource),
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
        if (pending is not None and self.pipeline.config.refuse_replays and changes_state(operation)
                and not has_request_token(payload)):
            # stricter than AWS: a signature that changes state is good for one request (a replayed IndexFaces must
            # not undo an erasure); reads may repeat (identical calls within a second carry one signature), and so
            # may a call with a ClientRequestToken (CreateUser, AssociateFaces, ...): Rekognition's idempotency
            # makes its retry, even within the same second, answer the same and change nothing
            if not self.pipeline.replays.first_use(pending.signature):
                raise sigv4.AuthError("InvalidSignatureException", sigv4.REPLAY_MESSAGE)
            context["signature"] = pending.signature  # forgotten again if the request fails (a retry may follow)
        if payload is NOT_JSON:
            raise aws.ProtocolError("SerializationException", NOT_JSON_MESSAGE)
        parse, handler = OPERATIONS[operation]
        params = parse(payload)
        if "signature" in context:  # first use in this process: now in the store every worker and replica shares
            handler = first_use_in_store(handler, context)
        return Call(handler, params)

    @staticmethod
    def respond(result: dict, request_id: str) -> Response:
        return Response(json.dumps(result), media_type=AWS_CONTENT_TYPE, headers={"x-amzn-RequestId": request_id})
