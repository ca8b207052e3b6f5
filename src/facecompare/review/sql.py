"""The review store's logic in SQL that SQLite and PostgreSQL both speak; an engine supplies the connection, the
schema (its DDL differs) and the placeholder style. Written with ``?`` placeholders; the PostgreSQL engine turns
them into ``%s``."""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager

from ..errors import ResourceAlreadyExistsException, ResourceNotFoundException, quote_input
from .interface import (
    ACTIONS,
    DECIDED,
    ESCALATED,
    OPEN,
    AuditEntry,
    CaseConflict,
    CaseFilter,
    CaseImage,
    ReviewCase,
    Reviewer,
    ReviewStore,
    Session,
)

CASE_COLUMNS = ("case_id, created_at, source, model, engine_decision, similarity, distance, threshold, band_low, "
                "band_high, reasons, evidence, batch, reference, status, reviewed_by, reviewed_at, comment, "
                "images_erased_at, version")
AUDIT_COLUMNS = "seq, at, actor, action, case_id, previous_state, new_state, comment"


def case_from_row(row) -> ReviewCase:
    (case_id, created_at, source, model, engine_decision, similarity, distance, threshold, band_low, band_high,
     reasons, evidence, batch, reference, status, reviewed_by, reviewed_at, comment, erased, version) = row
    return ReviewCase(case_id=case_id, created_at=created_at, source=source, model=model,
                      engine_decision=engine_decision, similarity=similarity, distance=distance, threshold=threshold,
                      review_band=(band_low, band_high), reasons=json.loads(reasons), evidence=json.loads(evidence),
                      batch=batch, reference=reference, status=status, reviewed_by=reviewed_by,
                      reviewed_at=reviewed_at, comment=comment, images_erased_at=erased, version=version)


