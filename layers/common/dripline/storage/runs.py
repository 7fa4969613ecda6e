"""Pipeline runs: enrollment writes, the processor's claim/finish, cancellation, reads.

Every state change is a single-item conditional write, so concurrent writers (two
processor ticks, a redelivered stream record, an API call) cannot both win.
"""
from __future__ import annotations

import hashlib
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from pynamodb.exceptions import DoesNotExist, PynamoDBException

from dripline import observability
from dripline.domain import ACTIVE_STATUSES, ClaimedRun, Outcome, PipelineSpec, RunStatus, Source, StepRecord
from dripline.engine import Decision, Schedule
from dripline.errors import NotFound
from dripline.storage import pipelines, stats
from dripline.storage.models import PipelineRun, run_owner
from dripline.storage.util import is_condition_failure, is_transient


@dataclass(frozen=True)
class EnrollResult:
    run: PipelineRun
    created: bool
    # Why nothing was created: "duplicate" (same cause seen before) or "active" (one runs).
    reason: str | None = None


@dataclass(frozen=True)
class DueCandidate:
    """A due-index entry (keys only): a hint that the run may be due; the claim decides."""

    owner: str
    run_id: str
    next_step_at: datetime


# Conditional writes retried here after the SDK's own retries, with backoff (seconds).
WRITE_ATTEMPTS = 4
WRITE_BACKOFF_SECONDS = 0.1
# A run's compact history keeps step details while it stays under this many bytes
# (the newest step keeps its detail always); errors are cut to ERROR_CHARS.
HISTORY_DETAIL_BUDGET = 360
ERROR_CHARS = 120


def due_shard_of(run_id: str, shards: int) -> str:
    """A run's due-index partition: stable per run, spread evenly over `shards`."""
    return f"due#{int(hashlib.sha256(run_id.encode()).hexdigest()[:8], 16) % shards}"


def new_token() -> str:
    """A per-write token (64 random bits): stored by the write, recognised after a lost answer."""
    return uuid.uuid4().hex[:16]


def runs_of(team_id: str, pipelineable_type: str, pipelineable_id: str) -> list[PipelineRun]:
    """All runs of one contact, strongly consistent (one partition)."""
    return list(PipelineRun.query(run_owner(team_id, pipelineable_type, pipelineable_id), consistent_read=True))


def _read(owner: str, run_id: str) -> PipelineRun | None:
    try:
        return PipelineRun.get(owner, run_id, consistent_read=True)
    except DoesNotExist:
        return None


def _write_once(write: Callable[[], object], recognise: Callable[[], PipelineRun | None]) -> PipelineRun | bool:
    """Make one conditional write whose item carries our token, exactly once.

    True: the write applied. A run: it had applied before (an SDK retry after a lost
    answer then failed the condition) and `recognise` found our token on it. False: its
    condition failed (someone else's change). A throttle or 5xx that outlives the SDK's
    retries is retried here with backoff: the condition and the token make that safe.
    """
    for attempt in range(WRITE_ATTEMPTS):
        try:
            write()
            return True
        except PynamoDBException as exc:
            if is_condition_failure(exc):
                return recognise() or False
            if not is_transient(exc) or attempt == WRITE_ATTEMPTS - 1:
                raise
        time.sleep(WRITE_BACKOFF_SECONDS * 2**attempt)
    raise AssertionError("unreachable")


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
    tally: stats.Tally | None = None,
    existing: list[PipelineRun] | None = None,
) -> EnrollResult:
    """Enroll one pipelineable in one pipeline, at most once per cause, one active run at most.

    The run id is derived from (pipelineable, pipeline, generation), where generation
    counts earlier runs of the pipeline. Two writers that race both derive the same id
    and the conditional put lets exactly one of them win. `existing` is the
    pipelineable's runs as just read (`runs_of`): enrolling in several pipelines reads
    them once. The created run is counted in `tally` (or at once, without one).
    """
    owner = run_owner(pipeline.team_id, pipelineable_type, pipelineable_id)
    token = new_token()
    for _ in range(3):
        if existing is None:
            existing = runs_of(pipeline.team_id, pipelineable_type, pipelineable_id)
        mine = [r for r in existing if r.pipeline_id == pipeline.pipeline_id]
        existing = None  # a second round reads again
        same_cause = next((r for r in mine if r.enrollment_key == enrollment_key), None)
        if same_cause is not None:
            return EnrollResult(same_cause, created=False, reason="duplicate")
        active = next((r for r in mine if r.status in ACTIVE_STATUSES), None)
        if active is not None:
            return EnrollResult(active, created=False, reason="active")

        run_id = _run_id(owner, pipeline.pipeline_id, generation=len(mine))
        run = PipelineRun(
            owner,
            run_id,
            team_id=pipeline.team_id,
            pipeline_id=pipeline.pipeline_id,
            pipeline_version=pipeline.version,
            source=source.value,
            enrollment_key=enrollment_key,
            status=schedule.status.value,
            next_step_number=schedule.next_step_number,
            next_step_at=schedule.next_step_at,
            due_shard=due_shard_of(run_id, due_shards) if schedule.status is RunStatus.PENDING else None,
            attempts=0,
            write_token=token,
            history=[],
            created_at=now,
            updated_at=now,
            completed_at=None if schedule.status.active else now,
            correlation_id=observability.correlation_id(),
        )
        written = _write_once(
            lambda: run.save(condition=PipelineRun.run_id.does_not_exist()),
            lambda: _ours(owner, run_id, token),
        )
        if written is False:
            continue  # a concurrent writer took this generation: look again
        _count(tally, lambda t: t.run_created(pipeline.team_id, pipeline.pipeline_id, schedule.status))
        return EnrollResult(run if written is True else written, created=True)
    raise RuntimeError(f"could not enroll {owner} in {pipeline.pipeline_id}: too much contention")


