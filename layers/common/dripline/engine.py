"""The step engine: decides, never does.

Pure functions from (run state, pipeline version, outcome, time) to the next state.
Enrollment, the processor, the local stack and the tests share these rules, and they
are tested with no emulator at all.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dripline.domain import ContactView, Outcome, PipelineSpec, RunStatus, Step
from dripline.settings import DeliveryPolicy
from dripline.wait_until import RUN_NOW
from dripline.windows import UTC, resolve_zone

DELIVERY_UNKNOWN = "delivery_unknown"
OUTSIDE_SEND_WINDOW = "outside_send_window"
# A step that ran later than this after its planned time re-bases the plan (see after_step).
REPLAN_AFTER_SECONDS = 3600


@dataclass(frozen=True)
class Schedule:
    """Where a run stands: its status and, while active, the step it waits for."""

    status: RunStatus
    next_step_number: int | None
    next_step_at: datetime | None


@dataclass(frozen=True)
class Recipient:
    """What planning needs of the run's record: its zone (send windows, wait-until wall
    times) and its attributes (wait-until attributes)."""

    zone: ZoneInfo = UTC
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, record: ContactView | Any) -> "Recipient":
        """The record's `timezone`, else UTC (an unknown zone name, or a record type with
        no zone such as a deal, counts as none); its attributes. Takes a ContactView or a
        dripline.records.Record."""
        return cls(resolve_zone(record.timezone), dict(record.attributes))


@dataclass(frozen=True)
class ActionResult:
    outcome: Outcome
    detail: dict[str, Any] | None = None
    error: str | None = None
    # Only for FAILED: a transient failure (throttling, timeout, 5xx) worth another try.
    retryable: bool = False
    # The run cannot go on (its contact is gone): record this step and cancel the run.
    cancel_run: bool = False
    # Not attempted: the step's send window is closed; it is due again at this opening.
    reopens_at: datetime | None = None
    # Not attempted: the pipeline's exit_when held (this is where); the run ends `exited`.
    exit_match: str | None = None

    @classmethod
    def succeeded(cls, **detail: Any) -> "ActionResult":
        return cls(Outcome.SUCCEEDED, detail=detail or None)

    @classmethod
    def skipped(cls, reason: str, **detail: Any) -> "ActionResult":
        return cls(Outcome.SKIPPED, detail=detail or None, error=reason)

    @classmethod
    def stop(cls, reason: str) -> "ActionResult":
        return cls(Outcome.SKIPPED, error=reason, cancel_run=True)

    @classmethod
    def outside_window(cls, reopens_at: datetime) -> "ActionResult":
        return cls(Outcome.SKIPPED, error=OUTSIDE_SEND_WINDOW, reopens_at=reopens_at)

    @classmethod
    def exited(cls, match: str) -> "ActionResult":
        return cls(Outcome.SKIPPED, exit_match=match)

    @classmethod
    def failed(cls, error: str, *, retryable: bool, **detail: Any) -> "ActionResult":
        return cls(Outcome.FAILED, detail=detail or None, error=error, retryable=retryable)


@dataclass(frozen=True)
class HistoryRecord:
    step_number: int
    action_type: str
    outcome: Outcome
    scheduled_at: datetime
    executed_at: datetime
    attempt: int
    detail: dict[str, Any] | None
    error: str | None


@dataclass(frozen=True)
class Decision:
    """What to write after a step attempt."""

    schedule: Schedule
    attempts: int  # failed attempts of the step now scheduled (0 after an advance)
    history: HistoryRecord | None  # None while a step is only being retried
    last_error: str | None
    retried: bool = False
    rescheduled: bool = False  # to its send window's next opening, not attempted
    exit_match: str | None = None  # ended `exited`: where the pipeline's exit_when held


def enroll(pipeline: PipelineSpec, enrolled_at: datetime, recipient: Recipient = Recipient()) -> Schedule:
    """A new run: pending on the first step, planned from enrollment time (see `plan`)."""
    return plan(pipeline, pipeline.first_step(), enrolled_at, recipient)


def plan(pipeline: PipelineSpec, step: Step | None, base: datetime, recipient: Recipient) -> Schedule:
    """When `step` falls due, counting from `base` (enrollment, or the previous step's plan).

    Due at `base` + its delay, or at its wait-until time. A wait-until time that cannot
    be had or is already past (before `base`) makes the step due at `base` under
    `run_now`; under `skip` the step is passed over and the next one is planned from
    the same `base` (no steps left: the run completes). Last, a send window moves the
    time to the window's next opening in the recipient's zone.
    """
    while step is not None:
        due = _due(step, base, recipient)
        if due is not None:
            if step.send_window is not None:
                due = step.send_window.next_opening(due, recipient.zone)
            return Schedule(RunStatus.PENDING, step.step_number, due)
        step = pipeline.step_after(step.step_number)
    return Schedule(RunStatus.COMPLETED, None, None)


def _due(step: Step, base: datetime, recipient: Recipient) -> datetime | None:
    """The step's time before its window; None when its wait-until says skip."""
    wait = step.wait_until
    if wait is None:
        return base + timedelta(seconds=step.delay_seconds)
    target = wait.target(recipient.attributes, recipient.zone)
    if target is not None and target >= base:
        return target
    return base if wait.if_missing == RUN_NOW else None


def outside_window(step: Step, at: datetime, recipient: Recipient) -> ActionResult | None:
    """Checked just before a step runs: a window that closed since the step was planned
    (a backlog, retries, an outage) reschedules it to the next opening, unattempted."""
    if step.send_window is None:
        return None
    opens = step.send_window.next_opening(at, recipient.zone)
    return ActionResult.outside_window(opens) if opens > at else None


def exit_check(pipeline: PipelineSpec, record: Mapping[str, Any]) -> ActionResult | None:
    """Checked just before a step runs: once the pipeline's exit_when holds for the record
    (`exits.record_of`), the run ends `exited` and the step is not attempted."""
    match = pipeline.exit_when.evaluate(record) if pipeline.exit_when is not None else None
    return ActionResult.exited(match) if match is not None else None


def backoff_seconds(failed_attempts: int, base_seconds: int, max_seconds: int) -> int:
    """Exponential: base, 2*base, 4*base ... capped at max_seconds."""
    if failed_attempts < 1:
        return 0
    return min(max_seconds, base_seconds * 2 ** (failed_attempts - 1))


def after_step(
    pipeline: PipelineSpec | None,
    step_number: int,
    result: ActionResult,
    *,
    scheduled_at: datetime,
    executed_at: datetime,
    failed_attempts_before: int,
    max_attempts: int,
    retry_base_seconds: int,
    retry_max_seconds: int,
    replan_after_seconds: int = REPLAN_AFTER_SECONDS,
    recipient: Recipient = Recipient(),
) -> Decision:
    """The run's next state once an attempt at `step_number` returned `result`.

    Succeeded or skipped: advance to the next step, or complete (or cancel, when the
    result says the run cannot go on). Failed and retryable with attempts left: same
    step again after an exponential backoff. Otherwise: failed for good. `pipeline` is
    None when the run's version cannot be read (the run can then only fail).

    The next step is planned from this step's *planned* time (`scheduled_at`) plus its
    delay, not from when this one happened to run: a tick's lateness does not add up
    from step to step, and minute-aligned delays land on a tick. After an outage (this
    step ran more than `replan_after_seconds` late) the plan is re-based on the
    execution time instead: the spacing between steps is kept, so a contact never gets
    a burst of overdue steps a minute apart. The next step's wait-until and send
    window are then applied (`plan`) for `recipient`.

    A step not attempted because its send window was closed (`ActionResult.outside_window`)
    waits for the opening: same step, same failed-attempt count, nothing recorded. One not
    attempted because the pipeline's exit condition held (`ActionResult.exited`) ends the
    run `exited`, recording no step either.
    """
    step = pipeline.step(step_number) if pipeline else None
    action_type = step.action_type if step else "unknown"
    attempt = failed_attempts_before + 1

    def record(outcome: Outcome) -> HistoryRecord:
        return HistoryRecord(
            step_number=step_number,
            action_type=action_type,
            outcome=outcome,
            scheduled_at=scheduled_at,
            executed_at=executed_at,
            attempt=attempt,
            detail=result.detail,
            error=result.error,
        )

    if result.exit_match is not None:
        return Decision(
            schedule=Schedule(RunStatus.EXITED, None, None),
            attempts=failed_attempts_before,
            history=None,
            last_error=None,
            exit_match=result.exit_match,
        )
    if result.reopens_at is not None:
        return Decision(
            schedule=Schedule(RunStatus.PENDING, step_number, result.reopens_at),
            attempts=failed_attempts_before,
            history=None,
            last_error=None,
            rescheduled=True,
        )
    if result.outcome is Outcome.FAILED:
        if result.retryable and attempt < max_attempts:
            retry_at = executed_at + timedelta(seconds=backoff_seconds(attempt, retry_base_seconds, retry_max_seconds))
            return Decision(
                schedule=Schedule(RunStatus.PENDING, step_number, retry_at),
                attempts=attempt,
                history=None,
                last_error=result.error,
                retried=True,
            )
        return Decision(
            schedule=Schedule(RunStatus.FAILED, None, None),
            attempts=attempt,
            history=record(Outcome.FAILED),
            last_error=result.error,
        )

    following = pipeline.step_after(step_number) if pipeline else None
    if result.cancel_run:
        schedule = Schedule(RunStatus.CANCELLED, None, None)
    elif following is None:
        schedule = Schedule(RunStatus.COMPLETED, None, None)
    else:
        on_plan = executed_at - scheduled_at <= timedelta(seconds=replan_after_seconds)
        schedule = plan(pipeline, following, scheduled_at if on_plan else executed_at, recipient)
    return Decision(schedule=schedule, attempts=0, history=record(result.outcome), last_error=None)


def outcome_of_reclaimed_step(action_idempotent: bool, policy: DeliveryPolicy) -> ActionResult | None:
    """A run whose lease expired mid-step is claimed again: may its step run again?

    Idempotent actions (create_task writes a deterministic id) simply run again. For a
    non-idempotent one (email) the provider may already have accepted it; under the
    default at-most-once policy the step is recorded `skipped` / `delivery_unknown` and
    not repeated. Returns the result to record, or None to execute the step.
    """
    if action_idempotent or policy is DeliveryPolicy.AT_LEAST_ONCE:
        return None
    return ActionResult.skipped(DELIVERY_UNKNOWN)
