"""Where the time goes: ``analyze(..., trace=[])`` collects ``(stage, seconds)`` for each step (benchmarks)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: when set (by ``analyze(..., trace=[])``), each step appends ``(stage, seconds)``: the benchmark's breakdown
_trace: ContextVar[list | None] = ContextVar("facecompare_trace", default=None)


@contextmanager
def collecting(trace: list | None) -> Iterator[None]:
    """Run the block with ``trace`` as the list each :func:`stage` inside it appends to (None: nothing is timed)."""
    token = _trace.set(trace)
    try:
        yield
    finally:
        _trace.reset(token)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block as one step, ``name``, of the trace being collected (when one is)."""
    trace = _trace.get()
    if trace is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        trace.append((name, time.perf_counter() - started))