def _ours(owner: str, run_id: str, token: str) -> PipelineRun | None:
    """The run, if its last create/finish/cancel was the write carrying `token`."""
    run = _read(owner, run_id)
    return run if run is not None and run.write_token == token else None


def _count(tally: stats.Tally | None, record: Callable[[stats.Tally], None]) -> None:
    """Record a transition in `tally`, or, without one, write it at once."""
    if tally is not None:
        record(tally)
        return
    with stats.Tally() as one_off:
        record(one_off)


def cancel_run(run: PipelineRun, now: datetime, reason: str, tally: stats.Tally | None = None) -> bool:
    """Cancel an active run; False if it had already ended. Safe to repeat."""
    return _end_run(run, now, RunStatus.CANCELLED, [PipelineRun.last_error.set(reason)], tally)


def exit_run(run: PipelineRun, now: datetime, match: str, tally: stats.Tally | None = None) -> bool:
    """End an active run as `exited`: its version's exit_when held at `match` (a path
    such as "exit_when.any[1]"). False if it had already ended. Safe to repeat."""
    return _end_run(run, now, RunStatus.EXITED, [PipelineRun.exit_match.set(match), PipelineRun.last_error.remove()], tally)


def _end_run(run: PipelineRun, now: datetime, status: RunStatus, why: list, tally: stats.Tally | None) -> bool:
    """Move an active run to the ended `status` with one conditional write on the status
    it was read in; a concurrent change (a claim, a finish) makes it read again and retry.

    A claimed (`running`) run is ended too: the processor's finish is conditioned on
    `running`, so it sees the end and only records its step; no later claim takes the
    run (a claim needs `pending`). Returns False if the run had already ended.
    """
    current = run
    token = new_token()
    for _ in range(5):
        previous = current.status
        if previous not in ACTIVE_STATUSES:
            return False
        target = PipelineRun(current.owner, current.run_id)
        written = _write_once(
            lambda: target.update(
                actions=[
                    PipelineRun.status.set(status.value),
                    *why,
                    PipelineRun.due_shard.remove(),
                    PipelineRun.next_step_at.remove(),
                    PipelineRun.next_step_number.remove(),
                    PipelineRun.completed_at.set(now),
                    PipelineRun.updated_at.set(now),
                    PipelineRun.write_token.set(token),
                ],
                condition=PipelineRun.status == previous,
            ),
            lambda: _ours(current.owner, current.run_id, token),
        )
        if written is False:
            current = _read(run.owner, run.run_id)
            if current is None:
                return False
            continue
        _count(tally, lambda t: t.run_moved(current.team_id, current.pipeline_id, RunStatus(previous), status))
        return True
    raise RuntimeError(f"could not end run {run.run_id} as {status.value}: too much contention")


def cancel_active_runs(
    team_id: str,
    pipelineable_type: str,
    pipelineable_id: str,
    now: datetime,
    reason: str,
    *,
    pipeline_ids: set[str] | None = None,
    tally: stats.Tally | None = None,
) -> int:
    cancelled = 0
    for run in runs_of(team_id, pipelineable_type, pipelineable_id):
        if run.status in ACTIVE_STATUSES and (pipeline_ids is None or run.pipeline_id in pipeline_ids):
            cancelled += cancel_run(run, now, reason, tally)
    return cancelled


# --- the processor's side ---------------------------------------------------------------


