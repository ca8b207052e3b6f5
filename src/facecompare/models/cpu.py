"""How many cores a model call may take: the analyses running in this process against the cores it may use.

A comparison's two images are analysed in parallel threads, one core each; the selfie's usually finishes first,
and the document's search then runs alone while a core idles. With automatic threads
(``FACECOMPARE_MODEL_THREADS=0``) a model call made while fewer analyses run than there are cores takes a second
core: a detector runs on two intra-op threads (:class:`~facecompare.models.onnx_graph.DetectorSessions`), and a
recognizer whose graph takes one chip at a time runs two chips at once (a face and its mirror image). Under load
(a server answering several requests) every analysis keeps one core, so no CPU goes to threads waiting on each
other. The count is this process's: where several engine processes share the machine (``serve --workers N``, the
worker pools of ``batch``, ``evaluate`` and ``calibrate``), each is given its share of the cores (:func:`share`;
``serve`` passes it to its workers in ``FACECOMPARE_ENGINE_PROCESSES``), so that N single-image processes on N
cores do not each take two.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


#: set by a parent that starts this many engine processes on the machine (``serve --workers``): each takes its share
ENGINE_PROCESSES_VARIABLE = "FACECOMPARE_ENGINE_PROCESSES"


def _share(processes: int) -> int:
    return max(1, _cores() // max(1, processes))


def _processes_from_environment() -> int:
    try:
        return max(1, int(os.environ.get(ENGINE_PROCESSES_VARIABLE, "1")))
    except ValueError:
        return 1


#: the cores this process may use: those it may run on, divided among the engine processes sharing them
CORES = _share(_processes_from_environment())

_active = 0
_lock = threading.Lock()
_helper: ThreadPoolExecutor | None = None


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's threads: the helper (whose thread is gone) and the count start over."""
    global _active, _lock, _helper
    _active, _lock, _helper = 0, threading.Lock(), None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@contextmanager
def analysis() -> Iterator[None]:
    """Counts one image analysis as running while the block runs."""
    global _active
    with _lock:
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1


def share(processes: int) -> None:
    """This process is one of ``processes`` engine processes sharing the machine's cores: it takes its share."""
    global CORES
    CORES = _share(processes)


def cores(_item: object = None) -> int:
    """The cores this process may use (its share); takes and ignores one argument, so that a worker pool can map it."""
    return CORES


def running() -> int:
    """The analyses running now."""
    return _active


def spare_core() -> bool:
    """Whether a model call may take a second core: fewer analyses run than there are cores (at least two)."""
    return CORES >= 2 and _active < CORES


def map_spread(function: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[function(item) for item in items]``, the second half on a helper thread when a core is spare."""
    global _helper
    if len(items) < 2 or not spare_core():
        return [function(item) for item in items]
    if _helper is None:
        with _lock:
            if _helper is None:
                _helper = ThreadPoolExecutor(1, thread_name_prefix="facecompare-model")
    half = len(items) // 2
    later = _helper.submit(lambda: [function(item) for item in items[half:]])
    first = [function(item) for item in items[:half]]
    return first + later.result()
