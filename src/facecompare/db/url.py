"""Database URLs: the default one, the engine a URL names, and a URL without its secrets."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import InvalidParameterException

#: the collections' (and review cases') database when ``FACECOMPARE_COLLECTIONS`` is not set
DEFAULT_URL = "sqlite:///facecompare-collections.db"

#: the engines :func:`engine_of` names
SQLITE, POSTGRES = "sqlite", "postgresql"

#: query parameters of a database URL whose values are secrets (libpq's password, sslpassword, and the like)
_SECRET_PARAMETER_WORDS = ("password", "secret", "token", "key")


def redact_url(url: str) -> str:
    """``url`` without its secrets, for ``store.url``, messages and logs: the password of ``user:pass@`` and the value
    of every query parameter that names a password, secret, token or key (``?password=``, ``sslpassword=``,
    ``sslkey=``) become ``***``. A URL that does not parse is reduced to its scheme."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return url.split(":", 1)[0][:20] + "://..."
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(word in name.lower() for name, _ in pairs for word in _SECRET_PARAMETER_WORDS):
            query = urlencode([(name, "***" if any(word in name.lower() for word in _SECRET_PARAMETER_WORDS)
                                else value) for name, value in pairs], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def engine_of(url: str | None) -> tuple[str, str]:
    """(:data:`SQLITE` or :data:`POSTGRES`, the URL stripped) for ``url`` (``sqlite:///path`` or
    ``postgresql://...``, ``postgres://...``); :data:`DEFAULT_URL` when empty. Any other URL is
    InvalidParameterException, whose message does not quote it."""
    url = (url or DEFAULT_URL).strip()
    if url.startswith("sqlite:"):
        return SQLITE, url
    if url.startswith(("postgresql:", "postgres:")):
        return POSTGRES, url
    # the value is not quoted: it may hold a password, and this message can reach an API client
    raise InvalidParameterException("FACECOMPARE_COLLECTIONS must be sqlite:///path or postgresql://...; the value "
                                    "set is neither (it is not quoted here: it may hold a password).")
