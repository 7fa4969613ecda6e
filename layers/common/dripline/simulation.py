"""A pipeline's whole timeline for one contact, on a virtual clock, before anything is sent.

The processor's own rules, not a model of them: each attempt is decided by the pure engine
(`engine.enroll`, `engine.outside_window`, `engine.after_step`) with the settings the
processor runs with, and each step's action is asked what it would do (`preview`: the
same rendering functions as `execute`, no AWS call, no write), so a template that fails
or an email that renders empty fails here as it would there. Failures can be injected
per step (`Failure`: "step 2 fails twice"); an exception an action's preview raises is
classified as the processor classifies it (`processor.classify`).

Ticks: the processor runs every minute (EventBridge rate(1 minute)), so a step due at
09:00:20 runs on the 09:01:00 tick; the simulation ticks on whole minutes
(`tick_seconds`) and every tick runs on time (no backlog, no outage). Nothing here reads
the wall clock: `start` is the enrollment time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from dripline import actions, engine
from dripline.actions import ActionContext
from dripline.domain import ClaimedRun, ContactView, Outcome, PipelineSpec, RunStatus, Step
from dripline.engine import ActionResult
from dripline.settings import Settings

TICK_SECONDS = 60
# An id the timeline's steps run under (a webhook payload shows it): no run exists.
PREVIEW_RUN_ID = "preview"
SIMULATED_FAILURE = "simulated_failure"
# Attempt outcomes: the step's own (succeeded, skipped, failed for good) or what the engine
# made of a failure (retry: the same step after a backoff) or a closed window (rescheduled).
RETRY = "retry"
RESCHEDULED = "rescheduled"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Failure:
    """The first `times` attempts of step `step_number` fail with `error`.

    `retryable` (default) is a transient failure such as an SES throttle: the engine tries
    again after its backoff, until max_attempts. Otherwise the step fails for good."""

    step_number: int
    times: int = 1
    retryable: bool = True
    error: str = SIMULATED_FAILURE


@dataclass(frozen=True)
class Attempt:
    step_number: int
    action_type: str
    attempt: int  # 1, then 2 ... while the step is retried
    scheduled_at: datetime  # when the run was due (the plan, or the retry time)
    executed_at: datetime  # the tick that ran it
    outcome: str  # succeeded | skipped | failed | retry | rescheduled
    error: str | None
    retry_in_seconds: int | None  # the backoff, for a retry
    next_at: datetime | None  # when the run is due next (None: it ended)
    rendered: dict[str, Any] | None = None  # what the action would send or create (its preview)


@dataclass(frozen=True)
class Timeline:
    start: datetime
    attempts: list[Attempt]
    status: str  # completed | failed | cancelled
    ended_at: datetime | None
    passed_over: list[int] = field(default_factory=list)  # steps a wait-until skipped
    not_reached: list[int] = field(default_factory=list)  # steps after the run ended early


class SimulationTooLong(RuntimeError):
    """More attempts than a pipeline can make (a guard; the engine always ends a run)."""


def tick_at(due: datetime, tick_seconds: int = TICK_SECONDS) -> datetime:
    """The first processor tick at or after `due`."""
    elapsed = (due - _EPOCH).total_seconds()
    ticks = -(-elapsed // tick_seconds)
    return _EPOCH + timedelta(seconds=ticks * tick_seconds)


def simulate(
    pipeline: PipelineSpec,
    contact: ContactView,
    start: datetime,
    settings: Settings,
    failures: tuple[Failure, ...] | list[Failure] = (),
    *,
    unsubscribe_url: str | None = None,
    tick_seconds: int = TICK_SECONDS,
) -> Timeline:
    """Every attempt the processor would make for `contact` enrolled at `start`.

    `unsubscribe_url`: an inert link for a sample contact (None: the contact's signed
    link, which needs the unsubscribe key)."""
    injected = {f.step_number: f for f in failures}
    recipient = engine.Recipient.of(contact)
    schedule = engine.enroll(pipeline, start, recipient)
    failed_before = 0
    attempts: list[Attempt] = []
    limit = len(pipeline.steps) * (settings.max_attempts + 2) + 10
    while schedule.status is RunStatus.PENDING:
        if len(attempts) >= limit:
            raise SimulationTooLong(f"more than {limit} attempts")
        step = pipeline.step(schedule.next_step_number)
        scheduled_at, executed_at = schedule.next_step_at, tick_at(schedule.next_step_at, tick_seconds)
        run = placeholder_run(pipeline, contact, step.step_number, scheduled_at, failed_before)
        result, rendered = _attempt(step, run, pipeline, contact, settings, executed_at, injected, unsubscribe_url)
        decision = engine.after_step(
            pipeline,
            step.step_number,
            result,
            scheduled_at=scheduled_at,
            executed_at=executed_at,
            failed_attempts_before=failed_before,
            max_attempts=settings.max_attempts,
            retry_base_seconds=settings.retry_base_seconds,
            retry_max_seconds=settings.retry_max_seconds,
            replan_after_seconds=settings.replan_after_seconds,
            recipient=recipient,
        )
        schedule = decision.schedule
        outcome = RETRY if decision.retried else RESCHEDULED if decision.rescheduled else result.outcome.value
        attempts.append(
            Attempt(
                step_number=step.step_number,
                action_type=step.action_type,
                attempt=failed_before + 1,
                scheduled_at=scheduled_at,
                executed_at=executed_at,
                outcome=outcome,
                error=result.error,
                retry_in_seconds=int((schedule.next_step_at - executed_at).total_seconds()) if decision.retried else None,
                next_at=schedule.next_step_at,
                rendered=rendered,
            )
        )
        failed_before = decision.attempts
    reached = {a.step_number for a in attempts}
    # A run that ended early never reached the steps after its last; any other step it
    # did not run was passed over by planning (a wait-until that says skip).
    cut = attempts[-1].step_number if attempts and schedule.status is not RunStatus.COMPLETED else None
    unreached = [s.step_number for s in pipeline.steps if s.step_number not in reached]
    return Timeline(
        start=start,
        attempts=attempts,
        status=schedule.status.value,
        ended_at=attempts[-1].executed_at if attempts else start,
        passed_over=[n for n in unreached if cut is None or n < cut],
        not_reached=[n for n in unreached if cut is not None and n > cut],
    )


def placeholder_run(pipeline: PipelineSpec, contact: ContactView, step_number: int, scheduled_at: datetime, failed_before: int) -> ClaimedRun:
    """The claim the processor would hold for this attempt (no run exists: a placeholder id)."""
    return ClaimedRun(
        owner=contact.team_id,
        run_id=PREVIEW_RUN_ID,
        team_id=contact.team_id,
        pipeline_id=pipeline.pipeline_id,
        pipeline_version=pipeline.version,
        pipelineable_type=pipeline.model_type,
        pipelineable_id=contact.contact_id,
        step_number=step_number,
        scheduled_at=scheduled_at,
        attempts=failed_before,
        lease_owner=PREVIEW_RUN_ID,
        reclaimed=False,
    )


def _attempt(
    step: Step,
    run: ClaimedRun,
    pipeline: PipelineSpec,
    contact: ContactView,
    settings: Settings,
    now: datetime,
    injected: dict[int, Failure],
    unsubscribe_url: str | None,
    *,
    window: bool = True,
) -> tuple[ActionResult, dict[str, Any] | None]:
    """What one attempt returns, in the processor's order: window, action, its outcome."""
    from dripline.processor import classify  # the processor's classification (it imports the AWS SDK)

    recipient = engine.Recipient.of(contact)
    closed = engine.outside_window(step, now, recipient) if window else None
    if closed is not None:
        return closed, None
    action = actions.get(step.action_type)
    if action is None:
        return ActionResult.failed(f"unknown_action: {step.action_type}", retryable=False), None
    failure = injected.get(step.step_number)
    if failure is not None and run.attempts < failure.times:
        return ActionResult.failed(failure.error, retryable=failure.retryable), None
    preview = getattr(action, "preview", None)
    if preview is None:  # a custom action without a preview: taken to succeed
        return ActionResult.succeeded(), None
    ctx = ActionContext(
        run=run, pipeline=pipeline, step=step, contact=contact, settings=settings, now=now, clients=None,
        unsubscribe_url=unsubscribe_url,
    )
    try:
        rendered = preview(ctx)
    except Exception as exc:  # noqa: BLE001 - what the processor would record for this contact
        return classify(exc, idempotent=action.idempotent, policy=settings.delivery_policy), None
    if isinstance(rendered, ActionResult):
        return rendered, None
    return ActionResult(Outcome.SUCCEEDED), rendered


