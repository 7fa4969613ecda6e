"""One processor tick: find due runs, claim each, execute its step, move it on.

    due index (hint) --query shards in parallel--> candidates
    candidates, 100 at a time:
      candidate --conditional claim on the base table--> ClaimedRun (or lost: skip)
      claimed runs' records (contacts, deals) --one BatchGetItem per team and type-->
      ClaimedRun --action--> ActionResult --engine.after_step--> Decision
      Decision --conditional finish (holding the lease)--> run pending / completed / failed
    the tick's stats changes --one idempotent ADD per pipeline--> stats (stats.Tally)

A run's failure is recorded on that run; nothing one run does stops the tick.
"""
from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, ParamValidationError
from pynamodb.exceptions import PynamoDBException

from dripline import actions, clock, delivery, engine, exits, records
from dripline.actions import ActionContext, ActionError, email
from dripline.domain import ClaimedRun, Outcome, RunStatus
from dripline.engine import ActionResult, DELIVERY_UNKNOWN
from dripline.errors import NotFound
from dripline import observability
from dripline.observability import MetricUnit, logger, metrics
from dripline.settings import DeliveryPolicy, Settings
from dripline.records import Record
from dripline.storage import pipelines, runs, stats
from dripline.storage.shards import backlog as shard_backlog, names as shard_names
from dripline.storage.util import botocore_cause, is_transient

# Runs claimed, then read (their records: one BatchGetItem of at most 100 keys), then executed
# together. Small enough that a record read is seconds old, not a whole tick old.
CHUNK = 100

RETRYABLE_ERROR_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServerError",
        "InternalServerErrorException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


class Clients:
    """AWS clients the actions use, created once (before any worker thread) and reused."""

    def __init__(self, settings: Settings) -> None:
        # No SDK retries: a retried SendEmail after a read timeout or a 5xx may send the
        # email twice. The engine retries what is safe to retry, with backoff.
        config = Config(connect_timeout=3, read_timeout=10, retries={"total_max_attempts": 1})
        self.sesv2 = boto3.session.Session().client("sesv2", region_name=settings.region, config=config)


@dataclass
class TickReport:
    """What a tick did. Workers only return values; metrics are emitted once, at the end,
    from the invoking thread (Powertools Metrics is not thread-safe)."""

    due: int = 0
    # Due runs still waiting when the tick ended (deferred, or beyond what it read): the backlog.
    left: int = 0
    # What became of each due run: completed, pending, failed, cancelled, exited (its exit
    # condition held), retried, rescheduled (its send window was closed), lost, deferred, error.
    outcomes: Counter = field(default_factory=Counter)
    # Step-level counts for metrics: StepsSucceeded, EmailsSent, DeliveryUnknown ...
    events: Counter = field(default_factory=Counter)
    lateness_seconds: list[float] = field(default_factory=list)
    # Steps failed for good, by action type (a dimension of their own: StepsFailed by action_type).
    failed_by_action: Counter = field(default_factory=Counter)
    duration_ms: int = 0

    def add(self, outcome: "RunOutcome") -> None:
        self.outcomes[outcome.status] += 1
        self.events.update(outcome.events)
        if outcome.lateness_seconds is not None:
            self.lateness_seconds.append(outcome.lateness_seconds)
        if outcome.failed_action is not None:
            self.failed_by_action[outcome.failed_action] += 1

    def as_dict(self) -> dict:
        return {"due": self.due, "left": self.left, "duration_ms": self.duration_ms, **dict(sorted(self.outcomes.items()))}

    def emit_metrics(self) -> None:
        metrics.add_metric(name="DueRuns", unit=MetricUnit.Count, value=self.due)
        metrics.add_metric(name="DueRunsLeft", unit=MetricUnit.Count, value=self.left)
        metrics.add_metric(name="TickDuration", unit=MetricUnit.Milliseconds, value=self.duration_ms)
        for outcome, metric in OUTCOME_METRICS.items():
            if self.outcomes[outcome]:
                metrics.add_metric(name=metric, unit=MetricUnit.Count, value=self.outcomes[outcome])
        for event, count in self.events.items():
            metrics.add_metric(name=event, unit=MetricUnit.Count, value=count)
        for action_type, count in sorted(self.failed_by_action.items()):
            observability.add_metric_by("action_type", action_type, "StepsFailed", count)
        for seconds in self.lateness_seconds:  # every step's: CloudWatch's p50/p99 are over all steps
            metrics.add_metric(name="StepLateness", unit=MetricUnit.Seconds, value=round(seconds, 3))
        if self.lateness_seconds:
            metrics.add_metric(name="StepLatenessMax", unit=MetricUnit.Seconds, value=max(self.lateness_seconds))
            average = sum(self.lateness_seconds) / len(self.lateness_seconds)
            metrics.add_metric(name="StepLatenessAvg", unit=MetricUnit.Seconds, value=round(average, 3))
            metrics.add_metric(name="StepLatenessP99", unit=MetricUnit.Seconds, value=round(self.lateness_p99(), 3))

    def lateness_p99(self) -> float:
        """The 99th percentile of this tick's step lateness (nearest rank)."""
        ordered = sorted(self.lateness_seconds)
        return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)] if ordered else 0.0


