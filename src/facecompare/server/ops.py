"""Operations endpoints: liveness, readiness, Prometheus metrics, and the interactive API explorer at /docs.

/docs is Swagger UI from the files the ``swagger-ui-bundle-v2`` package ships (served under /docs/assets):
nothing is fetched from a CDN, so it works on a machine without internet access."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from .pipeline import Pipeline

DOCS_ASSETS = "/docs/assets"


def get(router: APIRouter, path: str, endpoint, include_in_schema: bool = True, **kwargs) -> None:
    """A GET route (in the document unless told otherwise), and HEAD on the same path, as Starlette routes
    have (load balancers' health checks use it), outside the document."""
    router.add_api_route(path, endpoint, methods=["GET"], include_in_schema=include_in_schema,
                         operation_id=path.strip("/"), **kwargs)
    router.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False, operation_id=path.strip("/") + "_head",
                         **kwargs)


class Ops:
    def __init__(self, pipeline: Pipeline, title: str) -> None:
        self.pipeline = pipeline
        self.title = title

    def router(self) -> APIRouter:
        router = APIRouter()
        get(router, "/healthz", self.healthz, summary="the process is alive",
            responses={200: {"description": "alive"}})
        get(router, "/readyz", self.readyz, summary="models loaded and warmed",
            responses={200: {"description": "ready"}, 503: {"description": "loading"}})
        get(router, "/metrics", self.metrics, summary="Prometheus metrics", response_class=Response,
            responses={200: {"description": "metrics", "content": {"text/plain": {}}}})
        get(router, "/docs", self.docs, include_in_schema=False)
        return router

    def assets(self) -> Mount:
        return Mount(DOCS_ASSETS, StaticFiles(directory=Path(str(swagger_ui_path))), name="docs-assets")

    async def healthz(self) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(self) -> Response:
        verifier = self.pipeline.verifier
        if self.pipeline.ready.is_set():
            return JSONResponse({"status": "ready", "detector": verifier.detector.name,
                                 "recognizer": verifier.recognizer.name})
        return JSONResponse({"status": "loading models"}, status_code=503)

    async def metrics(self) -> Response:
        return Response(self.pipeline.metrics.render(), media_type="text/plain; version=0.0.4")

    async def docs(self) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{self.title} API",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
                                   # no validator badge: Swagger UI would fetch it from validator.swagger.io
                                   swagger_ui_parameters={"validatorUrl": None})
