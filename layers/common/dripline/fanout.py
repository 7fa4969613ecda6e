"""Fan-out: the per-minute processor splits the due shards between invocations.

    EventBridge rate(1 minute) -> coordinate()                    (functions/processor)
        backlog of every shard (Select=COUNT queries, no items travel; skipped while
        the last tick fitted in one invocation: then one group of every free shard)
        -> groups of busy shards, one group per MAX_RUNS_PER_TICK due runs
        -> a lease on the busy shards no live invocation holds (one conditional write)
        group 1..n -> async Invoke of the worker with a WorkOrder   (functions/processor_worker)
        group 0    -> Processor.tick(shards=group 0) here, then its leases are released
    work(order) -> Processor.tick(shards=order.shards) while the lease lasts, then release.

Why leases: overlapping invocations (a tick outliving its minute, a worker still
draining) would otherwise walk the same oldest-first lists and lose claim after claim
to each other. The claims on the runs stay the guarantee that no step runs twice; a
lease only decides who walks a shard. A dead invocation's shards come back when its
lease expires (SHARD_LEASE_SECONDS).

Why asynchronous Lambda invocations rather than SQS: a group is work for right now or
never (the next minute's coordinator re-plans from the index), so there is nothing to
queue: one Invoke per group, no queue to poll, size or redrive, and no visibility
timeout to tune. Lambda's own async queue absorbs throttling; the worker's event age
is capped below the lease, and an event that still fails lands in the on-failure queue
for inspection (the shards it named are simply walked again by a later tick).
"""
from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import boto3
from botocore.config import Config

from dripline import clock, runtime
from dripline.observability import MetricUnit, logger, metrics
from dripline.processor import Processor, TickReport
from dripline.settings import Settings
from dripline.storage import shards as due_shards

SHARD = re.compile(r"due#(\d+)")


@dataclass(frozen=True)
class WorkOrder:
    """What the coordinator hands a worker: shards it leased for it, and until when."""

    shards: tuple[str, ...]
    lease_owner: str
    lease_expires_at: datetime

    def as_event(self) -> dict:
        return {"shards": list(self.shards), "lease_owner": self.lease_owner, "lease_expires_at": self.lease_expires_at.isoformat()}

    @classmethod
    def from_event(cls, event: Mapping, shard_count: int) -> "WorkOrder":
        """Parse and check a worker event (ValueError names what is wrong)."""
        shards = event.get("shards")
        if not isinstance(shards, list) or not shards:
            raise ValueError("shards: a non-empty list of due#<n> is required")
        for shard in shards:
            match = SHARD.fullmatch(shard) if isinstance(shard, str) else None
            if match is None or int(match.group(1)) >= shard_count:
                raise ValueError(f"shards: {shard!r} is not a shard of this table (due#0..due#{shard_count - 1})")
        owner = event.get("lease_owner")
        if not isinstance(owner, str) or not owner:
            raise ValueError("lease_owner: required")
        try:
            expires = datetime.fromisoformat(str(event.get("lease_expires_at")))
        except ValueError:
            raise ValueError("lease_expires_at: an ISO 8601 time with its offset is required") from None
        if expires.tzinfo is None:
            raise ValueError("lease_expires_at: an ISO 8601 time with its offset is required")
        return cls(tuple(dict.fromkeys(shards)), owner, expires)