def where_clause(where: CaseFilter) -> tuple[str, list]:
    """The WHERE of a queue's filter. A reason code is matched as a JSON string inside the reasons array, exactly
    and case-sensitively on both engines (``replace`` is; SQLite's LIKE ignores ASCII case, PostgreSQL's does not)."""
    clauses, params = [], []
    if where.statuses:
        clauses.append(f"status IN ({', '.join('?' for _ in where.statuses)})")
        params.extend(where.statuses)
    if where.reason:
        clauses.append("replace(reasons, ?, '') <> reasons")  # the quoted code occurs in the array's JSON
        params.append(json.dumps(where.reason))
    if where.batch is not None:
        clauses.append("batch = ?")
        params.append(where.batch)
    if where.created_after is not None:
        clauses.append("created_at >= ?")
        params.append(where.created_after)
    if where.created_before is not None:
        clauses.append("created_at < ?")
        params.append(where.created_before)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class SqlReviewStore(ReviewStore):
    """Everything but the connection: an engine implements :meth:`_tx` and :meth:`_is_unique_violation`."""

    @abstractmethod
    def _tx(self, write: bool = True) -> AbstractContextManager:
        """One transaction; yields an object with ``execute(sql, params)`` returning a cursor (``?`` placeholders)."""

    @abstractmethod
    def _is_unique_violation(self, exc: BaseException) -> bool: ...

    # -- cases ------------------------------------------------------------------------------------------------

    def add_case(self, case: ReviewCase, images: Iterable[CaseImage], actor: str) -> tuple[ReviewCase, bool]:
        images = list(images)
        try:
            return self._add_case(case, images, actor)
        except Exception as exc:
            # another process inserted this id between our SELECT and our INSERT (PostgreSQL's READ COMMITTED):
            # its case is the one kept, as when the SELECT finds it
            if not self._is_unique_violation(exc):
                raise
            try:
                existing = self.get_case(case.case_id)
            except ResourceNotFoundException:
                raise exc from None
            return existing, False

    def _add_case(self, case: ReviewCase, images: list[CaseImage], actor: str) -> tuple[ReviewCase, bool]:
        with self._tx() as db:
            row = db.execute(f"SELECT {CASE_COLUMNS} FROM facecompare_review_cases WHERE case_id = ?",
                             (case.case_id,)).fetchone()
            if row is not None:
                return case_from_row(row), False
            db.execute(f"INSERT INTO facecompare_review_cases ({CASE_COLUMNS}) VALUES "
                       f"({', '.join('?' for _ in range(20))})",
                       (case.case_id, case.created_at, case.source, case.model, case.engine_decision, case.similarity,
                        case.distance, case.threshold, case.review_band[0], case.review_band[1],
                        json.dumps(list(case.reasons)), json.dumps(case.evidence, separators=(",", ":")), case.batch,
                        case.reference, case.status, case.reviewed_by, case.reviewed_at, case.comment,
                        case.images_erased_at, case.version))
            for image in images:
                db.execute("INSERT INTO facecompare_review_images (case_id, role, media_type, data) VALUES (?, ?, ?, ?)",
                           (case.case_id, image.role, image.media_type, image.data))
            self._audit(db, actor, "CASE_QUEUED", case.created_at, case.case_id, None, case.status,
                        ", ".join(case.reasons) or None)
        return case, True

    def get_case(self, case_id: str) -> ReviewCase:
        with self._tx(write=False) as db:
            return self._case(db, case_id)

    @staticmethod
    def _case(db, case_id: str) -> ReviewCase:
        row = db.execute(f"SELECT {CASE_COLUMNS} FROM facecompare_review_cases WHERE case_id = ?",
                         (case_id,)).fetchone()
        if row is None:
            raise ResourceNotFoundException(f"No review case has the id {quote_input(case_id)}.")
        return case_from_row(row)

    def list_cases(self, where: CaseFilter, offset: int = 0, limit: int = 100) -> list[ReviewCase]:
        sql, params = where_clause(where)
        with self._tx(write=False) as db:
            rows = db.execute(f"SELECT {CASE_COLUMNS} FROM facecompare_review_cases{sql} "
                              "ORDER BY created_at, case_id LIMIT ? OFFSET ?",
                              (*params, int(limit), int(offset))).fetchall()
        return [case_from_row(row) for row in rows]

    def iter_cases(self, where: CaseFilter, page: int = 500) -> Iterator[ReviewCase]:
        """Every case of the filter, oldest first, read a page at a time (for exports)."""
        offset = 0
        while True:
            cases = self.list_cases(where, offset, page)
            yield from cases
            if len(cases) < page:
                return
            offset += page

    def count_cases(self, where: CaseFilter) -> int:
        sql, params = where_clause(where)
        with self._tx(write=False) as db:
            return int(db.execute(f"SELECT COUNT(*) FROM facecompare_review_cases{sql}", params).fetchone()[0])

    def neighbours(self, case: ReviewCase, where: CaseFilter) -> tuple[str | None, str | None]:
        sql, params = where_clause(where)
        joiner = " AND " if sql else " WHERE "
        key = (case.created_at, case.created_at, case.case_id)
        with self._tx(write=False) as db:
            before = db.execute(f"SELECT case_id FROM facecompare_review_cases{sql}{joiner}(created_at < ? OR "
                                "(created_at = ? AND case_id < ?)) ORDER BY created_at DESC, case_id DESC LIMIT 1",
                                (*params, *key)).fetchone()
            after = db.execute(f"SELECT case_id FROM facecompare_review_cases{sql}{joiner}(created_at > ? OR "
                               "(created_at = ? AND case_id > ?)) ORDER BY created_at, case_id LIMIT 1",
                               (*params, *key)).fetchone()
        return (before[0] if before else None), (after[0] if after else None)

    def get_image(self, case_id: str, role: str) -> CaseImage | None:
        with self._tx(write=False) as db:
            row = db.execute("SELECT role, media_type, data FROM facecompare_review_images WHERE case_id = ? AND role = ?",
                             (case_id, role)).fetchone()
        return None if row is None else CaseImage(row[0], row[1], bytes(row[2]))

    def decide(self, case_id: str, action: str, actor: str, comment: str, version: int, now: float) -> ReviewCase:
        status = ACTIONS[action]
        with self._tx() as db:
            current = self._case(db, case_id)
            if current.status in DECIDED:
                raise CaseConflict(f"This case was already decided ({current.status}) by {current.reviewed_by}.",
                                   current)
            if current.version != version:
                raise CaseConflict("This case changed while you were looking at it (another reviewer acted on it); "
                                   "look at it again before deciding.", current)
            if current.status == ESCALATED and status == ESCALATED:
                raise CaseConflict("This case is already escalated.", current)
            if current.status == ESCALATED and actor == current.reviewed_by:  # four eyes: not who escalated it
                raise CaseConflict("You escalated this case: another reviewer must decide it.", current)
            updated = db.execute("UPDATE facecompare_review_cases SET status = ?, reviewed_by = ?, reviewed_at = ?, "
                                 "comment = ?, version = version + 1 WHERE case_id = ? AND version = ?",
                                 (status, actor, now, comment, case_id, version)).rowcount
            if updated != 1:  # another process got there between our read and our write
                raise CaseConflict("This case changed while you were looking at it; look at it again.")
            self._audit(db, actor, action, now, case_id, current.status, status, comment)
            return self._case(db, case_id)

    def erase_images(self, created_before: float, actor: str, now: float) -> list[str]:
        return self._erase("created_at < ?", (created_before,), actor, now, None)

    def erase_reference(self, reference: str, actor: str, now: float, comment: str) -> tuple[list[str], list[str]]:
        with self._tx(write=False) as db:
            all_ids = [row[0] for row in db.execute(
                "SELECT case_id FROM facecompare_review_cases WHERE reference = ? ORDER BY created_at, case_id",
                (reference,)).fetchall()]
        return all_ids, self._erase("reference = ?", (reference,), actor, now, comment)

    def _erase(self, where: str, params: tuple, actor: str, now: float, comment: str | None) -> list[str]:
        with self._tx() as db:
            ids = [row[0] for row in db.execute(
                f"SELECT case_id FROM facecompare_review_cases WHERE {where} AND images_erased_at IS NULL "
                "ORDER BY created_at", params).fetchall()]
            for case_id in ids:
                db.execute("DELETE FROM facecompare_review_images WHERE case_id = ?", (case_id,))
                db.execute("UPDATE facecompare_review_cases SET images_erased_at = ?, version = version + 1 "
                           "WHERE case_id = ?", (now, case_id))
                self._audit(db, actor, "IMAGES_ERASED", now, case_id, None, None, comment)
        if ids:
            self._after_erase()
        return ids

    def _after_erase(self) -> None:  # noqa: B027 - an engine may make the deletion reach its files
        """Called after images were deleted (SQLite checkpoints its WAL so that the bytes leave it)."""

    def reviewed_counts(self) -> dict[str, dict[str, int]]:
        with self._tx(write=False) as db:
            rows = db.execute("SELECT model, status, COUNT(*) FROM facecompare_review_cases GROUP BY model, status "
                              "ORDER BY model, status").fetchall()
        counts: dict[str, dict[str, int]] = {}
        for model, status, count in rows:
            counts.setdefault(model, {})[status] = int(count)
        return counts

    def reviewed_distances(self, model: str) -> tuple[list[float], list[bool]]:
        with self._tx(write=False) as db:
            rows = db.execute("SELECT distance, status FROM facecompare_review_cases WHERE model = ? AND status IN "
                              "(?, ?) AND distance IS NOT NULL ORDER BY created_at, case_id",
                              (model, *DECIDED)).fetchall()
        return [float(d) for d, _ in rows], [status == "MATCH" for _, status in rows]

    def batches(self) -> list[str]:
        with self._tx(write=False) as db:
            return [row[0] for row in db.execute("SELECT DISTINCT batch FROM facecompare_review_cases WHERE batch IS "
                                                 "NOT NULL ORDER BY batch").fetchall()]

    # -- audit ------------------------------------------------------------------------------------------------

    @staticmethod
    def _audit(db, actor, action, now, case_id, previous_state, new_state, comment) -> None:
        db.execute("INSERT INTO facecompare_review_audit (at, actor, action, case_id, previous_state, new_state, "
                   "comment) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (now, actor, action, case_id, previous_state, new_state, comment))

    def append_audit(self, actor: str, action: str, now: float, case_id: str | None = None,
                     previous_state: str | None = None, new_state: str | None = None,
                     comment: str | None = None) -> None:
        with self._tx() as db:
            self._audit(db, actor, action, now, case_id, previous_state, new_state, comment)

    def failed_sign_ins(self, username: str, since: float) -> int:
        with self._tx(write=False) as db:
            return int(db.execute(
                "SELECT COUNT(*) FROM facecompare_review_audit WHERE actor = ? AND action = 'SIGN_IN_FAILED' AND "
                "at > ? AND seq > COALESCE((SELECT MAX(seq) FROM facecompare_review_audit WHERE actor = ? AND "
                "action = 'SIGN_IN'), 0)", (username, since, username)).fetchone()[0])

    def count_sign_in_attempt(self, key: str, now: float, since: float) -> int:
        table = "facecompare_review_sign_in_attempts"
        with self._tx() as db:
            return int(db.execute(
                f"INSERT INTO {table} (attempt_key, failures, window_start) VALUES (?, 1, ?) "
                f"ON CONFLICT (attempt_key) DO UPDATE SET "
                f"failures = CASE WHEN {table}.window_start <= ? THEN 1 ELSE {table}.failures + 1 END, "
                f"window_start = CASE WHEN {table}.window_start <= ? THEN excluded.window_start "
                f"ELSE {table}.window_start END RETURNING failures", (key, now, since, since)).fetchone()[0])

    def forget_sign_in_attempts(self, forget: Iterable[str] = (), undo: Iterable[str] = ()) -> None:
        with self._tx() as db:
            for key in forget:
                db.execute("DELETE FROM facecompare_review_sign_in_attempts WHERE attempt_key = ?", (key,))
            for key in undo:
                db.execute("UPDATE facecompare_review_sign_in_attempts SET failures = failures - 1 "
                           "WHERE attempt_key = ? AND failures > 0", (key,))

    def delete_sign_in_attempts(self, before: float) -> int:
        with self._tx() as db:
            return db.execute("DELETE FROM facecompare_review_sign_in_attempts WHERE window_start < ?",
                              (before,)).rowcount

    def audit_log(self, case_id: str | None = None, before_seq: int | None = None,
                  limit: int = 200) -> list[AuditEntry]:
        clauses, params = [], []
        if case_id is not None:
            clauses.append("case_id = ?")
            params.append(case_id)
        if before_seq is not None:
            clauses.append("seq < ?")
            params.append(int(before_seq))
        sql = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        with self._tx(write=False) as db:
            rows = db.execute(f"SELECT {AUDIT_COLUMNS} FROM facecompare_review_audit{sql} ORDER BY seq DESC LIMIT ?",
                              (*params, int(limit))).fetchall()
        return [AuditEntry(*row) for row in rows]

    # -- reviewers and sessions -------------------------------------------------------------------------------

    def add_reviewer(self, username: str, password_hash: str, now: float) -> Reviewer:
        try:
            with self._tx() as db:
                db.execute("INSERT INTO facecompare_reviewers (username, password_hash, created_at, disabled) "
                           "VALUES (?, ?, ?, 0)", (username, password_hash, now))
                self._audit(db, "system:cli", "REVIEWER_ADDED", now, None, None, username, None)
        except Exception as exc:
            if self._is_unique_violation(exc):
                raise ResourceAlreadyExistsException(f"A reviewer named {quote_input(username)} exists.") from None
            raise
        return Reviewer(username, now, False)

    def reviewer(self, username: str) -> tuple[Reviewer, str] | None:
        with self._tx(write=False) as db:
            row = db.execute("SELECT username, created_at, disabled, password_hash FROM facecompare_reviewers "
                             "WHERE username = ?", (username,)).fetchone()
        return None if row is None else (Reviewer(row[0], row[1], bool(row[2])), row[3])

    def list_reviewers(self) -> list[Reviewer]:
        with self._tx(write=False) as db:
            rows = db.execute("SELECT username, created_at, disabled FROM facecompare_reviewers "
                              "ORDER BY username").fetchall()
        return [Reviewer(u, c, bool(d)) for u, c, d in rows]

    def update_reviewer(self, username: str, *, password_hash: str | None = None,
                        disabled: bool | None = None) -> None:
        with self._tx() as db:
            if db.execute("SELECT 1 FROM facecompare_reviewers WHERE username = ?", (username,)).fetchone() is None:
                raise ResourceNotFoundException(f"No reviewer is named {quote_input(username)}.")
            if password_hash is not None:
                db.execute("UPDATE facecompare_reviewers SET password_hash = ? WHERE username = ?",
                           (password_hash, username))
            if disabled is not None:
                db.execute("UPDATE facecompare_reviewers SET disabled = ? WHERE username = ?",
                           (1 if disabled else 0, username))

    def add_session(self, session: Session) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO facecompare_review_sessions (token_hash, username, csrf_token, created_at, "
                       "last_seen) VALUES (?, ?, ?, ?, ?)",
                       (session.token_hash, session.username, session.csrf_token, session.created_at,
                        session.last_seen))

    def session(self, token_hash: str) -> Session | None:
        with self._tx(write=False) as db:
            row = db.execute("SELECT token_hash, username, csrf_token, created_at, last_seen FROM "
                             "facecompare_review_sessions WHERE token_hash = ?", (token_hash,)).fetchone()
        return None if row is None else Session(*row)

    def touch_session(self, token_hash: str, now: float) -> None:
        with self._tx() as db:
            db.execute("UPDATE facecompare_review_sessions SET last_seen = ? WHERE token_hash = ?", (now, token_hash))

    def delete_sessions(self, *, token_hash: str | None = None, username: str | None = None,
                        idle_before: float | None = None, created_before: float | None = None) -> int:
        clauses, params = [], []
        for column, value, op in (("token_hash", token_hash, "="), ("username", username, "="),
                                  ("last_seen", idle_before, "<"), ("created_at", created_before, "<")):
            if value is not None:
                clauses.append(f"{column} {op} ?")
                params.append(value)
        if not clauses:
            return 0
        with self._tx() as db:
            return db.execute("DELETE FROM facecompare_review_sessions WHERE " + " OR ".join(clauses),
                              params).rowcount


__all__ = ["SqlReviewStore", "case_from_row", "where_clause", "OPEN"]
