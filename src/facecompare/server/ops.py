"""Operations endpoints: liveness, readiness, Prometheus metrics, and the API's document and explorer."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .openapi import OPENAPI, docs_html
from .pipeline import Pipeline


class Ops:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def routes(self) -> list[Route]:
        return [Route("/healthz", self.healthz, methods=["GET"]),
                Route("/readyz", self.readyz, methods=["GET"]),
                Route("/metrics", self.metrics, methods=["GET"]),
                Route("/openapi.json", self.openapi, methods=["GET"]),
                Route("/docs", self.docs, methods=["GET"])]

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(self, request: Request) -> Response:
        verifier = self.pipeline.verifier
        if self.pipeline.ready.is_set():
            return JSONResponse({"status": "ready", "detector": verifier.detector.name,
                                 "recognizer": verifier.recognizer.name})
        return JSONResponse({"status": "loading models"}, status_code=503)

    async def metrics(self, request: Request) -> Response:
        return Response(self.pipeline.metrics.render(), media_type="text/plain; version=0.0.4")

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(OPENAPI)

    async def docs(self, request: Request) -> Response:
        return HTMLResponse(docs_html())