OUTCOME_METRICS = {
    "completed": "RunsCompleted",
    "exited": "RunsExited",
    "failed": "RunsFailed",
    "retried": "StepRetries",
    "lost": "ClaimsLost",
    "deferred": "RunsDeferred",
    "rescheduled": "StepsRescheduled",
    "error": "RunErrors",
}


@dataclass(frozen=True)
class RunOutcome:
    """One worker's answer: what the run became, and what to count."""

    status: str
    events: tuple[str, ...] = ()
    lateness_seconds: float | None = None
    failed_action: str | None = None  # the action type of a step that failed for good


def classify(exc: Exception, *, idempotent: bool, policy: DeliveryPolicy) -> ActionResult:
    """Turn an action's exception into a result, by whether the request may have taken effect.

    Not taken effect (never sent, throttled, rejected before acting): a transient one is
    retried, the rest fail. May have taken effect (the connection dropped or the read
    timed out after sending, or a 5xx, which the service may answer after acting): an
    idempotent action retries; a non-idempotent one (email) retries under at_least_once,
    and under at_most_once retries only after dripline.delivery has checked SES's Send
    events for it (the error says `delivery_unknown`). pynamodb wraps botocore's
    exceptions (GetError, PutError ...): the wrapped cause is what is classified.
    """
    if isinstance(exc, ActionError):
        return ActionResult.failed(str(exc), retryable=exc.retryable)
    if isinstance(exc, PynamoDBException) and isinstance(exc.cause, (ClientError, BotoCoreError)):
        return classify(exc.cause, idempotent=idempotent, policy=policy)
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "Unknown")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        message = f"{code}: {error.get('Message', '')}".strip()
        if status >= 500:
            return _maybe_taken_effect(message, idempotent=idempotent, policy=policy)
        return ActionResult.failed(message, retryable=code in RETRYABLE_ERROR_CODES)
    if isinstance(exc, HTTPClientError):  # sent, answer lost: ConnectionClosedError, ReadTimeoutError ...
        return _maybe_taken_effect(f"{type(exc).__name__}: {exc}", idempotent=idempotent, policy=policy)
    if isinstance(exc, ParamValidationError):
        return ActionResult.failed(f"{type(exc).__name__}: {exc}", retryable=False)
    if isinstance(exc, BotoCoreError):  # never sent: no connection, no credentials yet ...
        return ActionResult.failed(f"{type(exc).__name__}: {exc}", retryable=True)
    return ActionResult.failed(f"{type(exc).__name__}: {exc}", retryable=False)


def _maybe_taken_effect(error: str, *, idempotent: bool, policy: DeliveryPolicy) -> ActionResult:
    if idempotent or policy is DeliveryPolicy.AT_LEAST_ONCE:
        return ActionResult.failed(error, retryable=True)
    # The retry is settled by dripline.delivery (Send events) before anything is resent.
    return ActionResult.failed(DELIVERY_UNKNOWN, retryable=True, cause=error)


