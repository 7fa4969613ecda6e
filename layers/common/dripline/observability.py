"""Logger and metrics shared by every function (Powertools).

Service name and metrics namespace come from POWERTOOLS_SERVICE_NAME and
POWERTOOLS_METRICS_NAMESPACE, set per function in infra/template.yaml. Tracing is the
Lambda's own X-Ray setting (`Tracing: Active`), so no tracer SDK is bundled.

Log lines carry ids, counts and error kinds, never contact data (names, addresses,
message bodies). As a second line of defence, anything shaped like an email address
that reaches a log line anyway (an AWS error message quoting a recipient, say) is
masked before it is written.

**Ids on every line.** `scope(**ids)` puts ids (team_id, pipeline_id, run_id, contact_id,
step, ses_message_id) and the `correlation_id` on every line the current thread writes
until the scope ends; `add_keys` adds more inside a scope. The keys are per thread
(Powertools' thread-safe keys), so the processor's worker threads, and the local stack's
concurrent requests, never label each other's lines.

**Correlation ids name the cause.** An API request's is its API Gateway request id; a
contact written by it stores that id (`Contact.correlation_id`), so the stream record,
the enrollment lines and the runs it creates carry it; a run stores it
(`PipelineRun.correlation_id`), so each of its steps carries it. A record without a
stored cause (a deleted contact's REMOVE) uses the stream record's id; an SES event's
lines use the EventBridge event's id.

**Metrics are declared.** `METRICS` lists every metric the code emits, with the
dimensions it is emitted with; emitting another is an error (so the dashboard and the
alarms in infra/template.yaml, which tests/infra/test_observability.py checks against
this list, cannot drift from the code).
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricResolution, MetricUnit

EMAIL_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")

# Every metric's dimensions: `service` (Powertools adds it: the component, from
# POWERTOOLS_SERVICE_NAME: api, enrollment, processor, ses_events; the processor's workers
# count as the processor) and, for a few, one more low-cardinality dimension. Never an id.
SERVICE = ("service",)
BY_ACTION = ("service", "action_type")

# name -> (services that emit it, dimension sets). See README, "Operating Dripline".
METRICS: dict[str, tuple[frozenset[str], tuple[tuple[str, ...], ...]]] = {
    # enrollment (and the API's manual assignment)
    "RunsEnrolled": (frozenset({"enrollment", "api"}), (SERVICE,)),
    "EnrollmentsDeduplicated": (frozenset({"enrollment", "api"}), (SERVICE,)),
    # runs ended by their pipeline's exit_when: on an update (enrollment) or before a step (processor)
    "RunsExited": (frozenset({"enrollment", "processor"}), (SERVICE,)),
    # a processor tick
    "DueRuns": (frozenset({"processor"}), (SERVICE,)),
    "DueRunsLeft": (frozenset({"processor"}), (SERVICE,)),
    "TickDuration": (frozenset({"processor"}), (SERVICE,)),
    "RunsCompleted": (frozenset({"processor"}), (SERVICE,)),
    "RunsFailed": (frozenset({"processor"}), (SERVICE,)),
    "StepRetries": (frozenset({"processor"}), (SERVICE,)),
    "ClaimsLost": (frozenset({"processor"}), (SERVICE,)),
    "RunsDeferred": (frozenset({"processor"}), (SERVICE,)),
    "StepsRescheduled": (frozenset({"processor"}), (SERVICE,)),
    "RunErrors": (frozenset({"processor"}), (SERVICE,)),
    "StepsSucceeded": (frozenset({"processor"}), (SERVICE,)),
    "StepsFailed": (frozenset({"processor"}), (SERVICE, BY_ACTION)),
    "StepsSkipped": (frozenset({"processor"}), (SERVICE,)),
    "DeliveryUnknown": (frozenset({"processor"}), (SERVICE,)),
    "EmailsSent": (frozenset({"processor"}), (SERVICE,)),
    "StepLateness": (frozenset({"processor"}), (SERVICE,)),
    "StepLatenessMax": (frozenset({"processor"}), (SERVICE,)),
    "StepLatenessAvg": (frozenset({"processor"}), (SERVICE,)),
    "StepLatenessP99": (frozenset({"processor"}), (SERVICE,)),
    "WorkersStarted": (frozenset({"processor"}), (SERVICE,)),
    "WorkerStartFailures": (frozenset({"processor"}), (SERVICE,)),
    # stats counters (every writer)
    "StatsFlushFailed": (frozenset({"enrollment", "api", "processor", "ses_events"}), (SERVICE,)),
    # SES events
    "EmailsDelivered": (frozenset({"ses_events"}), (SERVICE,)),
    "EmailsBounced": (frozenset({"ses_events"}), (SERVICE,)),
    "EmailsComplained": (frozenset({"ses_events"}), (SERVICE,)),
    "EmailsOpened": (frozenset({"ses_events"}), (SERVICE,)),
    "EmailsClicked": (frozenset({"ses_events"}), (SERVICE,)),
    "EmailEventsCounted": (frozenset({"ses_events"}), (SERVICE,)),
    "EmailEventsDuplicate": (frozenset({"ses_events"}), (SERVICE,)),
    "EmailEventsRecorded": (frozenset({"ses_events"}), (SERVICE,)),
    "EmailEventsIgnored": (frozenset({"ses_events"}), (SERVICE,)),
    "EmailEventsUnknownRun": (frozenset({"ses_events"}), (SERVICE,)),
    "ContactsSuppressed": (frozenset({"ses_events"}), (SERVICE,)),
}


def _declared(name: str, dimensions: tuple[str, ...]) -> None:
    declared = METRICS.get(name)
    if declared is None or dimensions not in declared[1]:
        raise ValueError(f"metric {name} with dimensions {dimensions} is not declared in dripline.observability.METRICS")


class AddressMaskingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON lines, with email addresses replaced by `<email>`."""

    def serialize(self, log: dict) -> str:  # type: ignore[override]
        return EMAIL_ADDRESS.sub("<email>", super().serialize(log))