def due_candidates(shard: str, now: datetime, limit: int | None = None, page_size: int = 200) -> Iterator[DueCandidate]:
    """Runs of one shard whose next step (or lease) may be due, oldest first, at most
    `limit`; a hint, not a promise."""
    query = PipelineRun.due_index.query(shard, PipelineRun.next_step_at <= now, limit=limit, page_size=page_size)
    for item in query:
        yield DueCandidate(item.owner, item.run_id, item.next_step_at)


def next_due_at(due_shards: int, scan_limit: int = 200) -> datetime | None:
    """When the processor next has something to do: the earliest pending next_step_at,
    or lease expiry of a running run, over every shard of the due index.

    Lets the local stack's virtual clock skip idle minutes. A `running` run sorts by its
    old next_step_at but is only due when its lease expires, so the search looks past
    such runs to the first pending run behind them: skipping never makes a step late.
    The index holds keys only, so each page's runs are read with BatchGetItem.
    """
    earliest: datetime | None = None

    def consider(moment: datetime | None) -> None:
        nonlocal earliest
        if moment is not None and (earliest is None or moment < earliest):
            earliest = moment

    # Each shard's first entry, their runs read in one BatchGetItem: usually a pending
    # run, which settles the shard. A shard led by a running run is read further.
    heads = {n: next(iter(PipelineRun.due_index.query(f"due#{n}", limit=1)), None) for n in range(due_shards)}
    found = _batch_read([(e.owner, e.run_id) for e in heads.values() if e is not None], attributes=STATE_ATTRIBUTES)
    for n, head in heads.items():
        if head is None:
            continue
        run = found.get((head.owner, head.run_id))
        if run is not None and run.status == RunStatus.PENDING.value:
            consider(head.next_step_at)
            continue
        entries = list(PipelineRun.due_index.query(f"due#{n}", limit=scan_limit, page_size=50))
        states = _batch_read([(e.owner, e.run_id) for e in entries], attributes=STATE_ATTRIBUTES)
        for entry in entries:
            run = states.get((entry.owner, entry.run_id))
            if run is None:
                continue  # ended since the index was read
            if run.status == RunStatus.RUNNING.value and run.lease_expires_at is not None:
                consider(run.lease_expires_at)
                continue
            consider(entry.next_step_at)
            break
        else:
            if len(entries) >= scan_limit:  # pathological: tick now rather than guess
                consider(entries[0].next_step_at)
    return earliest


# Stored names (pynamodb's attributes_to_get takes them as stored).
STATE_ATTRIBUTES = [a.attr_name for a in (PipelineRun.owner, PipelineRun.run_id, PipelineRun.status, PipelineRun.lease_expires_at)]


def _batch_read(keys: list[tuple[str, str]], attributes: list[str] | None = None) -> dict[tuple[str, str], PipelineRun]:
    """Runs by key, 100 per BatchGetItem (pynamodb re-asks for UnprocessedKeys)."""
    if not keys:
        return {}
    found = PipelineRun.batch_get(list(dict.fromkeys(keys)), attributes_to_get=attributes)
    return {(run.owner, run.run_id): run for run in found}


def claim(candidate: DueCandidate, now: datetime, lease_seconds: int) -> ClaimedRun | None:
    """Take the lease on a due run, or None if another invocation has it / it moved on.

    One conditional update on the base table: `pending` and due, or `running` with an
    expired lease (its holder died). It adds the attempt, keeps the status it found (a
    reclaim is an attempt that never finished) and writes no index. A lost answer
    whose SDK retry then fails the condition is recognised by our lease owner.
    """
    due = (PipelineRun.status == RunStatus.PENDING.value) & (PipelineRun.next_step_at <= now)
    expired = (PipelineRun.status == RunStatus.RUNNING.value) & (PipelineRun.lease_expires_at <= now)
    lease_owner = new_token()
    run = PipelineRun(candidate.owner, candidate.run_id)
    written = _write_once(
        lambda: run.update(
            actions=[
                PipelineRun.claimed_from.set(PipelineRun.status),
                PipelineRun.status.set(RunStatus.RUNNING.value),
                PipelineRun.lease_owner.set(lease_owner),
                PipelineRun.lease_expires_at.set(now + timedelta(seconds=lease_seconds)),
                PipelineRun.attempts.add(1),
                PipelineRun.updated_at.set(now),
            ],
            condition=(due | expired) & PipelineRun.run_id.exists(),
        ),
        lambda: _claimed_by(candidate, lease_owner),
    )
    if written is False:
        return None
    claimed = run if written is True else written
    return ClaimedRun(
        owner=claimed.owner,
        run_id=claimed.run_id,
        team_id=claimed.team_id,
        pipeline_id=claimed.pipeline_id,
        pipeline_version=int(claimed.pipeline_version),
        pipelineable_type=claimed.pipelineable_type,
        pipelineable_id=claimed.pipelineable_id,
        step_number=int(claimed.next_step_number),
        scheduled_at=claimed.next_step_at,
        attempts=int(claimed.attempts) - 1,  # this attempt is not a failed one (yet)
        lease_owner=lease_owner,
        reclaimed=claimed.claimed_from == RunStatus.RUNNING.value,
        history=tuple(claimed.history or ()),
        last_error=claimed.last_error,
        correlation_id=claimed.correlation_id,
    )


