"""Wait-until steps: "on 1 March 2031 at 09:00", or "a day before the trial ends".

A step's `wait_until` replaces its `delay_seconds` (which must then be 0):

- `{"until": "2031-03-01T09:00:00"}`: a fixed time. Without an offset it is wall time in
  the recipient's zone (the contact's `timezone`, else UTC); with `Z` or `+02:00` it is
  that instant everywhere.
- `{"until_attribute": "trial_ends_at", "offset_seconds": -86400}`: the ISO date or date
  time in that attribute of the contact (read when the step is planned), plus the
  offset. A date alone is midnight in the recipient's zone. Times outside 1970-2999
  count as missing (and are refused in `until`).

`if_missing` (default `skip`) says what happens when the time cannot be had (no such
attribute, not an ISO date) or is already past when the step is planned: `skip` the
step (the next one is planned as if it were not there), or `run_now` (due at once).

Pure: no AWS, no clock.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from dripline.errors import ValidationFailed
from dripline.windows import local_instant

SKIP = "skip"
RUN_NOW = "run_now"
IF_MISSING = (SKIP, RUN_NOW)
MAX_OFFSET_SECONDS = 366 * 86400
# Times outside these years count as missing: far from datetime's limits, so planning
# (a window's next opening looks a week ahead) never overflows.
YEARS = range(1970, 3000)
_FIELDS = {"until", "until_attribute", "offset_seconds", "if_missing"}


@dataclass(frozen=True)
class WaitUntil:
    until: str | None = None  # ISO date time, naive = recipient's wall time
    until_attribute: str | None = None
    offset_seconds: int = 0
    if_missing: str = SKIP

    @classmethod
    def parse(cls, raw: Any, field: str = "wait_until") -> "WaitUntil":
        """A wait from its JSON form; ValidationFailed naming the offending field."""
        if not isinstance(raw, dict):
            raise ValidationFailed(field, 'must be an object: {"until": ...} or {"until_attribute": ..., "offset_seconds": ...}')
        unknown = sorted(set(raw) - _FIELDS)
        if unknown:
            raise ValidationFailed(f"{field}.{unknown[0]}", "unknown field")
        until, attribute = raw.get("until"), raw.get("until_attribute")
        if (until is None) == (attribute is None):
            raise ValidationFailed(field, "exactly one of until, until_attribute")
        if until is not None and (not isinstance(until, str) or _parse_iso(until) is None):
            raise ValidationFailed(
                f"{field}.until", 'an ISO 8601 date time in 1970-2999, e.g. "2031-03-01T09:00:00" or "2031-03-01T09:00:00Z"'
            )
        if attribute is not None and (not isinstance(attribute, str) or not 1 <= len(attribute) <= 100):
            raise ValidationFailed(f"{field}.until_attribute", "an attribute name, 1-100 characters")
        offset = raw.get("offset_seconds", 0)
        if type(offset) is not int or abs(offset) > MAX_OFFSET_SECONDS:
            raise ValidationFailed(f"{field}.offset_seconds", f"an integer, at most {MAX_OFFSET_SECONDS} either way")
        if offset and until is not None:
            raise ValidationFailed(f"{field}.offset_seconds", "only with until_attribute")
        if_missing = raw.get("if_missing", SKIP)
        if if_missing not in IF_MISSING:
            raise ValidationFailed(f"{field}.if_missing", f"one of {', '.join(IF_MISSING)}")
        return cls(until, attribute, offset, if_missing)

    def to_dict(self) -> dict[str, Any]:
        target = {"until": self.until} if self.until is not None else {
            "until_attribute": self.until_attribute, "offset_seconds": self.offset_seconds}
        return {**target, "if_missing": self.if_missing}

    def target(self, attributes: Mapping[str, Any], zone: ZoneInfo) -> datetime | None:
        """The instant to wait for (UTC), or None when it cannot be had."""
        raw = self.until if self.until is not None else attributes.get(self.until_attribute or "")
        parsed = _parse_iso(raw) if isinstance(raw, str) else None
        if parsed is None:
            return None
        instant = parsed.astimezone(timezone.utc) if parsed.tzinfo else local_instant(parsed, zone)
        return instant + timedelta(seconds=self.offset_seconds)


def _parse_iso(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.year in YEARS else None