@dataclass(frozen=True)
class StepPreview:
    """One step as a contact would get it: when it runs and what it sends or creates."""

    step_number: int
    action_type: str
    # The plan (scheduled_at) and the tick that runs it (runs_at); None for a step this
    # contact's run never reaches (an earlier step fails) or that planning passes over.
    scheduled_at: datetime | None
    runs_at: datetime | None
    outcome: str  # the attempt that ran it: succeeded | skipped | failed; or passed_over | not_reached
    error: str | None
    rendered: dict[str, Any] | None  # the action's preview, rendered at runs_at (else at start)


def preview(
    pipeline: PipelineSpec,
    contact: ContactView,
    start: datetime,
    settings: Settings,
    *,
    unsubscribe_url: str | None = None,
    tick_seconds: int = TICK_SECONDS,
) -> list[StepPreview]:
    """Every step of `pipeline` rendered for `contact` enrolled at `start`, nothing failing.

    Times come from `simulate` (the engine's plan, each step rendered at the tick that
    runs it, as the processor renders it); a step the run does not reach is still
    rendered, at `start`, so a template can be checked for every step."""
    timeline = simulate(pipeline, contact, start, settings, unsubscribe_url=unsubscribe_url, tick_seconds=tick_seconds)
    ran: dict[int, Attempt] = {}
    for attempt in timeline.attempts:  # the attempt that ran each step (not a window's wait)
        if attempt.outcome != RESCHEDULED:
            ran.setdefault(attempt.step_number, attempt)
    previews = []
    for step in pipeline.steps:
        attempt = ran.get(step.step_number)
        if attempt is not None:
            previews.append(StepPreview(step.step_number, step.action_type, attempt.scheduled_at, attempt.executed_at,
                                        attempt.outcome, attempt.error, attempt.rendered))
            continue
        run = placeholder_run(pipeline, contact, step.step_number, start, 0)
        result, rendered = _attempt(step, run, pipeline, contact, settings, start, {}, unsubscribe_url, window=False)
        outcome = "passed_over" if step.step_number in timeline.passed_over else "not_reached"
        previews.append(StepPreview(step.step_number, step.action_type, None, None, outcome, result.error, rendered))
    return previews