def _claimed_by(candidate: DueCandidate, lease_owner: str) -> PipelineRun | None:
    run = _read(candidate.owner, candidate.run_id)
    return run if run is not None and run.lease_owner == lease_owner else None


# What finish() wrote when it could not write the decision: LOST, or the run was ended
# mid-step by someone else (its status, by what finish() answers then).
LOST = "lost"
ENDED_MEANWHILE = {"cancelled_meanwhile": RunStatus.CANCELLED, "exited_meanwhile": RunStatus.EXITED}


def finish(claimed: ClaimedRun, decision: Decision, now: datetime, due_shards: int) -> str:
    """Record a step attempt and move the run on, if we still hold its lease.

    Returns the status written: the decision's, or "cancelled_meanwhile" /
    "exited_meanwhile" (ENDED_MEANWHILE) when the run was cancelled or exited mid-step
    (then only the step is recorded), or LOST when the lease was taken over (nothing
    written; the new holder decides). Both writes carry the claim's lease owner as their
    token, so a lost answer is recognised. The caller counts.
    """
    schedule = decision.schedule
    token = PipelineRun.write_token.set(claimed.lease_owner)
    release = [PipelineRun.lease_owner.remove(), PipelineRun.lease_expires_at.remove(), PipelineRun.claimed_from.remove()]
    actions = [
        PipelineRun.status.set(schedule.status.value),
        PipelineRun.attempts.set(decision.attempts),
        PipelineRun.updated_at.set(now),
        token,
        *release,
    ]
    actions.append(PipelineRun.last_error.set(decision.last_error) if decision.last_error else PipelineRun.last_error.remove())
    if decision.exit_match is not None:
        actions.append(PipelineRun.exit_match.set(decision.exit_match))
    history_actions = []
    if decision.history is not None:
        history_actions = [PipelineRun.history.set(compact_history([*claimed.history, _step_record(decision)]))]
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

    def ours() -> PipelineRun | None:
        return _ours(claimed.owner, claimed.run_id, claimed.lease_owner)

    if _write_once(lambda: run.update(actions=actions + history_actions, condition=held & (PipelineRun.status == RunStatus.RUNNING.value)), ours):
        return schedule.status.value
    ended = _write_once(
        lambda: run.update(
            actions=history_actions + [token, *release],
            condition=held & PipelineRun.status.is_in(*(s.value for s in ENDED_MEANWHILE.values())),
        ),
        ours,
    )
    if ended is False:
        return LOST
    status = (run if ended is True else ended).status  # an update reads the item back
    return next(name for name, meanwhile in ENDED_MEANWHILE.items() if meanwhile.value == status)


def _step_record(decision: Decision) -> StepRecord:
    h = decision.history
    assert h is not None
    error = h.error[:ERROR_CHARS] if h.error else None
    return StepRecord(h.step_number, h.outcome.value, h.scheduled_at, h.executed_at, h.attempt, error, h.detail)


def compact_history(records: list[StepRecord]) -> list[StepRecord]:
    """Every step stays recorded; details are dropped oldest first while the stored
    history is over HISTORY_DETAIL_BUDGET (the newest step keeps its own), so a run item
    stays under 1 KB (one write unit) through a 20-step pipeline."""
    records = list(records)
    encode = PipelineRun.history.serialize
    for i, record in enumerate(records[:-1]):
        if len(encode(records)) <= HISTORY_DETAIL_BUDGET:
            break
        if record.detail is not None:
            records[i] = replace(record, detail=None)
    return records


def history_of(run: PipelineRun) -> list[StepRecord]:
    """The run's step records with each step's action type (from its pipeline version)."""
    try:
        spec = pipelines.get_version(run.team_id, run.pipeline_id, int(run.pipeline_version))
    except NotFound:
        spec = None
    records = []
    for record in run.history or []:
        step = spec.step(record.step_number) if spec else None
        records.append(replace(record, action_type=step.action_type if step else "unknown"))
    return records


