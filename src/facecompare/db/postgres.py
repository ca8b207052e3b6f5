"""PostgreSQL as the stores use it: a small thread-safe pool of autocommit connections (psycopg_pool). psycopg_pool
is imported when a pool is opened, so this package works without the ``postgres`` extra; the engines that call
:func:`open_pool` import psycopg themselves and say which extra is missing."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from psycopg_pool import ConnectionPool


def open_pool(url: str, name: str, max_connections: int, connect_timeout: float, unreachable) -> ConnectionPool:
    """An open pool of autocommit connections to ``url`` (each checked before it is lent), at most
    ``max_connections``; ``unreachable(exc)`` is raised when the first connection does not come within
    ``connect_timeout``. Shared by the collection and review stores."""
    from psycopg_pool import ConnectionPool, PoolTimeout

    conninfo = "postgresql:" + url.split(":", 1)[1] if url.startswith("postgres:") else url
    pool = ConnectionPool(conninfo, min_size=1, max_size=max(1, max_connections), open=False, timeout=connect_timeout,
                          check=ConnectionPool.check_connection,
                          kwargs={"connect_timeout": max(1, int(connect_timeout)), "autocommit": True}, name=name)
    try:
        pool.open(wait=True, timeout=connect_timeout)
    except PoolTimeout as exc:
        pool.close()
        raise unreachable(exc) from exc
    return pool
