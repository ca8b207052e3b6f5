"""Where the time goes: ``analyze(..., trace=[])`` collects ``(stage, seconds)`` for each step (benchmarks)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: when set (by ``analyze(..., trace=[])``), each step appends ``(stage, seconds)``: the benchmark's breakdown
_trace: ContextVar[list | None] = ContextVar("facecompare_trace", default=None)


@contextmanager
def stage(name: str) -> Iterator[None]:
    trace = _trace.get()
    if trace is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        trace.append((name, time.perf_counter() - started))
