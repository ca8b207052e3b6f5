"""The ASGI application: AWS JSON 1.1 at ``POST /`` (boto3's ``rekognition`` client), native REST under
``/v1``, health and readiness probes, Prometheus metrics. Stateless: run as many replicas as you like.

This module only assembles the service; each part is in its own module:

* :mod:`.pipeline`: the request path every call takes (limits, engine queue, request id, typed errors,
  metrics, the log line), and what the handlers share;
* :mod:`.aws_api`: the AWS protocol (SigV4, X-Amz-Target, one handler per operation), :mod:`facecompare.aws` its
  handlers and :mod:`.sigv4` its signatures;
* :mod:`.rest_api`: the native REST API (FastAPI routes), :mod:`.rest_models` its types (pydantic), from
  which its validation and the OpenAPI document at /openapi.json are generated;
* :mod:`.ops`: probes, metrics and the API explorer at /docs (Swagger UI, served from a package's files);
* :mod:`.console`: the reviewer console at /console (REVIEW cases, decisions, the audit log);
* :mod:`.config`, :mod:`.logs`, :mod:`.metrics`, :mod:`.limits` (and :mod:`.protocol` for uvicorn).
"""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

import facecompare

from ..engine import Verifier
from ..errors import ConfigurationError, InvalidParameterException, quote_input
from ..settings import Settings
from ..storage import S3Reader
from .aws_api import AwsApi
from .config import ServerConfig, hash_api_key, load_api_key_hashes
from .console import Console
from .edges import HostGuard
from .limits import BodyGuard
from .logs import UVICORN_LOG_CONFIG, JsonLogFormatter, capture_warnings, configure_logging, json_log
from .ops import Ops
from .pipeline import Pipeline
from .protocol_errors import rest_error
from .rest_api import RestApi

__all__ = ["ServerConfig", "create_app", "app_from_env", "hash_api_key", "load_api_key_hashes",
           "UVICORN_LOG_CONFIG", "JsonLogFormatter", "configure_logging", "capture_warnings"]


TITLE = "facecompare"
DESCRIPTION = ("Offline selfie-versus-ID-document verification. The AWS Rekognition protocol (CompareFaces, "
               "DetectFaces) is served at POST / for boto3; this is the native API.")


async def plain_http_error(request: Request, exc: HTTPException) -> Response:
    """Starlette's answer to an HTTP error outside the handlers (404, 405): plain text, as before FastAPI."""
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


async def validation_error(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's own request validation (422) in the REST shape: 400 InvalidParameterException. The REST
    routes validate their bodies in the pipeline (rest_models.validate), so this is only a safety net."""
    first = (exc.errors() or [{}])[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return rest_error(InvalidParameterException(f"Request has invalid parameters: {quote_input(where)} "
                                                f"{str(first.get('msg', 'is not valid'))[:200]}."),
                      str(uuid.uuid4()))


#: seconds between two sweeps for review images past their retention (FACECOMPARE_REVIEW_RETENTION_DAYS)
RETENTION_SWEEP_SECONDS = 600


async def erase_expired_reviews(pipeline: Pipeline) -> None:
    """Erase review images past their retention now and every RETENTION_SWEEP_SECONDS, so that an idle service
    keeps the promise too. A failure (the database is down) is logged and tried again at the next sweep."""
    while True:
        try:
            erased = await anyio.to_thread.run_sync(pipeline.purge_expired_reviews)
            if erased:
                json_log(event="review_images_erased", cases=erased)
        except Exception as exc:  # noqa: BLE001 - a background sweep must not stop the service
            json_log(event="review_retention_failed", error=type(exc).__name__)
        await anyio.sleep(RETENTION_SWEEP_SECONDS)


def create_app(settings: Settings | None = None, config: ServerConfig | None = None,
               verifier: Verifier | None = None, s3: S3Reader | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    config = config or ServerConfig.from_env()
    if config.auth and not config.access_keys and not config.api_key_hashes:
        raise ConfigurationError(
            "authentication is on but no keys are configured. Set FACECOMPARE_AUTH_KEYS="
            "AKID:SECRET (SigV4, for boto3) and/or FACECOMPARE_API_KEYS_FILE (REST), or run with --no-auth "
            "for local development only.", setting="FACECOMPARE_AUTH_KEYS"
        )
    pipeline = Pipeline(config, verifier or Verifier(settings), s3 or S3Reader())

    @asynccontextmanager
    async def lifespan(app):
        if config.warm:
            await anyio.to_thread.run_sync(pipeline.verifier.warm)
        pipeline.ready.set()
        json_log(event="ready", auth=config.auth)
        async with anyio.create_task_group() as background:
            background.start_soon(erase_expired_reviews, pipeline)
            yield
            background.cancel_scope.cancel()
        json_log(event="shutdown")
        pipeline.close()

    # FastAPI for the REST API, the probes and the document; the AWS protocol is a plain route beside them,
    # outside the document (its clients are boto3's models)
    ops = Ops(pipeline, TITLE)
    app = FastAPI(title=TITLE, version=facecompare.__version__, description=DESCRIPTION, lifespan=lifespan,
                  openapi_url="/openapi.json", docs_url=None, redoc_url=None,
                  routes=[*AwsApi(pipeline).routes(), ops.assets(), Console(pipeline).mount()],
                  exception_handlers={HTTPException: plain_http_error, RequestValidationError: validation_error},
                  middleware=[Middleware(HostGuard, allowed_hosts=config.allowed_hosts, auth=config.auth),
                              Middleware(BodyGuard, max_body_bytes=config.max_body_bytes,
                                         body_timeout=config.body_timeout)])
    app.include_router(RestApi(pipeline).router())
    app.include_router(ops.router())
    app.state.verifier = pipeline.verifier
    app.state.metrics = pipeline.metrics
    app.state.pipeline = pipeline
    return app


def app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory`` (each worker process builds its own app from the environment)."""
    configure_logging()
    return create_app()
