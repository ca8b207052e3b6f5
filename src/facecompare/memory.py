"""Handing memory back to the operating system after a call that needed a lot of it.

glibc's allocator keeps the pages of freed buffers for reuse instead of returning them: after a DetectFaces of
an 8000x8000 PNG the process held 553 MB more than before it, and more with every such request (the
buffers of the views, the detector's feature maps, thread arenas). :func:`released_after` measures the
resident size around a call and, when it grew by more than :data:`TRIM_ABOVE_BYTES` (freed memory that is not
coming back by itself), asks glibc to return its free pages (``malloc_trim``). That took 33 ms with 570 MB
to return and 2 ms with a few MB; reading the resident size costs microseconds, so ordinary calls pay nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from .models.onnx_graph import release_freed_memory

#: growth of the resident size over a call above which free heap is returned: 16 MB is under 10 % of the
#: resident size of a warm process (about 170 MB with the default models)
TRIM_ABOVE_BYTES = 16 * 1024 * 1024

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """The process's resident set size (0 where ``/proc`` is absent)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


@contextmanager
def released_after(threshold: int = TRIM_ABOVE_BYTES) -> Iterator[None]:
    """Run the block; afterwards, return free heap to the system if the resident size grew by more than
    ``threshold`` bytes (also when the block raised)."""
    before = resident_bytes()
    try:
        yield
    finally:
        if before and resident_bytes() - before > threshold:
            release_freed_memory()
