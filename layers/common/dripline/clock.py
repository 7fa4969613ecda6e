"""The one source of "now".

Production reads the system clock. The local stack installs a virtual clock it can
fast-forward, and tests install a fixed one, without touching any handler: every piece
of code that needs the time calls `clock.now()`.
"""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class ManualClock:
    """A clock that only moves when told to (tests, the local stack's virtual time)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = (start or datetime.now(timezone.utc)).astimezone(timezone.utc)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when.astimezone(timezone.utc)

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now


_current: Clock = SystemClock()


def now() -> datetime:
    return _current.now()


def install(new_clock: Clock) -> Clock:
    """Make `new_clock` the source of now(); returns the previous one (to restore)."""
    global _current
    previous, _current = _current, new_clock
    return previous


def iso(when: datetime | None) -> str | None:
    """ISO 8601 UTC with a `Z`, millisecond precision: the API's time format."""
    if when is None:
        return None
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
