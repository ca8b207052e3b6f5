"""``POST /``: AWS Rekognition's JSON 1.1 protocol, for the unmodified boto3 ``rekognition`` client.

Its steps of the request path (:meth:`.pipeline.Pipeline.serve`): authentication is the declared length and
the SigV4 signature of the headers; parsing is the body (and its payload hash), the operation from
X-Amz-Target and its parameters; dispatch is the operation's handler. The handlers, one per operation with its
parse function beside it, are :mod:`facecompare.aws.operations`; errors (``{"__type", "Message"}`` with the status AWS uses)
are :func:`.protocol_errors.aws_error`."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import rekognition as shapes
from ..aws.operations import handler_of, operation_from_target
from ..aws.wire import image_source
from ..errors import InvalidImageFormatException
from ..formats import BASE_FORMATS, sniff_format
from . import sigv4
from .pipeline import NOT_JSON, NOT_JSON_MESSAGE, Call, Pipeline, parse_json
from .protocol_errors import AWS_CONTENT_TYPE, ProtocolError, aws_error


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
    return pipeline.load_image(("bytes", data)) if kind == "bytes" else pipeline.images.decode_object(
        pipeline.verifier, data)


class PipelineContext:
    """The handlers' :class:`facecompare.aws.context.Context` on the server: the Pipeline's verifier and collections, the
    configured region, and images read from the request (S3 objects by the service's reader) with Rekognition's
    format contract (:func:`check_aws_format`)."""

    image_source = staticmethod(image_source)
    account = shapes.ACCOUNT

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.verifier = pipeline.verifier
        self.region = pipeline.config.region

    @property
    def collections(self):
        return self.pipeline.collections

    def load_image(self, source: tuple[str, object]):
        return aws_image(self.pipeline, source)

    def index_image(self, source: tuple[str, object]) -> bytes:
        return check_aws_format(self.pipeline, self.pipeline.image_bytes(source))


def on_pipeline(handle: Callable) -> Callable[[Pipeline, dict], dict]:
    """An operation's handler as the Pipeline runs it (in an engine thread): ``(pipeline, params)``."""

    def run(pipeline: Pipeline, params: dict) -> dict:
        return handle(PipelineContext(pipeline), params)

    return run


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
        return operation_from_target(request.headers.get("x-amz-target"))

    async def parse(self, request: Request, pending: sigv4.PendingSignature | None, context: dict) -> Call:
        body = await self.pipeline.read_body(request)
        if pending is not None:
            pending.verify_payload(body)
        operation = context["operation"] = operation_from_target(request.headers.get("x-amz-target"))
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
            raise ProtocolError("SerializationException", NOT_JSON_MESSAGE)
        parse, handle = handler_of(operation)
        params = parse(payload, PipelineContext.image_source)
        handler = on_pipeline(handle)
        if "signature" in context:  # first use in this process: now in the store every worker and replica shares
            handler = first_use_in_store(handler, context)
        return Call(handler, params)

    @staticmethod
    def respond(result: dict, request_id: str) -> Response:
        return Response(json.dumps(result), media_type=AWS_CONTENT_TYPE, headers={"x-amzn-RequestId": request_id})
