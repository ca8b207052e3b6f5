"""The optional parts of facecompare and the pip extra that installs each (pyproject.toml's
``[project.optional-dependencies]``). ``pip install facecompare`` is the library and the commands that compare,
detect, evaluate, calibrate, make synthetic sets, run batches and dedupe runs on this machine, and keep face
collections; the rest needs an extra:

* ``server``: ``facecompare serve`` and ``api-key`` (the HTTP service, its REST API and reviewer console);
* ``console``: the review queue (``--queue-review``, ``facecompare review`` and ``reviewer``; the console's
  password hashes and pages);
* ``batch``: ``facecompare batch --engine dask`` (a Dask cluster);
* ``postgres``: a PostgreSQL store (``FACECOMPARE_COLLECTIONS=postgresql://...``);
* ``all``: every one of them.

A missing extra is :class:`MissingExtraError` (a ConfigurationError: the CLI prints it and exits 2), naming the
extra and the command that installs it, instead of an ImportError's traceback.
"""

from __future__ import annotations

import importlib.util

from .errors import ConfigurationError

#: extra -> the top-level modules it provides (as imported)
EXTRAS: dict[str, tuple[str, ...]] = {
    "server": ("starlette", "fastapi", "pydantic", "uvicorn", "multipart", "prometheus_client",
               "swagger_ui_bundle_v2", "anyio", "argon2", "jinja2"),
    "console": ("argon2", "jinja2"),
    "batch": ("dask", "distributed"),
    "postgres": ("psycopg", "psycopg_pool"),
}


class MissingExtraError(ConfigurationError):
    """A part of facecompare whose extra is not installed."""

    def __init__(self, extra: str, what: str | None = None) -> None:
        self.extra = extra
        needs = f"{what} needs" if what else "needs"
        super().__init__(f"{needs} the {extra} extra: pip install 'facecompare[{extra}]'")


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here."""
    return [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]


def require_extra(extra: str, what: str | None = None) -> None:
    """:class:`MissingExtraError` unless every module of ``extra`` can be imported (``what``: the part that
    needs it, for the message, e.g. ``--engine dask``)."""
    if missing(extra):
        raise MissingExtraError(extra, what)


def extra_providing(module: str | None) -> str | None:
    """The extra that installs the top-level module of ``module`` (an ImportError's ``name``), or None: the
    smallest one, so ``argon2`` is the console's and ``fastapi`` the server's."""
    top = (module or "").partition(".")[0]
    found = [extra for extra, modules in EXTRAS.items() if top in modules]
    return min(found, key=lambda extra: len(EXTRAS[extra])) if found else None
