"""Pipeline runs: enrollment writes, the processor's claim/finish, cancellation, reads.

Every state change is a single-item conditional write, so concurrent writers (two
processor ticks, a redelivered stream record, an API call) cannot both win.
"""
from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from dripline.domain import ACTIVE_STATUSES, ClaimedRun, PipelineSpec, RunStatus, Source
from dripline.engine import Decision, Schedule
from dripline.errors import NotFound
from dripline.storage import stats
from dripline.storage.models import HistoryEntry, PipelineRun, run_owner
from dripline.storage.util import is_condition_failure


@dataclass(frozen=True)
class EnrollResult:
    run: PipelineRun
    created: bool
    # Why nothing was created: "duplicate" (same cause seen before) or "active" (one runs).
    reason: str | None = None


@dataclass(frozen=True)
class DueCandidate:
    owner: str
    run_id: str
    status: str
    next_step_at: datetime
    lease_expires_at: datetime | None


def due_shard_of(run_id: str, shards: int) -> str:
    """A run's due-index partition: stable per run, spread evenly over `shards`."""
    return f"due#{int(hashlib.sha256(run_id.encode()).hexdigest()[:8], 16) % shards}"


def runs_of(team_id: str, pipelineable_type: str, pipelineable_id: str) -> list[PipelineRun]:
    """All runs of one contact, strongly consistent (one partition)."""
    return list(PipelineRun.query(run_owner(team_id, pipelineable_type, pipelineable_id), consistent_read=True))


def create_run(
    *,
    pipeline: PipelineSpec,
    pipelineable_type: str,
    pipelineable_id: str,
    source: Source,
    enrollment_key: str,
    schedule: Schedule,
    now: datetime,
    due_shards: int,
) -> EnrollResult:
    """Enroll one pipelineable in one pipeline, at most once per cause, one active run at most.

    The run id is derived from (pipelineable, pipeline, generation), where generation
    counts earlier runs of the pipeline. Two writers that race both derive the same id
    and the conditional put lets exactly one of them win.
    """
    owner = run_owner(pipeline.team_id, pipelineable_type, pipelineable_id)
    for _ in range(3):
        existing = [r for r in runs_of(pipeline.team_id, pipelineable_type, pipelineable_id) if r.pipeline_id == pipeline.pipeline_id]
        same_cause = next((r for r in existing if r.enrollment_key == enrollment_key), None)
        if same_cause is not None:
            return EnrollResult(same_cause, created=False, reason="duplicate")
        active = next((r for r in existing if r.status in ACTIVE_STATUSES), None)
        if active is not None:
            return EnrollResult(active, created=False, reason="active")

        run_id = _run_id(owner, pipeline.pipeline_id, generation=len(existing))
        run = PipelineRun(
            owner,
            run_id,
            team_id=pipeline.team_id,
            pipeline_id=pipeline.pipeline_id,
            pipeline_key=f"{pipeline.team_id}#{pipeline.pipeline_id}",
            pipeline_version=pipeline.version,
            pipelineable_type=pipelineable_type,
            pipelineable_id=pipelineable_id,
            source=source.value,
            enrollment_key=enrollment_key,
            status=schedule.status.value,
            next_step_number=schedule.next_step_number,
            next_step_at=schedule.next_step_at,
            due_shard=due_shard_of(run_id, due_shards) if schedule.status is RunStatus.PENDING else None,
            attempts=0,
            history=[],
            created_at=now,
            updated_at=now,
            completed_at=None if schedule.status.active else now,
        )
        try:
            run.save(condition=PipelineRun.run_id.does_not_exist())
        except PutError as exc:
            if is_condition_failure(exc):
                continue  # a concurrent writer took this generation: look again
            raise
        stats.run_created(pipeline.team_id, pipeline.pipeline_id, schedule.status)
        return EnrollResult(run, created=True)
    raise RuntimeError(f"could not enroll {owner} in {pipeline.pipeline_id}: too much contention")


def cancel_run(run: PipelineRun, now: datetime, reason: str) -> bool:
    """Cancel an active run; False if it had already ended. Safe to repeat."""
    current = run
    for _ in range(5):
        previous = current.status
        if previous not in ACTIVE_STATUSES:
            return False
        try:
            current.update(
                actions=[
                    PipelineRun.status.set(RunStatus.CANCELLED.value),
                    PipelineRun.last_error.set(reason),
                    PipelineRun.due_shard.remove(),
                    PipelineRun.next_step_at.remove(),
                    PipelineRun.next_step_number.remove(),
                    PipelineRun.completed_at.set(now),
                    PipelineRun.updated_at.set(now),
                ],
                # A running step's finish is conditioned on status=running, so it will
                # see the cancellation and only append its history entry.
                condition=PipelineRun.status == previous,
            )
        except UpdateError as exc:
            if not is_condition_failure(exc):
                raise
            current = PipelineRun.get(run.owner, run.run_id, consistent_read=True)
            continue
        stats.run_moved(current.team_id, current.pipeline_id, RunStatus(previous), RunStatus.CANCELLED)
        return True
    raise RuntimeError(f"could not cancel run {run.run_id}: too much contention")