def exit_condition_of(run: PipelineRun) -> dict | None:
    """The exit condition an `exited` run met, read from its pipeline version (None if gone)."""
    try:
        spec = pipelines.get_version(run.team_id, run.pipeline_id, int(run.pipeline_version))
    except NotFound:
        return None
    return spec.exit_when.at(run.exit_match) if spec.exit_when is not None and run.exit_match else None


# --- reads for the API ------------------------------------------------------------------


def get_run(team_id: str, run_id: str) -> PipelineRun:
    """A run of this team by id: one GetItem, since the id names its owner within the
    team (no index by run id). Another team's run is NotFound like an unknown one."""
    owner = owner_of(team_id, run_id)
    if owner is not None:
        try:
            return PipelineRun.get(owner, run_id, consistent_read=True)
        except DoesNotExist:
            pass
    raise NotFound(f"run {run_id} not found")


def list_runs(
    team_id: str, *, status: str | None = None, pipeline_id: str | None = None, limit: int = 50, start_key: dict | None = None
) -> tuple[list[PipelineRun], dict | None]:
    """Newest first; filtered by status and/or pipeline. Returns (page, key to continue).

    The team index holds keys and pipeline_id: one pipeline's runs are filtered there,
    the page's runs are read with BatchGetItem and filtered by status. As with any
    DynamoDB filter, a page may be short (even empty) while a key to continue is given.
    """
    result = PipelineRun.team_index.query(
        team_id,
        filter_condition=(PipelineRun.pipeline_id == pipeline_id) if pipeline_id else None,
        limit=limit,
        last_evaluated_key=start_key,
        scan_index_forward=False,
    )
    keys = [(item.owner, item.run_id) for item in result]
    found = _batch_read(keys)
    items = [found[key] for key in keys if key in found and (status is None or found[key].status == status)]
    return items, result.last_evaluated_key


def all_runs_of_pipeline(team_id: str, pipeline_id: str) -> Iterator[PipelineRun]:
    key: dict | None = None
    while True:
        page, key = list_runs(team_id, pipeline_id=pipeline_id, limit=100, start_key=key)
        yield from page
        if key is None:
            return


def recount(team_id: str, pipeline_id: str) -> dict[str, int]:
    """A pipeline's run and step counters, counted from its runs (for stats.reconcile)."""
    counts: Counter = Counter()
    for run in all_runs_of_pipeline(team_id, pipeline_id):
        counts["runs_total"] += 1
        counts[f"runs_{run.status}"] += 1
        for record in history_of(run):
            prefix = f"step_{record.step_number}_"
            counts[prefix + "executed"] += 1
            counts[prefix + record.outcome] += 1
            counts[prefix + "lateness_ms"] += record.lateness_ms
            counts[stats.lateness_bucket(record.lateness_ms)] += 1
            counts["emails_sent"] += record.action_type == "send_email" and record.outcome == Outcome.SUCCEEDED.value
    return dict(counts)


# A run id is RUN_ID_DIGEST hex characters derived from (owner, pipeline, generation), a
# letter for the pipelineable's type, then the pipelineable's id. Naming its owner (within
# the team) lets `get_run` read it directly: no index keyed by run id, so creating a run
# writes one index entry fewer. The digest only has to be unique among one owner's runs.
RUN_ID_DIGEST = 16
# One letter per record type (dripline.records.TYPES; tests/unit check that every type has one).
_TYPE_LETTERS = {"contact": "c", "deal": "d"}
_LETTER_TYPES = {letter: kind for kind, letter in _TYPE_LETTERS.items()}


def _run_id(owner: str, pipeline_id: str, generation: int) -> str:
    _, pipelineable_type, pipelineable_id = owner.rsplit("#", 2)
    digest = uuid.uuid5(uuid.NAMESPACE_URL, f"dripline:{owner}:{pipeline_id}:{generation}").hex[:RUN_ID_DIGEST]
    return f"{digest}{_TYPE_LETTERS[pipelineable_type]}{pipelineable_id}"


def owner_of(team_id: str, run_id: str) -> str | None:
    """The owner a run id names in `team_id` (None: not a run id)."""
    digest, letter, pipelineable_id = run_id[:RUN_ID_DIGEST], run_id[RUN_ID_DIGEST : RUN_ID_DIGEST + 1], run_id[RUN_ID_DIGEST + 1 :]
    if len(digest) < RUN_ID_DIGEST or letter not in _LETTER_TYPES or not pipelineable_id or "#" in pipelineable_id:
        return None
    if any(c not in "0123456789abcdef" for c in digest):
        return None
    return run_owner(team_id, _LETTER_TYPES[letter], pipelineable_id)
