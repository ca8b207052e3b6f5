"""The ASGI application: AWS JSON 1.1 at ``POST /`` (boto3's ``rekognition`` client), native REST under
``/v1``, health and readiness probes, Prometheus metrics. Stateless: run as many replicas as you like.

This module only assembles the service; each part is in its own module:

* :mod:`.pipeline`: the request path every call takes (limits, engine queue, request id, typed errors,
  metrics, the log line), and what the handlers share;
* :mod:`.aws_api`: the AWS protocol (SigV4, X-Amz-Target, one handler per operation), :mod:`.aws` its
  parameters and :mod:`.sigv4` its signatures;
* :mod:`.rest_api`: the native REST API;
* :mod:`.ops`: probes, metrics and the API document;
* :mod:`.config`, :mod:`.logs`, :mod:`.metrics`, :mod:`.limits` (and :mod:`.protocol` for uvicorn).
"""

from __future__ import annotations

from contextlib import asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware

from ..engine import Verifier
from ..settings import Settings
from ..storage import S3Reader
from .aws_api import AwsApi
from .config import ServerConfig, hash_api_key, load_api_key_hashes
from .limits import BodyGuard
from .logs import UVICORN_LOG_CONFIG, JsonLogFormatter, capture_warnings, configure_logging, json_log
from .ops import Ops
from .pipeline import Pipeline
from .rest_api import RestApi

__all__ = ["ServerConfig", "create_app", "app_from_env", "hash_api_key", "load_api_key_hashes",
           "UVICORN_LOG_CONFIG", "JsonLogFormatter", "configure_logging", "capture_warnings"]


def create_app(settings: Settings | None = None, config: ServerConfig | None = None,
               verifier: Verifier | None = None, s3: S3Reader | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    config = config or ServerConfig.from_env()
    if config.auth and not config.access_keys and not config.api_key_hashes:
        raise SystemExit(
            "facecompare serve: authentication is on but no keys are configured. Set FACECOMPARE_AUTH_KEYS="
            "AKID:SECRET (SigV4, for boto3) and/or FACECOMPARE_API_KEYS_FILE (REST), or run with --no-auth "
            "for local development only."
        )
    pipeline = Pipeline(config, verifier or Verifier(settings), s3 or S3Reader())

    @asynccontextmanager
    async def lifespan(app):
        if config.warm:
            await anyio.to_thread.run_sync(pipeline.verifier.warm)
        pipeline.ready.set()
        json_log(event="ready", auth=config.auth)
        yield
        json_log(event="shutdown")

    routes = [*AwsApi(pipeline).routes(), *RestApi(pipeline).routes(), *Ops(pipeline).routes()]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[
        Middleware(BodyGuard, max_body_bytes=config.max_body_bytes, body_timeout=config.body_timeout)])
    app.state.verifier = pipeline.verifier
    app.state.metrics = pipeline.metrics
    app.state.pipeline = pipeline
    return app


def app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory`` (each worker process builds its own app from the environment)."""
    configure_logging()
    return create_app()