def cancel_active_runs(
    team_id: str, pipelineable_type: str, pipelineable_id: str, now: datetime, reason: str, *, pipeline_ids: set[str] | None = None
) -> int:
    cancelled = 0
    for run in runs_of(team_id, pipelineable_type, pipelineable_id):
        if run.status in ACTIVE_STATUSES and (pipeline_ids is None or run.pipeline_id in pipeline_ids):
            cancelled += cancel_run(run, now, reason)
    return cancelled


# --- the processor's side ---------------------------------------------------------------


def due_candidates(shard: str, now: datetime, limit: int | None = None, page_size: int = 200) -> Iterator[DueCandidate]:
    """Runs of one shard whose next step (or lease) may be due, oldest first, at most
    `limit`; a hint, not a promise."""
    query = PipelineRun.due_index.query(shard, PipelineRun.next_step_at <= now, limit=limit, page_size=page_size)
    for item in query:
        yield DueCandidate(item.owner, item.run_id, item.status, item.next_step_at, item.lease_expires_at)


def next_due_at(due_shards: int, scan_limit: int = 200) -> datetime | None:
    """When the processor next has something to do: the earliest pending next_step_at,
    or lease expiry of a running run, over every shard of the due index.

    Lets the local stack's virtual clock skip idle minutes. A `running` run sorts by its
    old next_step_at but is only due when its lease expires, so the search looks past
    such runs to the first pending run behind them: skipping never makes a step late.
    """
    earliest: datetime | None = None

    def consider(moment: datetime | None) -> None:
        nonlocal earliest
        if moment is not None and (earliest is None or moment < earliest):
            earliest = moment

    for n in range(due_shards):
        for seen, item in enumerate(PipelineRun.due_index.query(f"due#{n}", page_size=50)):
            if item.status == RunStatus.RUNNING.value and item.lease_expires_at is not None:
                consider(item.lease_expires_at)
                if seen >= scan_limit:  # pathological: tick now rather than guess
                    consider(item.next_step_at)
                    break
                continue
            consider(item.next_step_at)
            break
    return earliest


def claim(candidate: DueCandidate, now: datetime, lease_seconds: int) -> ClaimedRun | None:
    """Take the lease on a due run, or None if another invocation has it / it moved on.

    The condition is evaluated on the base table, atomically: the index only suggested
    the run. A `running` run can be taken over only once its lease has expired.
    """
    reclaim = candidate.status == RunStatus.RUNNING.value
    if reclaim:
        condition = (PipelineRun.status == RunStatus.RUNNING.value) & (PipelineRun.lease_expires_at <= now)
    else:
        condition = (PipelineRun.status == RunStatus.PENDING.value) & (PipelineRun.next_step_at <= now)
    lease_owner = uuid.uuid4().hex
    run = PipelineRun(candidate.owner, candidate.run_id)
    actions = [
        PipelineRun.status.set(RunStatus.RUNNING.value),
        PipelineRun.lease_owner.set(lease_owner),
        PipelineRun.lease_expires_at.set(now + timedelta(seconds=lease_seconds)),
        PipelineRun.updated_at.set(now),
    ]
    if reclaim:
        # A lease that expired is an attempt that never finished: counted, so a step that
        # keeps killing its processor ends `failed` instead of being reclaimed forever.
        actions.append(PipelineRun.attempts.add(1))
    try:
        run.update(
            actions=actions,
            condition=condition & PipelineRun.run_id.exists(),
        )
    except UpdateError as exc:
        if is_condition_failure(exc):
            return None
        raise
    if not reclaim:
        stats.run_moved(run.team_id, run.pipeline_id, RunStatus.PENDING, RunStatus.RUNNING)
    return ClaimedRun(
        owner=run.owner,
        run_id=run.run_id,
        team_id=run.team_id,
        pipeline_id=run.pipeline_id,
        pipeline_version=int(run.pipeline_version),
        pipelineable_type=run.pipelineable_type,
        pipelineable_id=run.pipelineable_id,
        step_number=int(run.next_step_number),
        scheduled_at=run.next_step_at,
        attempts=int(run.attempts or 0),
        lease_owner=lease_owner,
        reclaimed=reclaim,
    )


