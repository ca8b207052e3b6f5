"""Handing memory back to the operating system after work that needed a lot of it.

glibc's allocator keeps the pages of freed buffers for reuse instead of returning them: after one DetectFaces of
an 8000x8000 PNG the process held 553 MB more than before it, and 1.5 GB after a CompareFaces of two. Returning
them (``malloc_trim``) took 33 ms with 570 MB to return and under 2 ms with a few MB, but it is not free for
ordinary calls: the next call faults its pages in again (a 12 MP analysis: about 11 ms more, 3 %), and for
ordinary images the kept heap is simply reused by the next call. So the heap is returned only after *large
work*: a decode over the working size (``Settings.max_working_pixels``) or a last-resort detection pass.

The engine calls :func:`note_large_work` where such work happens; :func:`released_after_large_work` wraps a
call and returns the freed heap at its end if anything inside noted large work (nested wrappers pass the note
on, so the service's wrapper also returns what the request's decoded images held once they are gone).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .heap import release_freed_memory

_large_work: ContextVar[list[bool] | None] = ContextVar("facecompare_large_work", default=None)


def note_large_work() -> None:
    """Mark the calls being run (see :func:`released_after_large_work`) as having done large work."""
    flag = _large_work.get()
    if flag is not None:
        flag[0] = True


@contextmanager
def released_after_large_work() -> Iterator[None]:
    """Run the block; afterwards, if it did large work, return the freed heap to the system (also when the block
    raised) and tell an enclosing wrapper."""
    outer = _large_work.get()
    flag = [False]
    token = _large_work.set(flag)
    try:
        yield
    finally:
        _large_work.reset(token)
        if flag[0]:
            release_freed_memory()
            if outer is not None:
                outer[0] = True
