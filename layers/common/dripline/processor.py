"""One processor tick: find due runs, claim each, execute its step, move it on.

    due index (hint) --query shards in parallel--> candidates
    candidate --conditional claim on the base table--> ClaimedRun (or lost: skip)
    ClaimedRun --action--> ActionResult --engine.after_step--> Decision
    Decision --conditional finish (holding the lease)--> run pending / completed / failed

A run's failure is recorded on that run; nothing one run does stops the tick.
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from dripline import actions, clock, engine
from dripline.actions import ActionContext, ActionError
from dripline.domain import ClaimedRun, Outcome, RunStatus
from dripline.engine import ActionResult, DELIVERY_UNKNOWN
from dripline.errors import NotFound
from dripline.observability import MetricUnit, logger, metrics
from dripline.settings import DeliveryPolicy, Settings
from dripline.storage import contacts, pipelines, runs, stats
from dripline.storage.shards import names as shard_names

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
    # What became of each due run: completed, pending, failed, cancelled, retried, lost, deferred, error.
    outcomes: Counter = field(default_factory=Counter)
    # Step-level counts for metrics: StepsSucceeded, EmailsSent, DeliveryUnknown ...
    events: Counter = field(default_factory=Counter)
    lateness_seconds: list[float] = field(default_factory=list)
    duration_ms: int = 0

    def as_dict(self) -> dict:
        return {"due": self.due, "duration_ms": self.duration_ms, **dict(sorted(self.outcomes.items()))}

    def emit_metrics(self) -> None:
        metrics.add_metric(name="DueRuns", unit=MetricUnit.Count, value=self.due)
        metrics.add_metric(name="TickDuration", unit=MetricUnit.Milliseconds, value=self.duration_ms)
        for outcome, metric in OUTCOME_METRICS.items():
            if self.outcomes[outcome]:
                metrics.add_metric(name=metric, unit=MetricUnit.Count, value=self.outcomes[outcome])
        for event, count in self.events.items():
            metrics.add_metric(name=event, unit=MetricUnit.Count, value=count)
        if self.lateness_seconds:
            metrics.add_metric(name="StepLatenessMax", unit=MetricUnit.Seconds, value=max(self.lateness_seconds))
            average = sum(self.lateness_seconds) / len(self.lateness_seconds)
            metrics.add_metric(name="StepLatenessAvg", unit=MetricUnit.Seconds, value=round(average, 3))


OUTCOME_METRICS = {
    "completed": "RunsCompleted",
    "failed": "RunsFailed",
    "retried": "StepRetries",
    "lost": "ClaimsLost",
    "deferred": "RunsDeferred",
    "error": "RunErrors",
}


@dataclass(frozen=True)
class RunOutcome:
    """One worker's answer: what the run became, and what to count."""

    status: str
    events: tuple[str, ...] = ()
    lateness_seconds: float | None = None


def classify(exc: Exception, *, idempotent: bool, policy: DeliveryPolicy) -> ActionResult:
    """Turn an action's exception into a result: retry transient failures, fail the rest."""
    if isinstance(exc, ActionError):
        return ActionResult.failed(str(exc), retryable=exc.retryable)
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "Unknown")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        retryable = code in RETRYABLE_ERROR_CODES or status >= 500
        return ActionResult.failed(f"{code}: {error.get('Message', '')}".strip(), retryable=retryable)
    if isinstance(exc, ReadTimeoutError):
        # The request reached the service; it may have acted. Only an idempotent action
        # (or the at-least-once policy) may try again.
        if not idempotent and policy is DeliveryPolicy.AT_MOST_ONCE:
            return ActionResult.skipped(DELIVERY_UNKNOWN)
        return ActionResult.failed("timeout", retryable=True)
    if isinstance(exc, (ConnectTimeoutError, EndpointConnectionError)):
        return ActionResult.failed(f"{type(exc).__name__}: {exc}", retryable=True)
    if isinstance(exc, BotoCoreError):
        return ActionResult.failed(f"{type(exc).__name__}: {exc}", retryable=True)
    return ActionResult.failed(f"{type(exc).__name__}: {exc}", retryable=False)