def plan(backlog: Mapping[str, int], capacity: int, max_groups: int) -> list[list[str]]:
    """Busy shards in groups of about `capacity` due runs each (at most `max_groups`):
    the largest shard first into the lightest group, so the groups come out even."""
    busy = sorted((s for s, n in backlog.items() if n > 0), key=lambda s: (-backlog[s], s))
    if not busy:
        return []
    total = sum(backlog[s] for s in busy)
    count = max(1, min(len(busy), max_groups, -(-total // max(1, capacity))))
    groups: list[list[str]] = [[] for _ in range(count)]
    loads = [0] * count
    for shard in busy:
        lightest = loads.index(min(loads))
        groups[lightest].append(shard)
        loads[lightest] += backlog[shard]
    return groups


class LambdaWorkers:
    """Hands a WorkOrder to the worker function: one asynchronous Invoke per group."""

    def __init__(self, settings: Settings) -> None:
        # A repeated Invoke only starts a worker that finds its shards' work done: safe.
        config = Config(connect_timeout=3, read_timeout=10, retries={"mode": "standard", "total_max_attempts": 3})
        self.client = boto3.session.Session().client("lambda", region_name=settings.region, config=config)
        self.function_name = settings.worker_function

    def __call__(self, order: WorkOrder) -> None:
        self.client.invoke(FunctionName=self.function_name, InvocationType="Event", Payload=json.dumps(order.as_event()).encode())


class Fanout:
    def __init__(self, processor: Processor, dispatch: Callable[[WorkOrder], None] | None = None) -> None:
        self.processor = processor
        self.settings = processor.settings
        if dispatch is None and self.settings.worker_function:
            dispatch = LambdaWorkers(self.settings)
        # None: no worker function; the coordinator walks what it leases by itself.
        self.dispatch = dispatch
        # Counting the backlog costs a query per shard: done on the first tick of a process
        # and after a tick that found one invocation's worth due (one minute's delay to fan
        # out after a quiet spell, instead of 8+ queries every quiet minute).
        self._expect_backlog = True

    # --- the per-minute invocation ------------------------------------------------------
    def coordinate(self, remaining_ms: Callable[[], int] = lambda: 10**9) -> dict:
        now = clock.now()
        names = due_shards.names(self.settings.due_shards)
        held = due_shards.held(now)  # one read: the shards overlapping invocations walk
        free = [s for s in names if s not in held]
        cap = self.settings.max_runs_per_tick
        if self.dispatch is not None and self._expect_backlog:
            backlog = dict(zip(free, self._parallel(lambda s: due_shards.backlog(s, now, cap), free)))
            groups = plan(backlog, cap, max_groups=len(free))
        else:  # no workers, or the last tick fitted in one invocation: walk every free shard here
            groups = [free] if free else []

        owner = uuid.uuid4().hex
        until = now + timedelta(seconds=self.settings.shard_lease_seconds)
        busy = [s for group in groups for s in group]
        taken = set(due_shards.acquire(busy, owner, now, until))
        groups = [[s for s in group if s in taken] for group in groups]
        groups = [group for group in groups if group]

        dispatched = failed = 0
        for group in groups[1:]:
            order = WorkOrder(tuple(group), owner, until)
            try:
                self.dispatch(order)  # type: ignore[misc] - groups[1:] exist only with a dispatcher
                dispatched += 1
            except Exception:  # noqa: BLE001 - the next tick walks these shards instead
                logger.exception("could not start a worker; its shards wait for the next tick", extra={"shards": group})
                self._release(group, owner)
                failed += 1
        mine = groups[0] if groups else []
        try:
            report = self.processor.tick(_within(remaining_ms, until), shards=mine)
        finally:
            self._release(mine, owner)
        # A tick that read as many due runs as one invocation runs may have left more: the
        # next one counts the backlog per shard (and fans out); otherwise it skips counting.
        self._expect_backlog = report.due >= cap or bool(groups[1:])
        metrics.add_metric(name="WorkersStarted", unit=MetricUnit.Count, value=dispatched)
        if failed:
            metrics.add_metric(name="WorkerStartFailures", unit=MetricUnit.Count, value=failed)
        return {
            **report.as_dict(),
            "shards": len(mine),
            "workers": dispatched,
            "worker_start_failures": failed,
            "shards_held_elsewhere": len(held) + len(busy) - len(taken),
        }

    # --- a worker invocation ------------------------------------------------------------
    def work(self, event: Mapping, remaining_ms: Callable[[], int] = lambda: 10**9) -> dict:
        order = WorkOrder.from_event(event, self.settings.due_shards)
        left = _within(remaining_ms, order.lease_expires_at)
        if left() <= self.settings.claim_margin_seconds * 1000:
            # Started too late (Lambda's async queue held it): a later tick owns these shards now.
            logger.warning("worker started after its shard lease ran out; nothing to do", extra=order.as_event())
            return {**TickReport().as_dict(), "shards": 0, "lease_expired": True}
        try:
            report = self.processor.tick(left, shards=order.shards)
        finally:
            self._release(order.shards, order.lease_owner)
        return {**report.as_dict(), "shards": len(order.shards)}

    # --- helpers ---------------------------------------------------------------------
    def _release(self, shards: Sequence[str], owner: str) -> None:
        due_shards.release(shards, owner)

    @staticmethod
    def _parallel(fn: Callable, items: Sequence) -> list:
        if not items:
            return []
        with ThreadPoolExecutor(max_workers=min(8, len(items))) as pool:
            return list(pool.map(fn, items))


@lru_cache(maxsize=1)
def shared() -> Fanout:
    """The process's Fanout for the handlers, built on first use (not at import): the AWS
    clients it holds live across invocations."""
    return Fanout(Processor(runtime.settings()))


def _within(remaining_ms: Callable[[], int], until: datetime) -> Callable[[], int]:
    """The invocation's remaining time, but never past the shard lease's expiry."""
    return lambda: min(remaining_ms(), int((until - clock.now()).total_seconds() * 1000))
