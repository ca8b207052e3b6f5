"""Human review of REVIEW cases: the store (:mod:`.store`, with SQLite and PostgreSQL engines) and the queue's
rules (:mod:`.service`: queueing, retention, decisions, reviewer accounts and sessions). The web console that shows
them is :mod:`facecompare.server.console`."""

from .store import CaseConflict, CaseFilter, ReviewCase, ReviewStore, open_review_store

__all__ = ["CaseConflict", "CaseFilter", "ReviewCase", "ReviewStore", "open_review_store"]
