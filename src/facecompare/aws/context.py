"""What an operation's handler needs (:class:`Context`), so that the handlers run without a server: the HTTP
service gives it from its Pipeline (:class:`facecompare.server.aws_api.PipelineContext`), ``facecompare collection`` from its
arguments (:class:`.cli.LocalContext`)."""

from __future__ import annotations

from typing import Any, Protocol

from .wire import ImageMember


class Context(Protocol):
    region: str  # the region and account of the ARNs this service makes (and accepts in tag operations)
    account: str
    image_source: ImageMember  # reads a request's Image member (the wire's Bytes/S3Object, or the CLI's path)

    @property
    def verifier(self) -> Any:
        """The :class:`facecompare.engine.Verifier` (CompareFaces, DetectFaces)."""

    @property
    def collections(self) -> Any:
        """The :class:`facecompare.collections.service.Collections` service, opened on first use."""

    def load_image(self, source: tuple[str, object]) -> Any:
        """A decoded image of a parsed Image source (its format checked as the surface requires)."""

    def index_image(self, source: tuple[str, object]) -> Any:
        """What IndexFaces indexes of a parsed Image source: the encoded bytes (its idempotent ids hash them) or a
        decoded image."""
