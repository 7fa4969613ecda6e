"""Send windows: "only between 09:00 and 17:00 on weekdays, in the recipient's time zone".

A window is `{"days": ["mon", ..., "fri"], "start": "09:00", "end": "17:00"}` in local wall
time. `days` are the days a window *opens* on: with `end` before `start` the window
crosses midnight (`"fri" 22:00-06:00` runs from Friday 22:00 to Saturday 06:00), and
`"end": "00:00"` means "until midnight".

`next_opening(at, zone)` is `at` itself inside the window, else the first instant the
window opens after it. Wall times are turned into instants with the zone's rules for
that date, so the answer is right across DST changes, in both hemispheres, and for
30- and 45-minute offsets:

- a start that does not exist that day (inside a spring-forward gap) opens at the
  instant the clocks jump (the first instant whose local time is past the start);
- a start that exists twice (in a fall-back overlap) opens at its first occurrence,
  an end that exists twice closes at its second (the window lasts as the wall clock says);
- a window wholly inside a gap does not open that day.

Pure: no AWS, no clock. The engine plans with it (dripline.engine.plan) and the processor
checks it again just before a step runs (dripline.engine.outside_window).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dripline.errors import ValidationFailed

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
UTC = ZoneInfo("UTC")


@dataclass(frozen=True)
class SendWindow:
    days: frozenset[int]  # date.weekday() numbers: 0 = Monday
    start: time
    end: time

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    @classmethod
    def parse(cls, raw: Any, field: str = "send_window") -> "SendWindow":
        """A window from its JSON form; ValidationFailed naming the offending field."""
        if not isinstance(raw, dict):
            raise ValidationFailed(field, 'must be an object {"days": [...], "start": "HH:MM", "end": "HH:MM"}')
        unknown = sorted(set(raw) - {"days", "start", "end"})
        if unknown:
            raise ValidationFailed(f"{field}.{unknown[0]}", "unknown field")
        days = raw.get("days")
        if not isinstance(days, list) or not days or any(d not in DAYS for d in days):
            raise ValidationFailed(f"{field}.days", f"a non-empty list of {', '.join(DAYS)}")
        start, end = _wall_time(raw.get("start"), f"{field}.start"), _wall_time(raw.get("end"), f"{field}.end")
        if start == end:
            raise ValidationFailed(f"{field}.end", "must differ from start")
        return cls(frozenset(DAYS.index(d) for d in days), start, end)

    def to_dict(self) -> dict[str, Any]:
        return {"days": [DAYS[d] for d in sorted(self.days)], "start": self.start.strftime("%H:%M"), "end": self.end.strftime("%H:%M")}

    def next_opening(self, at: datetime, zone: ZoneInfo) -> datetime:
        """`at` if the window is open then, else the instant it next opens (UTC)."""
        if at.tzinfo is None:
            raise ValueError("at must be timezone-aware")
        at = at.astimezone(timezone.utc)
        today = at.astimezone(zone).date()
        # From yesterday (a window crossing midnight may still be open) to a week ahead.
        for offset in range(-1, 8):
            day = today + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            opens = _instant(day, self.start, zone, later=False)
            closes = _instant(day + timedelta(days=1) if self.crosses_midnight else day, self.end, zone, later=True)
            if closes > max(opens, at):
                return max(opens, at)
        raise AssertionError("a window with at least one day opens within a week")  # parse() guarantees days

    def is_open(self, at: datetime, zone: ZoneInfo) -> bool:
        return self.next_opening(at, zone) == at.astimezone(timezone.utc)


def resolve_zone(*names: str | None) -> ZoneInfo:
    """The first of `names` that is a known IANA zone (the contact's, then the team's), else UTC."""
    for name in names:
        if not name:
            continue
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return UTC


def local_instant(local: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of the naive wall time `local` in `zone` (DST rules as in `_instant`)."""
    return _instant(local.date(), local.time(), zone, later=False)


def _wall_time(raw: Any, field: str) -> time:
    match = _HHMM.match(raw) if isinstance(raw, str) else None
    if match is None:
        raise ValidationFailed(field, 'a wall time "HH:MM", 00:00-23:59')
    return time(int(match.group(1)), int(match.group(2)))


def _instant(day: date, wall: time, zone: ZoneInfo, *, later: bool) -> datetime:
    """The UTC instant of wall time `wall` on `day` in `zone`.

    Twice-existing wall times give the first occurrence (the second with `later`);
    a wall time skipped by the clocks gives the instant they jumped over it.
    """
    local = datetime.combine(day, wall)
    first = local.replace(tzinfo=zone, fold=0).astimezone(timezone.utc)
    second = local.replace(tzinfo=zone, fold=1).astimezone(timezone.utc)
    if _wall(first, zone) == local:  # it exists (once or twice)
        return second if later and _wall(second, zone) == local else first
    # In a gap: `second` (the offset after the change) is before the jump, `first` after
    # it. The jump is the first instant whose wall time is past `local`; offsets change
    # on whole seconds, so bisect to the second.
    low, high = second, first
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) // 2
        middle = middle.replace(microsecond=0)
        if _wall(middle, zone) >= local:
            high = middle
        else:
            low = middle
    return high


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)
