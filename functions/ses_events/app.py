"""EventBridge (SES event publishing) -> email stats, suppression of hard bounces and complaints."""
from aws_lambda_powertools.utilities.typing import LambdaContext

from dripline import runtime
from dripline.email_events import COUNTERS, handle
from dripline.observability import MetricUnit, logger, metrics, scope


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    runtime.settings()  # bind the tables (once per cold start)
    detail = event.get("detail") or {}
    tags = (detail.get("mail") or {}).get("tags") or {}
    # The SES event is the cause of these lines; its message, run and step name what they are about.
    with scope(
        correlation_id=event.get("id"),
        ses_message_id=(detail.get("mail") or {}).get("messageId"),
        run_id=next(iter(tags.get("run") or []), None),
        step=_number(next(iter(tags.get("step") or []), None)),
    ):
        report = handle(detail)
        metrics.add_metric(name=f"EmailEvents{report.outcome.title().replace('_', '')}", unit=MetricUnit.Count, value=1)
        kind = COUNTERS.get(detail.get("eventType") or detail.get("notificationType"))
        if report.outcome == "counted" and kind:
            metrics.add_metric(name=f"Emails{kind.title()}", unit=MetricUnit.Count, value=1)
        if report.suppressed:
            metrics.add_metric(name="ContactsSuppressed", unit=MetricUnit.Count, value=1)
        logger.info("email event", extra={"detail_type": event.get("detail-type"), "outcome": report.outcome})
    return {"outcome": report.outcome, "suppressed": report.suppressed}


def _number(tag: str | None) -> int | None:
    """A step tag as the processor's lines write the step: a number."""
    return int(tag) if tag and tag.isdigit() else None
