"""Returning freed heap to the operating system (glibc keeps it otherwise): a leaf, so that decoding, the models
and the engine can all call it. When to call it is :mod:`facecompare.memory`'s policy (after large work) and
:func:`facecompare.images.decode_bytes`'s (before a decode over the working size)."""

from __future__ import annotations

import ctypes
import sys


def release_freed_memory() -> None:
    """Give the freed heap back to the operating system (glibc keeps it otherwise).

    After loading a model: preparing SFace in memory (as before the prepared file shipped, and still for a user's
    model) builds the float32 graph and its protobuf copies (about 100 MB), which are garbage once the session
    exists; glibc's allocator keeps those pages, so a 12 MP comparison afterwards peaked at about 450 MB instead
    of about 355 MB (``benchmarks/bench_compare.py``). A no-op where ``malloc_trim`` is absent."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        pass
