"""Worker processes that load the models once, for ``evaluate``, ``calibrate`` and ``batch``.

A worker whose start-up fails (a recognizer file that cannot be loaded, a missing calibration) must stop the run
at once with that error, not be replaced by another that fails the same way, forever: ``multiprocessing.Pool``
does exactly that when its initializer raises. Here the initializer's error is kept in the worker and raised by
the first task it is given, so the parent sees it once, as the typed error it was; a worker that dies outright
(killed, out of memory) breaks the pool, which is reported as an :class:`InternalServerError`.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from .errors import FaceCompareError, InternalServerError

_startup_error: FaceCompareError | None = None


def _start(initializer: Callable, initargs: tuple, processes: int = 1) -> None:
    global _startup_error
    try:
        from .models import cpu

        cpu.share(processes)  # one of ``processes`` workers on the machine's cores: no second core per model call
        initializer(*initargs)
    except FaceCompareError as exc:
        _startup_error = exc
    except Exception as exc:  # noqa: BLE001 - any start-up failure is reported to the parent, typed
        _startup_error = InternalServerError(f"A worker process could not start: {type(exc).__name__}: {exc}"[:500])


def _call(function: Callable, item):
    if _startup_error is not None:
        raise _startup_error
    return function(item)


class WorkerPool:
    """``workers`` spawned processes, each running ``initializer(*initargs)`` once before any task."""

    def __init__(self, workers: int, initializer: Callable, initargs: tuple = ()) -> None:
        self._executor = ProcessPoolExecutor(max(1, workers), mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start, initargs=(initializer, initargs, max(1, workers)))

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def map_unordered(self, function: Callable, items: Iterable) -> Iterator:
        """``function(item)`` for every item, in the order they finish. The first error (a worker that could not
        start, or one that died) is raised at once and the items not yet started are dropped."""
        try:
            for future in as_completed([self._executor.submit(_call, function, item) for item in items]):
                yield future.result()
        except BrokenProcessPool:
            raise InternalServerError(
                "A worker process stopped unexpectedly (killed, or out of memory?); run again, with fewer --workers "
                "if memory is short.") from None
