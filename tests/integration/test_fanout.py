"""Fan-out: the per-minute processor splits the due shards between itself, its workers
and any overlapping invocation; every due step still runs exactly once."""
from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from datetime import timedelta

import pytest

from dripline import clock, fanout
from dripline.fanout import Fanout, WorkOrder, plan
from dripline.processor import Processor
from dripline.storage import runs, shards
from functions.enrollment import app as enrollment_app
from functions.processor_worker import app as worker_app
from tests.support import TASK_STEP, FakeContext, StreamReader, make_pipeline, put_contact, stream_event
from dripline_local.metering import Meter

TEAM = "acme"
ONE_TASK = {**TASK_STEP, "step_number": 1, "delay_seconds": 0}


@pytest.fixture(autouse=True)
def fresh_handlers():
    """The handlers' Fanout is built once per process: each test's from its own settings."""
    fanout.shared.cache_clear()
    yield
    fanout.shared.cache_clear()


@pytest.fixture
def due_runs(aws, settings):
    """40 runs due now, over the settings' 4 shards."""
    make_pipeline(TEAM, [ONE_TASK])
    contacts = [put_contact(TEAM, f"c{i}@example.com") for i in range(40)]
    records = StreamReader(aws.contacts_stream_arn).read()
    assert enrollment_app.lambda_handler(stream_event(records), FakeContext()) == {"batchItemFailures": []}
    return contacts


def history_lengths(contacts):
    return Counter(len(run.history) for c in contacts for run in runs.runs_of(TEAM, "contact", c.contact_id))


def live_leases():
    return shards.held(clock.now(), consistent=True)


class Workers:
    """Lambda's async Invoke, as the local stack serves it: each order runs the worker
    handler on its own thread."""

    def __init__(self):
        self.orders: list[WorkOrder] = []
        self.results: list[dict] = []
        self.threads: list[threading.Thread] = []

    def __call__(self, order: WorkOrder) -> None:
        self.orders.append(order)
        thread = threading.Thread(target=lambda: self.results.append(worker_app.lambda_handler(order.as_event(), FakeContext())))
        self.threads.append(thread)
        thread.start()

    def join(self):
        for thread in self.threads:
            thread.join()


def test_plan_groups_busy_shards_by_capacity_and_keeps_groups_even():
    backlog = {"due#0": 40, "due#1": 30, "due#2": 20, "due#3": 10, "due#4": 0}
    assert plan(backlog, capacity=1000, max_groups=5) == [["due#0", "due#1", "due#2", "due#3"]]
    groups = plan(backlog, capacity=50, max_groups=5)
    assert sorted(sum(backlog[s] for s in g) for g in groups) == [50, 50]
    assert len(plan(backlog, capacity=1, max_groups=5)) == 4  # one per busy shard at most
    assert len(plan(backlog, capacity=1, max_groups=1)) == 1  # no workers: one group
    assert plan({"due#0": 0}, capacity=10, max_groups=2) == []


def test_a_work_order_names_real_shards_and_a_lease():
    order = WorkOrder(("due#1", "due#3"), "owner", clock.now())
    assert WorkOrder.from_event(order.as_event(), shard_count=4) == order
    for bad in (
        {**order.as_event(), "shards": []},
        {**order.as_event(), "shards": ["due#4"]},
        {**order.as_event(), "shards": ["runs#1"]},
        {**order.as_event(), "lease_owner": ""},
        {**order.as_event(), "lease_expires_at": "tomorrow"},
        {**order.as_event(), "lease_expires_at": "2026-03-02T09:00:00"},
    ):
        with pytest.raises(ValueError):
            WorkOrder.from_event(bad, shard_count=4)


def test_a_small_backlog_is_run_by_the_coordinator_alone(due_runs, settings):
    workers = Workers()
    report = Fanout(Processor(settings), dispatch=workers).coordinate()
    assert report["workers"] == 0 and report["completed"] == 40 and report["shards"] == 4
    assert workers.orders == [] and live_leases() == {}
    assert history_lengths(due_runs) == {1: 40}


