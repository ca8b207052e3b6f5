"""One JSONL journal: the append-only files that batch and dedupe runs resume from (``results.jsonl``,
``rows.jsonl``, ``searched.jsonl``), and that ``batch --queue-review`` catches up from.

* :func:`append`: one record per line, compact JSON, flushed after each line. Flushed, not fsynced: a killed
  process loses nothing it wrote; a power cut can lose the last lines, whose rows are then done again.
* :func:`read_journal`: the records by their key; a line a kill cut short (or any line that is not a record:
  not UTF-8, not JSON, not an object with a string key) is dropped from the file, so its row is done again and
  the next line is not glued to it.
* :func:`iter_records`: the same records, read without changing the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def append(sink: IO[str], record: dict) -> None:
    """Write ``record`` as one line and flush it (see the module's docstring for the fsync policy)."""
    sink.write(json.dumps(record, separators=(",", ":")) + "\n")
    sink.flush()


def open_journal(path: Path) -> IO[str]:
    """``path`` opened for appending records (created if missing)."""
    return open(path, "a", encoding="utf-8")


def _lines(path: Path, key: str) -> Iterator[tuple[bytes, dict | None]]:
    """(line, its record or None when the line is not one) for every line of ``path``."""
    with open(path, "rb") as handle:  # bytes: a damaged line need not even be UTF-8
        for line in handle:
            try:
                record = json.loads(line.decode("utf-8"))
            except ValueError:  # UnicodeDecodeError and JSONDecodeError both are
                yield line, None
                continue
            # a damaged line can still be JSON (null, a number, a record without a string key): not a record
            yield line, record if isinstance(record, dict) and isinstance(record.get(key), str) else None


def iter_records(path: Path, key: str) -> Iterator[dict]:
    """The records of ``path`` (objects with a string ``key``), skipping every other line; the file is not
    changed. Nothing when it does not exist."""
    if not path.is_file():
        return
    for _, record in _lines(path, key):
        if record is not None:
            yield record


def read_journal(path: Path, key: str) -> dict[str, dict]:
    """The records of ``path`` by ``key`` (the last one of a key wins). Lines that are not records are dropped
    from the file (rewritten whole, then renamed over it); a clean file is not touched."""
    if not path.exists():
        return {}
    good: list[bytes] = []
    records: dict[str, dict] = {}
    for line, record in _lines(path, key):
        if record is None:
            continue
        records[record[key]] = record
        good.append(line if line.endswith(b"\n") else line + b"\n")
    if sum(len(line) for line in good) != path.stat().st_size:  # in bytes, so non-ASCII text is no damage
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_bytes(b"".join(good))
        tmp.replace(path)
    return records
