"""Pagination of the collection operations (ListCollections, ListFaces, ListUsers): page sizes and NextTokens.

A token is ``v1:<kind>:<mac>:<position>``: the last id of the page (a collection id longer than fits is cut and
followed by a hash of the whole id) and an HMAC over the kind, the scope (the collection and its generation, and
the user for one user's faces) and the position, keyed by the random secret kept in the store
(:meth:`~facecompare.collections.interface.CollectionStore.pagination_key`): replicas sharing a store accept each
other's tokens, and no one without the database can forge one. :class:`Paging` is a part of
:class:`~facecompare.collections.service.Collections` (a mixin: it reads the host's ``_token_key``).
"""

from __future__ import annotations

import hashlib
import hmac

from ..checks import check_int
from ..errors import InvalidPaginationTokenException, quote_input

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 4096
TOKEN_MAX = 255


class Paging:
    """Page sizes and signed NextTokens of :class:`~facecompare.collections.service.Collections`."""

    _token_key: bytes

    @staticmethod
    def _page_size(max_results: int | None) -> int:
        if max_results is None:
            return DEFAULT_PAGE_SIZE
        check_int(max_results, "MaxResults", 0, MAX_PAGE_SIZE)
        return max_results or DEFAULT_PAGE_SIZE

    @staticmethod
    def _hash(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _mac(self, kind: str, scope: str, position: str) -> str:
        message = f"{kind}\0{scope}\0{position}".encode()
        return hmac.new(self._token_key, message, hashlib.sha256).hexdigest()[:16]

    def _make_token(self, kind: str, scope: str, position: str) -> str:
        token = f"v1:{kind}:{self._mac(kind, scope, position)}:{position}"
        assert len(token) <= TOKEN_MAX
        return token

    def _read_token(self, token: object, kind: str, scope: str) -> str:
        bad = InvalidPaginationTokenException(
            f"Invalid pagination token {quote_input(token)}: pass the NextToken of the previous page of the same "
            "request, unchanged."
        )
        if not isinstance(token, str) or len(token) > TOKEN_MAX:
            raise bad
        parts = token.split(":", 3)
        if len(parts) != 4 or parts[0] != "v1" or parts[1] != kind:
            raise bad
        if not hmac.compare_digest(parts[2], self._mac(kind, scope, parts[3])):
            raise bad
        return parts[3]

    def _collection_token_position(self, collection_id: str) -> str:
        if len(collection_id) <= 200:
            return collection_id
        return f"{collection_id[:200]}~{self._hash(collection_id)}"  # '~' is never in a collection id

    @staticmethod
    def _collection_position(position: str) -> tuple[str, str | None]:
        """(list collections after this id, and skip those up to the one of this hash, if any)."""
        if "~" in position:
            prefix, digest = position.split("~", 1)
            return prefix, digest
        return position, None
