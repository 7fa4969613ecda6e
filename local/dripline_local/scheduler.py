"""The local EventBridge rule: processor ticks on a virtual clock that can fast-forward.

By default the clock follows real time and a tick fires every `tick_seconds`, as the
rate(1 minute) rule does. `advance(seconds)` fast-forwards: it first enrols everything
waiting in the stream, then moves the clock minute by minute, firing the tick each
minute boundary would have fired, but jumping straight to the next minute in which
something is due (per the runs table's due index), because a tick with nothing due
changes nothing. The results are those of ticking every minute; 30 days take seconds.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

MINUTE = timedelta(minutes=1)


class VirtualClock:
    """`dripline.clock`'s source of now for the local stack.

    Running: follows real time, plus every jump made by `advance`/`set`.
    Frozen (running=False): moves only when told to (deterministic tests).
    """

    def __init__(self, start: datetime | None = None, *, running: bool = True) -> None:
        self._base = (start or datetime.now(timezone.utc)).astimezone(timezone.utc)
        self._mono = time.monotonic()
        self.running = running
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            if not self.running:
                return self._base
            return self._base + timedelta(seconds=time.monotonic() - self._mono)

    def set(self, when: datetime) -> None:
        with self._lock:
            self._base = when.astimezone(timezone.utc)
            self._mono = time.monotonic()

    def advance(self, seconds: float) -> datetime:
        target = self.now() + timedelta(seconds=seconds)
        self.set(target)
        return target


def scheduled_event(when: datetime, *, rule_arn: str, region: str, account: str) -> dict[str, Any]:
    """What an EventBridge schedule rule sends its target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


def next_minute(when: datetime) -> datetime:
    """The first minute boundary strictly after `when`."""
    return when.replace(second=0, microsecond=0) + MINUTE


def minute_at_or_after(when: datetime) -> datetime:
    floor = when.replace(second=0, microsecond=0)
    return floor if floor == when else floor + MINUTE


@dataclass
class FastForward:
    """What one fast-forward did: its ticks, the emails SES accepted, the stream records
    enrolled and what became of the due runs (the processor's outcomes, summed)."""

    start: datetime
    now: datetime
    ticks: int = 0
    emails_sent: int = 0
    stream_records: int = 0
    steps_due: int = 0
    runs: Counter = field(default_factory=Counter)
    elapsed_ms: int = 0

    def add_tick(self, result: Any, drained: int) -> None:
        self.ticks += 1
        self.stream_records += drained
        if isinstance(result, dict):
            self.steps_due += int(result.get("due") or 0)
            self.runs.update({k: v for k, v in result.items() if isinstance(v, int) and k not in ("due", "duration_ms")})

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": _iso(self.now),
            "from": _iso(self.start),
            "ticks": self.ticks,
            "emails_sent": self.emails_sent,
            "stream_records": self.stream_records,
            "steps_due": self.steps_due,
            "runs": dict(sorted((k, v) for k, v in self.runs.items() if v)),
            "elapsed_ms": self.elapsed_ms,
        }


class Scheduler:
    def __init__(
        self,
        *,
        clock: VirtualClock,
        invoke: Callable[[dict[str, Any]], Any],
        drain: Callable[[], int],
        next_due: Callable[[], datetime | None],
        tick_seconds: float = 60,
        rule_arn: str = "arn:aws:events:us-east-1:123456789012:rule/dripline-local-EveryMinute",
        region: str = "us-east-1",
        account: str = "123456789012",
        log: Callable[[str], None] | None = None,
        emails_sent: Callable[[], int] | None = None,
    ) -> None:
        self.clock = clock
        self._invoke = invoke
        self._drain = drain
        self._next_due = next_due
        self.tick_seconds = tick_seconds
        self.rule_arn = rule_arn
        self.region = region
        self.account = account
        self.log = log or (lambda message: None)
        self._emails_sent = emails_sent or (lambda: 0)
        self._advance_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0
        self.last_drained = 0  # stream records the last tick's drain enrolled

    # --- one tick ---------------------------------------------------------------------
    def tick(self) -> Any:
        """One processor invocation at the clock's now, then enrol what it caused."""
        when = self.clock.now()
        emails_before = self._emails_sent()
        started = time.monotonic()
        event = scheduled_event(when, rule_arn=self.rule_arn, region=self.region, account=self.account)
        try:
            result = self._invoke(event)
        except Exception as exc:
            from dripline_local.streams import one_line

            self.log(f"tick    {_stamp(when)} → error {one_line(exc)} ({_ms(started)})")
            raise
        finally:
            self.ticks += 1
        emails = self._emails_sent() - emails_before
        self.log(f"tick    {_stamp(when)} → {_describe(result)}{f', {emails} emails sent' if emails else ''} ({_ms(started)})")
        self.last_drained = self._drain()
        return result

    # --- fast-forward -------------------------------------------------------------------
    def advance(self, seconds: float) -> datetime:
        """Move the clock `seconds` ahead, firing every tick that would have fired."""
        return self.fast_forward(seconds).now

    def fast_forward(self, seconds: float) -> "FastForward":
        """`advance`, answering what happened on the way (POST /_local/clock)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._advance_lock:
            started = time.monotonic()
            summary = FastForward(start=self.clock.now(), now=self.clock.now(), emails_sent=-self._emails_sent())
            summary.stream_records += self._drain()
            target = self.clock.now() + timedelta(seconds=seconds)
            while not self._stop.is_set():  # Ctrl-C ends a fast-forward between ticks
                at = next_minute(self.clock.now())
                if at > target:
                    break
                due = self._next_due()
                if due is None:
                    break
                if due > at:
                    at = minute_at_or_after(due)
                    if at > target:
                        break
                self.clock.set(at)
                summary.add_tick(self.tick(), self.last_drained)
            if self.clock.now() < target or not self.clock.running:
                self.clock.set(max(target, self.clock.now()))
            summary.now = self.clock.now()
            summary.emails_sent += self._emails_sent()
            summary.elapsed_ms = int((time.monotonic() - started) * 1000)
            self.log(f"clock   advanced {_duration(seconds)} to {_stamp(summary.now)}: {summary.ticks} ticks ran ({_ms(started)})")
            return summary

    # --- real time ----------------------------------------------------------------------
    def start(self) -> None:
        if self.tick_seconds <= 0:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=150)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            try:
                with self._advance_lock:
                    if self._stop.is_set():  # stopped while a fast-forward held the lock
                        return
                    self.tick()
            except Exception:  # logged by tick(); the next tick covers it, as EventBridge's would
                pass


def _stamp(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(started: float) -> str:
    return f"{(time.monotonic() - started) * 1000:.0f} ms"


def _duration(seconds: float) -> str:
    if seconds >= 86400 and seconds % 3600 == 0:
        return f"{seconds / 86400:g}d"
    if seconds >= 3600 and seconds % 60 == 0:
        return f"{seconds / 3600:g}h"
    return f"{seconds:g}s"


def _describe(result: Any) -> str:
    if isinstance(result, dict):
        shown = {
            k: v
            for k, v in result.items()
            if not isinstance(v, (dict, list)) and v not in (0, None, False, "") and not k.endswith(("_ms", "_seconds"))
        }
        return ", ".join(f"{k}={v}" for k, v in shown.items()) or "nothing due"
    return "done" if result is None else str(result)[:120]
