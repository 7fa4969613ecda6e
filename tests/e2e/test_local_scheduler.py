"""Unit tests of the local scheduler: fast-forward fires the ticks that would have fired,
skipping idle minutes, and draining the stream around them."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from dripline_local.scheduler import Scheduler, VirtualClock, minute_at_or_after, next_minute

START = datetime(2026, 3, 2, 9, 0, 30, tzinfo=timezone.utc)


class FakeWorld:
    """Runs due at given times; a tick completes those due at its event time."""

    def __init__(self, due):
        self.due = sorted(due)
        self.ticks: list[str] = []
        self.drains = 0
        self.log: list[str] = []
        self.emails = 0
        self.records = 0  # stream records waiting for the next drain

    def invoke(self, event):
        when = datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        self.ticks.append(event["time"])
        self.log.append("tick")
        done = [d for d in self.due if d <= when]
        self.due = [d for d in self.due if d > when]
        self.emails += len(done)
        return {"due": len(done), "duration_ms": 7, "completed": len(done)}

    def drain(self):
        self.drains += 1
        self.log.append("drain")
        drained, self.records = self.records, 0
        return drained

    def next_due(self):
        return self.due[0] if self.due else None


def scheduler(world, clock):
    return Scheduler(clock=clock, invoke=world.invoke, drain=world.drain, next_due=world.next_due, tick_seconds=0)


def test_minute_helpers():
    assert next_minute(START) == datetime(2026, 3, 2, 9, 1, tzinfo=timezone.utc)
    assert next_minute(datetime(2026, 3, 2, 9, 1, tzinfo=timezone.utc)) == datetime(2026, 3, 2, 9, 2, tzinfo=timezone.utc)
    assert minute_at_or_after(START) == datetime(2026, 3, 2, 9, 1, tzinfo=timezone.utc)
    assert minute_at_or_after(datetime(2026, 3, 2, 9, 1, tzinfo=timezone.utc)) == datetime(2026, 3, 2, 9, 1, tzinfo=timezone.utc)


def test_advance_ticks_only_at_the_minutes_where_something_is_due():
    due = [START, START + timedelta(days=1), START + timedelta(days=1, seconds=5), START + timedelta(days=3, hours=2)]
    world = FakeWorld(due)
    clock = VirtualClock(START, running=False)
    now = scheduler(world, clock).advance(30 * 86400)
    assert now == START + timedelta(days=30)
    assert world.ticks == ["2026-03-02T09:01:00Z", "2026-03-03T09:01:00Z", "2026-03-05T11:01:00Z"]
    assert world.due == []
    assert world.log[0] == "drain" and world.log.count("drain") == 1 + len(world.ticks)


def test_a_fast_forward_sums_up_its_ticks_emails_and_runs():
    world = FakeWorld([START, START + timedelta(days=1), START + timedelta(days=1, seconds=5)])
    world.emails = 40  # sent before the fast-forward
    world.records = 2  # contacts written before it: its first drain enrols them
    sched = Scheduler(clock=VirtualClock(START, running=False), invoke=world.invoke, drain=world.drain, next_due=world.next_due, tick_seconds=0, emails_sent=lambda: world.emails)
    summary = sched.fast_forward(2 * 86400).as_dict()
    assert summary["from"] == "2026-03-02T09:00:30.000Z" and summary["now"] == "2026-03-04T09:00:30.000Z"
    assert summary["ticks"] == 2 and summary["steps_due"] == 3 and summary["runs"] == {"completed": 3}
    assert summary["emails_sent"] == 3 and summary["stream_records"] == 2
    assert summary["elapsed_ms"] >= 0


def test_nothing_due_means_no_ticks_and_the_clock_lands_on_the_target():
    world = FakeWorld([START + timedelta(days=40)])
    clock = VirtualClock(START, running=False)
    assert scheduler(world, clock).advance(86400) == START + timedelta(days=1)
    assert world.ticks == []


def test_a_step_due_exactly_on_the_target_minute_runs():
    world = FakeWorld([START + timedelta(seconds=30)])  # 09:01:00
    clock = VirtualClock(START, running=False)
    scheduler(world, clock).advance(30)
    assert world.ticks == ["2026-03-02T09:01:00Z"]


def test_tick_sends_a_scheduled_event_at_the_clock_time():
    events = []
    clock = VirtualClock(START, running=False)
    s = Scheduler(clock=clock, invoke=lambda e: events.append(e) or {}, drain=lambda: 0, next_due=lambda: None, tick_seconds=0)
    s.tick()
    (event,) = events
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert event["time"] == "2026-03-02T09:00:30Z" and event["detail"] == {}
    assert event["resources"][0].startswith("arn:aws:events:")


def test_the_virtual_clock_runs_or_stands_still():
    frozen = VirtualClock(START, running=False)
    assert frozen.now() == START
    assert frozen.advance(60) == START + timedelta(seconds=60) == frozen.now()
    running = VirtualClock(START, running=True)
    assert running.now() >= START
    running.set(START + timedelta(days=1))
    assert running.now() >= START + timedelta(days=1)


def test_stopping_ends_a_fast_forward_between_ticks():
    world = FakeWorld([START + timedelta(days=d) for d in range(10)])
    clock = VirtualClock(START, running=False)
    sched = scheduler(world, clock)
    real_invoke = world.invoke

    def invoke_then_ctrl_c(event):
        result = real_invoke(event)
        if len(world.ticks) == 2:
            sched.stop()  # Ctrl-C arrives during the second tick
        return result

    sched._invoke = invoke_then_ctrl_c
    sched.advance(30 * 86400)

    assert len(world.ticks) == 2 and len(world.due) == 8