class DeclaredMetrics(Metrics):
    """Powertools Metrics that refuses a metric METRICS does not declare."""

    def add_metric(self, name: str, unit: MetricUnit | str, value: float, resolution: MetricResolution | int = 60) -> None:
        _declared(name, SERVICE)
        super().add_metric(name=name, unit=unit, value=value, resolution=resolution)


logger = Logger(logger_formatter=AddressMaskingFormatter())
metrics = DeclaredMetrics()


def add_metric_by(dimension: str, value: str, name: str, amount: float, unit: MetricUnit = MetricUnit.Count) -> None:
    """`name` with one more dimension than `service` (`action_type=send_email`, say),
    flushed now as an EMF line of its own: one line carries one set of dimensions."""
    _declared(name, (*SERVICE, dimension))
    line = EphemeralMetrics()  # namespace and service from the environment, like `metrics`
    line.add_dimension(name=dimension, value=value)
    line.add_metric(name=name, unit=unit, value=amount)
    line.flush_metrics()


@contextmanager
def scope(**keys: object) -> Iterator[None]:
    """Put `keys` (None values left out) on every line this thread writes until the scope
    ends; keys added inside it (`add_keys`) go with it."""
    before = logger.thread_safe_get_current_keys()
    add_keys(**keys)
    try:
        yield
    finally:
        logger.thread_safe_clear_keys()
        logger.thread_safe_append_keys(**before)


def add_keys(**keys: object) -> None:
    """More ids for the rest of the current scope's lines (None values left out)."""
    logger.thread_safe_append_keys(**{k: v for k, v in keys.items() if v is not None})


def correlation_id() -> str | None:
    """The id of the request or record this thread is handling (what a write stores as its cause)."""
    value = logger.thread_safe_get_current_keys().get("correlation_id") or logger.get_correlation_id()
    return str(value) if value else None


__all__ = ["logger", "metrics", "MetricUnit", "METRICS", "add_metric_by", "scope", "add_keys", "correlation_id"]
