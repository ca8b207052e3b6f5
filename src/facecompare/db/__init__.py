"""Database plumbing shared by the collection store and the review store, which live in one database: the URL
(:mod:`.url`: the default, which engine a URL names, a URL without its secrets), SQLite's connection, pragmas and
transactions (:mod:`.sqlite`) and PostgreSQL's connection pool (:mod:`.postgres`: it needs the ``postgres`` extra,
psycopg 3 and psycopg_pool, imported only when a pool is opened). No module here knows a table or a record."""

from .url import DEFAULT_URL, POSTGRES, SQLITE, engine_of, redact_url

__all__ = ["DEFAULT_URL", "POSTGRES", "SQLITE", "engine_of", "redact_url"]
