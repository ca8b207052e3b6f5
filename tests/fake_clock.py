"""A clock the review queue's tests set by hand (``ReviewQueue(..., clock)``): sessions, lockouts and retention
move when a test moves ``now``, never with the wall clock."""

from __future__ import annotations


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