class Processor:
    def __init__(self, settings: Settings, clients: Clients | None = None) -> None:
        self.settings = settings
        self.clients = clients or Clients(settings)

    def tick(self, remaining_ms: Callable[[], int] = lambda: 10**9, shards: Sequence[str] | None = None) -> TickReport:
        """Run the due steps of `shards` (every shard by default; see dripline.fanout)."""
        started = time.monotonic()
        now = clock.now()
        report = TickReport()
        walked = shard_names(self.settings.due_shards) if shards is None else shards
        candidates, more_due = self._due_candidates(now, walked)
        candidates.sort(key=lambda c: c.next_step_at)
        report.due = len(candidates)
        tally = stats.Tally()  # the tick's counter changes, written once per pipeline below
        for outcome in self.process_batch(candidates, tally, remaining_ms):
            report.add(outcome)
        tally.flush()
        report.left = self._left(walked, report, more_due)
        report.duration_ms = int((time.monotonic() - started) * 1000)
        report.emit_metrics()
        logger.info("tick finished", extra=report.as_dict())
        return report

    def process_batch(
        self, candidates: list[runs.DueCandidate], tally: stats.Tally, remaining_ms: Callable[[], int] = lambda: 10**9
    ) -> list[RunOutcome]:
        """Claim, execute and record `candidates` (oldest first), CHUNK at a time, their
        counter changes into `tally` (the caller flushes it). One outcome per candidate."""
        margin_ms = self.settings.claim_margin_seconds * 1000
        outcomes: list[RunOutcome] = []

        def isolated(work: Callable[[], RunOutcome], run_id: str) -> RunOutcome:
            try:
                return work()
            except Exception:  # noqa: BLE001 - one run's trouble never stops the tick
                logger.exception("run processing failed", extra={"run_id": run_id})
                return RunOutcome("error")

        def claim(candidate: runs.DueCandidate) -> ClaimedRun | RunOutcome:
            if remaining_ms() < margin_ms:
                return RunOutcome("deferred")  # the next tick picks it up
            return isolated(lambda: self._claim(candidate, tally), candidate.run_id)

        with ThreadPoolExecutor(max_workers=self.settings.processor_workers) as pool:
            for start in range(0, len(candidates), CHUNK):
                taken = list(pool.map(claim, candidates[start : start + CHUNK]))
                claimed = [c for c in taken if isinstance(c, ClaimedRun)]
                people = self._records_of(claimed)
                done = iter(pool.map(lambda c: isolated(lambda: self._run(c, people, tally), c.run_id), claimed))
                outcomes += [next(done) if isinstance(c, ClaimedRun) else c for c in taken]
        return outcomes

    def process(self, candidate: runs.DueCandidate, tally: stats.Tally | None = None) -> RunOutcome:
        """Claim, execute and record one run (its counters into `tally`, or written now)."""
        own = tally is None
        tally = tally or stats.Tally()
        claimed = self._claim(candidate, tally)
        outcome = claimed if isinstance(claimed, RunOutcome) else self._run(claimed, self._records_of([claimed]), tally)
        if own:
            tally.flush()
        return outcome

    def _due_candidates(self, now: datetime, shards: Sequence[str]) -> tuple[list[runs.DueCandidate], bool]:
        """The oldest due runs of every shard, at most MAX_RUNS_PER_TICK in all: after an
        outage the backlog drains over several ticks instead of one tick reading it all.
        And whether a shard had more due than was read."""
        if not shards:
            return [], False
        per_shard = -(-self.settings.max_runs_per_tick // len(shards))
        with ThreadPoolExecutor(max_workers=min(8, len(shards))) as pool:
            pages = list(pool.map(lambda shard: list(runs.due_candidates(shard, now, limit=per_shard)), shards))
        return [c for page in pages for c in page], any(len(page) >= per_shard for page in pages)

    def _left(self, shards: Sequence[str], report: TickReport, more_due: bool) -> int:
        """Due runs still waiting at the tick's end: the deferred ones, or, when a shard had
        more due than the tick read, a count of its shards' due entries (Select=COUNT
        queries, made only then: a tick that read everything due costs nothing more)."""
        if not more_due:
            return report.outcomes["deferred"]
        now = clock.now()
        return sum(shard_backlog(shard, now, self.settings.max_runs_per_tick) for shard in shards)

    def _claim(self, candidate: runs.DueCandidate, tally: stats.Tally) -> ClaimedRun | RunOutcome:
        claimed = runs.claim(candidate, clock.now(), self.settings.lease_seconds)
        if claimed is None:
            return RunOutcome("lost")
        if not claimed.reclaimed:  # a reclaimed run was counted `running` by its first claim
            tally.run_moved(claimed.team_id, claimed.pipeline_id, RunStatus.PENDING, RunStatus.RUNNING)
        return claimed

    def _records_of(self, claimed: list[ClaimedRun]) -> dict[str, Record] | Exception:
        """The claimed runs' records (contacts, deals ...) by run owner, per team and type one
        BatchGetItem of records (and, for contacts, one of their addresses' suppressions:
        dripline.records) per 100 keys; the error instead when a read failed (every run
        then retries: nothing was attempted)."""
        wanted: dict[tuple[str, str], list[str]] = {}
        for run in claimed:
            wanted.setdefault((run.team_id, run.pipelineable_type), []).append(run.pipelineable_id)
        found: dict[str, Record] = {}
        try:
            for (team_id, type_name), ids in wanted.items():
                found.update({r.owner: r for r in records.load_many(team_id, type_name, ids).values()})
        except Exception as exc:  # noqa: BLE001 - classified per run in _execute
            logger.warning("records read failed", extra={"error": repr(exc)})
            return exc
        return found

    def _run(self, claimed: ClaimedRun, people: dict[str, Record] | Exception, tally: stats.Tally) -> RunOutcome:
        """Execute a claimed run's step and record it. Returns what happened, for the report.
        Every line written meanwhile names the run, and its enrollment's correlation id."""
        with observability.scope(
            correlation_id=claimed.correlation_id,
            team_id=claimed.team_id,
            pipeline_id=claimed.pipeline_id,
            run_id=claimed.run_id,
            **{f"{claimed.pipelineable_type}_id": claimed.pipelineable_id},
            step=claimed.step_number,
        ):
            return self._run_step(claimed, people, tally)

    def _run_step(self, claimed: ClaimedRun, people: dict[str, Record] | Exception, tally: stats.Tally) -> RunOutcome:
        recipient = self._recipient(claimed, people)
        result, pipeline = self._execute(claimed, people, recipient)
        executed_at = clock.now()
        decision = engine.after_step(
            pipeline,
            claimed.step_number,
            result,
            scheduled_at=claimed.scheduled_at,
            executed_at=executed_at,
            failed_attempts_before=claimed.attempts,
            max_attempts=self.settings.max_attempts,
            retry_base_seconds=self.settings.retry_base_seconds,
            retry_max_seconds=self.settings.retry_max_seconds,
            replan_after_seconds=self.settings.replan_after_seconds,
            recipient=recipient,
        )
        written = runs.finish(claimed, decision, executed_at, self.settings.due_shards)
        step = pipeline.step(claimed.step_number) if pipeline else None
        return self._observe(claimed, result, decision, written, tally, step.action_type if step else "unknown")

    @staticmethod
    def _recipient(claimed: ClaimedRun, people: dict[str, Record] | Exception) -> engine.Recipient:
        """The zone and attributes the next step is planned with (UTC, none: no record)."""
        record = None if isinstance(people, Exception) else people.get(claimed.owner)
        return engine.Recipient.of(record) if record is not None else engine.Recipient()

    def _execute(self, claimed: ClaimedRun, people: dict[str, Record] | Exception, recipient: engine.Recipient):
        """Run the claimed step's action; every failure becomes an ActionResult."""
        try:
            pipeline = pipelines.get_version(claimed.team_id, claimed.pipeline_id, claimed.pipeline_version)
        except NotFound:
            return ActionResult.failed("pipeline_version_missing", retryable=False), None
        except Exception as exc:  # noqa: BLE001 - the action was not attempted: safe to retry
            return classify(exc, idempotent=True, policy=self.settings.delivery_policy), None
        step = pipeline.step(claimed.step_number)
        action = actions.get(step.action_type) if step else None
        if step is None or action is None:
            reason = "step_missing" if step is None else f"unknown_action: {step.action_type}"
            return ActionResult.failed(reason, retryable=False), pipeline
        if claimed.reclaimed or claimed.attempts:
            # Did the attempt before this one take effect? (an email: SES's Send events)
            decided = delivery.before_repeat(claimed, action.idempotent, self.settings, clock.now())
            if decided is not None:
                return decided, pipeline
            if claimed.reclaimed and claimed.attempts >= self.settings.max_attempts:
                # The step keeps outliving its lease (it kills or outlasts the processor).
                return ActionResult.failed("lease_expired_too_often", retryable=False), pipeline
        if isinstance(people, Exception):  # the action was not attempted: a throttle or 5xx retries
            cause = botocore_cause(people)
            return ActionResult.failed(f"records read: {type(cause).__name__}: {cause}", retryable=is_transient(people)), pipeline
        record = people.get(claimed.owner)
        if record is None:
            return ActionResult.stop(f"{claimed.pipelineable_type}_deleted"), pipeline
        exited = engine.exit_check(pipeline, exits.record_of(claimed.pipelineable_type, record.view))
        if exited is not None:
            return exited, pipeline
        closed = engine.outside_window(step, clock.now(), recipient)
        if closed is not None:
            return closed, pipeline
        ctx = ActionContext(
            run=claimed,
            pipeline=pipeline,
            step=step,
            contact=record.view if record.type == records.CONTACT.name else None,
            settings=self.settings,
            now=clock.now(),
            clients=self.clients,
            record=record,
        )
        try:
            return action.execute(ctx), pipeline
        except Exception as exc:  # noqa: BLE001 - classified into the run's outcome
            logger.warning("action failed", extra={"run_id": claimed.run_id, "step": step.step_number, "error": repr(exc)})
            return classify(exc, idempotent=action.idempotent, policy=self.settings.delivery_policy), pipeline

    def _observe(
        self, claimed: ClaimedRun, result: ActionResult, decision: engine.Decision, written: str, tally: stats.Tally,
        action_type: str,
    ) -> RunOutcome:
        """Count the step in the tick's tally and say what to count in metrics."""
        if written == runs.LOST:
            logger.warning("lease lost before finishing; the new holder decides", extra={"run_id": claimed.run_id})
            return RunOutcome(runs.LOST)
        if written in runs.ENDED_MEANWHILE:
            # cancel_run / exit_run already moved the run's counter; only the step is left to count.
            after, written = RunStatus.RUNNING, runs.ENDED_MEANWHILE[written].value
        else:
            after = RunStatus(written)
        history = decision.history
        if decision.retried:
            tally.step_error(claimed.team_id, "retried", decision.last_error, action_type, claimed.run_id, clock.now())
        elif history is not None and history.outcome is Outcome.FAILED:
            tally.step_error(claimed.team_id, "failed", history.error, action_type, claimed.run_id, history.executed_at)
        elif history is not None and history.outcome is Outcome.SUCCEEDED and claimed.attempts:
            # Under the error of its last failed attempt (a reclaim: its processor died mid-step).
            error = claimed.last_error or ("lease_expired" if claimed.reclaimed else None)
            tally.step_error(claimed.team_id, "recovered", error, action_type, claimed.run_id, history.executed_at)
        if history is None:  # a retry or a window's opening was scheduled, the run exited, or it ended meanwhile
            tally.step_finished(claimed.team_id, claimed.pipeline_id, after=after)
            if written != RunStatus.PENDING.value:
                return RunOutcome(written)
            postponed = "rescheduled" if decision.rescheduled else "retried"
            logger.info("step postponed", extra={"outcome": postponed, "run_status": written})
            return RunOutcome(postponed)
        lateness = max(0.0, (history.executed_at - history.scheduled_at).total_seconds())
        email_sent = history.action_type == "send_email" and history.outcome is Outcome.SUCCEEDED
        email_suppressed = history.outcome is Outcome.SKIPPED and result.error == email.SUPPRESSED
        tally.step_finished(
            claimed.team_id,
            claimed.pipeline_id,
            after=after,
            step_number=history.step_number,
            outcome=history.outcome,
            lateness_ms=round(lateness * 1000),
            email_sent=email_sent,
            email_suppressed=email_suppressed,
        )
        events = [f"Steps{history.outcome.value.capitalize()}"]
        if history.error == DELIVERY_UNKNOWN:
            events.append("DeliveryUnknown")
        if email_sent:
            events.append("EmailsSent")
        failed = history.outcome is Outcome.FAILED
        if failed:
            logger.error("step failed for good", extra={"run_id": claimed.run_id, "step": history.step_number, "error": result.error})
        logger.info(
            "step finished",
            extra={
                "action_type": history.action_type,
                "outcome": history.outcome.value,
                "attempt": history.attempt,
                "lateness_seconds": round(lateness, 3),
                "run_status": written,
                "ses_message_id": (history.detail or {}).get("message_id") if history.action_type == "send_email" else None,
            },
        )
        return RunOutcome(written, tuple(events), lateness, history.action_type if failed else None)
