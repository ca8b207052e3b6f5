"""Kept for ``pipeline.py``'s ``aws.ProtocolError`` until it imports :class:`ProtocolError` from
:mod:`.protocol_errors`; then delete this module. The AWS operations are :mod:`facecompare.aws`."""

from .protocol_errors import ProtocolError

__all__ = ["ProtocolError"]