# What finish() wrote when it could not write the decision.
LOST = "lost"
CANCELLED_MEANWHILE = "cancelled_meanwhile"


def finish(claimed: ClaimedRun, decision: Decision, now: datetime, due_shards: int) -> str:
    """Record a step attempt and move the run on, if we still hold its lease.

    Returns the status written: the decision's, or CANCELLED_MEANWHILE when the run was
    cancelled mid-step (then only the history entry is appended), or LOST when the
    lease was taken over (nothing written; the new holder decides). The caller updates
    the stats counters (one write for the run and step counters together).
    """
    schedule = decision.schedule
    actions = [
        PipelineRun.status.set(schedule.status.value),
        PipelineRun.attempts.set(decision.attempts),
        PipelineRun.lease_owner.remove(),
        PipelineRun.lease_expires_at.remove(),
        PipelineRun.updated_at.set(now),
    ]
    actions.append(PipelineRun.last_error.set(decision.last_error) if decision.last_error else PipelineRun.last_error.remove())
    history_actions = []
    if decision.history is not None:
        history_actions = [
            PipelineRun.history.set(PipelineRun.history.append([_history_entry(decision)])),
            PipelineRun.current_step.set(decision.history.step_number),
        ]
    if schedule.status is RunStatus.PENDING:
        actions += [
            PipelineRun.next_step_number.set(schedule.next_step_number),
            PipelineRun.next_step_at.set(schedule.next_step_at),
            PipelineRun.due_shard.set(due_shard_of(claimed.run_id, due_shards)),
        ]
    else:
        actions += [
            PipelineRun.next_step_number.remove(),
            PipelineRun.next_step_at.remove(),
            PipelineRun.due_shard.remove(),
            PipelineRun.completed_at.set(now),
        ]
    run = PipelineRun(claimed.owner, claimed.run_id)
    # The lease owner is a fresh id per claim: matching it proves nobody took over since.
    held = PipelineRun.lease_owner == claimed.lease_owner
    try:
        run.update(actions=actions + history_actions, condition=held & (PipelineRun.status == RunStatus.RUNNING.value))
        return schedule.status.value
    except UpdateError as exc:
        if not is_condition_failure(exc):
            raise
    try:
        run.update(
            actions=history_actions + [PipelineRun.lease_owner.remove(), PipelineRun.lease_expires_at.remove()],
            condition=held & (PipelineRun.status == RunStatus.CANCELLED.value),
        )
        return CANCELLED_MEANWHILE
    except UpdateError as exc:
        if is_condition_failure(exc):
            return LOST
        raise


def _history_entry(decision: Decision) -> HistoryEntry:
    h = decision.history
    assert h is not None
    return HistoryEntry(
        step_number=h.step_number,
        action_type=h.action_type,
        outcome=h.outcome.value,
        scheduled_at=h.scheduled_at,
        executed_at=h.executed_at,
        attempt=h.attempt,
        detail=h.detail,
        error=h.error,
    )


# --- reads for the API ------------------------------------------------------------------


def get_run(team_id: str, run_id: str) -> PipelineRun:
    """A run of this team by id; another team's run is NotFound like an unknown one."""
    return _run_by_id(run_id, owner_prefix=f"{team_id}#")


def get_run_by_id(run_id: str) -> PipelineRun:
    """A run of any team, by id (for events that carry only the run id, such as SES's)."""
    return _run_by_id(run_id, owner_prefix="")


def _run_by_id(run_id: str, owner_prefix: str) -> PipelineRun:
    for key in PipelineRun.run_id_index.query(run_id):
        if key.owner.startswith(owner_prefix):
            try:
                return PipelineRun.get(key.owner, run_id, consistent_read=True)
            except DoesNotExist:
                break
    raise NotFound(f"run {run_id} not found")


def list_runs(
    team_id: str, *, status: str | None = None, pipeline_id: str | None = None, limit: int = 50, start_key: dict | None = None
) -> tuple[list[PipelineRun], dict | None]:
    """Newest first; filtered by status and/or pipeline. Returns (page, key to continue)."""
    condition = PipelineRun.status == status if status else None
    if pipeline_id:
        result = PipelineRun.pipeline_index.query(
            f"{team_id}#{pipeline_id}", filter_condition=condition, limit=limit, last_evaluated_key=start_key, scan_index_forward=False
        )
    else:
        result = PipelineRun.team_index.query(
            team_id, filter_condition=condition, limit=limit, last_evaluated_key=start_key, scan_index_forward=False
        )
    items = list(result)
    return items, result.last_evaluated_key


def _run_id(owner: str, pipeline_id: str, generation: int) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"dripline:{owner}:{pipeline_id}:{generation}").hex