class Processor:
    def __init__(self, settings: Settings, clients: Clients | None = None) -> None:
        self.settings = settings
        self.clients = clients or Clients(settings)

    def tick(self, remaining_ms: Callable[[], int] = lambda: 10**9, shards: Sequence[str] | None = None) -> TickReport:
        """Run the due steps of `shards` (every shard by default; see dripline.fanout)."""
        started = time.monotonic()
        now = clock.now()
        report = TickReport()
        candidates = [
            c
            for c in self._due_candidates(now, shard_names(self.settings.due_shards) if shards is None else shards)
            # A run being worked on right now is not ours to touch until its lease expires.
            if not (c.status == RunStatus.RUNNING.value and c.lease_expires_at and c.lease_expires_at > now)
        ]
        candidates.sort(key=lambda c: c.next_step_at)
        report.due = len(candidates)
        margin_ms = self.settings.claim_margin_seconds * 1000

        def work(candidate: runs.DueCandidate) -> RunOutcome:
            if remaining_ms() < margin_ms:
                return RunOutcome("deferred")  # the next tick picks it up
            try:
                return self.process(candidate)
            except Exception:  # noqa: BLE001 - one run's trouble never stops the tick
                logger.exception("run processing failed", extra={"run_id": candidate.run_id})
                return RunOutcome("error")

        with ThreadPoolExecutor(max_workers=self.settings.processor_workers) as pool:
            for outcome in pool.map(work, candidates):
                report.outcomes[outcome.status] += 1
                report.events.update(outcome.events)
                if outcome.lateness_seconds is not None:
                    report.lateness_seconds.append(outcome.lateness_seconds)
        report.duration_ms = int((time.monotonic() - started) * 1000)
        report.emit_metrics()
        logger.info("tick finished", extra=report.as_dict())
        return report

    def _due_candidates(self, now: datetime, shards: Sequence[str]) -> list[runs.DueCandidate]:
        """The oldest due runs of each shard, at most MAX_RUNS_PER_TICK in all: after an
        outage the backlog drains over several ticks instead of one tick reading it all."""
        if not shards:
            return []
        per_shard = -(-self.settings.max_runs_per_tick // len(shards))
        with ThreadPoolExecutor(max_workers=min(8, len(shards))) as pool:
            pages = pool.map(lambda shard: list(runs.due_candidates(shard, now, limit=per_shard)), shards)
        return [c for page in pages for c in page]

    def process(self, candidate: runs.DueCandidate) -> RunOutcome:
        """Claim, execute and record one run. Returns what happened, for the report."""
        claimed = runs.claim(candidate, clock.now(), self.settings.lease_seconds)
        if claimed is None:
            return RunOutcome("lost")
        result, pipeline = self._execute(claimed)
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
        )
        written = runs.finish(claimed, decision, executed_at, self.settings.due_shards)
        return self._observe(claimed, result, decision, written, executed_at)

    def _execute(self, claimed: ClaimedRun):
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
        if claimed.reclaimed:
            decided = engine.outcome_of_reclaimed_step(action.idempotent, self.settings.delivery_policy)
            if decided is not None:  # counted as delivery_unknown, whatever the attempts
                logger.warning("step outcome unknown after lease expiry; not repeated", extra={"run_id": claimed.run_id})
                return decided, pipeline
            if claimed.attempts >= self.settings.max_attempts:
                # The step keeps outliving its lease (it kills or outlasts the processor).
                return ActionResult.failed("lease_expired_too_often", retryable=False), pipeline
        try:
            contact = contacts.find_contact(claimed.team_id, claimed.pipelineable_id)
        except Exception as exc:  # noqa: BLE001 - the action was not attempted: safe to retry
            return classify(exc, idempotent=True, policy=self.settings.delivery_policy), pipeline
        if contact is None:
            return ActionResult.stop("contact_deleted"), pipeline
        ctx = ActionContext(
            run=claimed,
            pipeline=pipeline,
            step=step,
            contact=contacts.view(contact),
            settings=self.settings,
            now=clock.now(),
            clients=self.clients,
        )
        try:
            return action.execute(ctx), pipeline
        except Exception as exc:  # noqa: BLE001 - classified into the run's outcome
            logger.warning("action failed", extra={"run_id": claimed.run_id, "step": step.step_number, "error": repr(exc)})
            return classify(exc, idempotent=action.idempotent, policy=self.settings.delivery_policy), pipeline

    def _observe(
        self, claimed: ClaimedRun, result: ActionResult, decision: engine.Decision, written: str, executed_at: datetime
    ) -> RunOutcome:
        """Update the pipeline's stats counters and say what to count in metrics."""
        if written == runs.LOST:
            logger.warning("lease lost before finishing; the new holder decides", extra={"run_id": claimed.run_id})
            return RunOutcome(runs.LOST)
        if written == runs.CANCELLED_MEANWHILE:
            # cancel_run already moved the run's counter; only the step is left to count.
            after, written = RunStatus.RUNNING, RunStatus.CANCELLED.value
        else:
            after = RunStatus(written)
        history = decision.history
        if history is None:  # a retry was scheduled (or the run was cancelled meanwhile)
            stats.step_finished(claimed.team_id, claimed.pipeline_id, after=after)
            return RunOutcome("retried" if written == RunStatus.PENDING.value else written)
        lateness = max(0.0, (executed_at - claimed.scheduled_at).total_seconds())
        email_sent = history.action_type == "send_email" and history.outcome is Outcome.SUCCEEDED
        stats.step_finished(
            claimed.team_id,
            claimed.pipeline_id,
            after=after,
            step_number=history.step_number,
            outcome=history.outcome,
            lateness_seconds=lateness,
            email_sent=email_sent,
        )
        events = [f"Steps{history.outcome.value.capitalize()}"]
        if history.error == DELIVERY_UNKNOWN:
            events.append("DeliveryUnknown")
        if email_sent:
            events.append("EmailsSent")
        if history.outcome is Outcome.FAILED:
            logger.error("step failed for good", extra={"run_id": claimed.run_id, "step": history.step_number, "error": result.error})
        return RunOutcome(written, tuple(events), lateness)