def test_a_big_backlog_fans_out_and_every_run_executes_once(due_runs, settings):
    small = dataclasses.replace(settings, max_runs_per_tick=10)  # 40 due: a group per shard
    workers = Workers()

    report = Fanout(Processor(small), dispatch=workers).coordinate()
    workers.join()

    assert report["workers"] == 3 and report["shards"] == 1 and len(workers.orders) == 3
    walked = [s for o in workers.orders for s in o.shards]
    assert len(walked) == len(set(walked)) == 3  # disjoint groups, none of them the coordinator's
    assert all(r.get("lost", 0) == 0 for r in [report, *workers.results])
    assert live_leases() == {}  # every group gave its shards back
    # Each invocation reads at most 10 due runs of a shard: what is left is the next tick's.
    done = report["completed"] + sum(r["completed"] for r in workers.results)
    assert Fanout(Processor(settings)).coordinate()["completed"] == 40 - done
    assert history_lengths(due_runs) == {1: 40}


def test_two_overlapping_coordinators_walk_disjoint_shards(due_runs, settings):
    barrier = threading.Barrier(2)
    reports = []

    def coordinate():
        fanout = Fanout(Processor(settings))
        barrier.wait()
        reports.append(fanout.coordinate())

    with Meter() as meter:
        threads = [threading.Thread(target=coordinate) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    assert sum(r["shards"] for r in reports) == 4  # each shard walked by one of them
    assert sum(r.get("completed", 0) for r in reports) == 40
    assert all(r.get("lost", 0) == 0 for r in reports)  # no claim lost to the other
    # Lease writes refused: when both read the leases at once, the loser's one write,
    # then it takes what is left.
    assert meter.usage().refused.get("dynamodb:UpdateItem", 0) <= 1
    assert history_lengths(due_runs) == {1: 40}


def test_a_live_lease_keeps_a_coordinator_off_that_shard_until_it_expires(due_runs, settings, frozen_clock):
    now = clock.now()
    assert shards.acquire(["due#2"], "someone-else", now, now + timedelta(seconds=90)) == ["due#2"]
    fanout = Fanout(Processor(settings))

    first = fanout.coordinate()
    assert first["shards"] == 3 and first["shards_held_elsewhere"] == 1
    assert first["completed"] == 40 - remaining_due("due#2") and remaining_due("due#2") > 0

    frozen_clock.advance(91)  # the other invocation died: its lease ran out
    second = fanout.coordinate()
    assert second["shards"] == 4 and second["completed"] == 40 - first["completed"]
    assert history_lengths(due_runs) == {1: 40}


def remaining_due(shard):
    return len(list(runs.due_candidates(shard, clock.now())))


def test_a_worker_that_starts_after_its_lease_expired_does_nothing(due_runs, settings, frozen_clock):
    now = clock.now()
    assert shards.acquire(["due#0"], "coordinator", now, now + timedelta(seconds=60)) == ["due#0"]
    order = WorkOrder(("due#0",), "coordinator", now + timedelta(seconds=60))
    frozen_clock.advance(55)  # less than the claim margin (15 s) of its lease is left

    report = worker_app.lambda_handler(order.as_event(), FakeContext())

    assert report["lease_expired"] is True and report["due"] == 0
    assert remaining_due("due#0") > 0


def test_a_worker_event_naming_an_unknown_shard_is_refused(aws):
    with pytest.raises(ValueError, match="due#9"):
        worker_app.lambda_handler({"shards": ["due#9"], "lease_owner": "x", "lease_expires_at": clock.now().isoformat()}, FakeContext())


def test_a_worker_that_cannot_be_started_gives_its_shards_back(due_runs, settings):
    small = dataclasses.replace(settings, max_runs_per_tick=10)

    def refuse(order):
        raise RuntimeError("TooManyRequestsException")

    report = Fanout(Processor(small), dispatch=refuse).coordinate()

    assert report["worker_start_failures"] == 3 and report["workers"] == 0
    assert live_leases() == {}  # the next tick takes them
    second = Fanout(Processor(settings)).coordinate()
    assert second["completed"] == 40 - report["completed"]
    assert history_lengths(due_runs) == {1: 40}

