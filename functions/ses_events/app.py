"""EventBridge (SES event publishing) -> email stats, suppression of hard bounces and complaints."""
from aws_lambda_powertools.utilities.typing import LambdaContext

from dripline import runtime
from dripline.email_events import handle
from dripline.observability import MetricUnit, logger, metrics


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    runtime.settings()  # bind the tables (once per cold start)
    report = handle(event.get("detail") or {})
    metrics.add_metric(name=f"EmailEvents{report.outcome.title().replace('_', '')}", unit=MetricUnit.Count, value=1)
    if report.suppressed:
        metrics.add_metric(name="ContactsSuppressed", unit=MetricUnit.Count, value=1)
    logger.info("email event", extra={"detail_type": event.get("detail-type"), "outcome": report.outcome})
    return {"outcome": report.outcome, "suppressed": report.suppressed}
