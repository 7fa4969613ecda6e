"""EventBridge rate(1 minute) -> one processor tick: it walks the due shards itself, or
coordinates worker invocations when more is due than one invocation runs (dripline.fanout)."""
from aws_lambda_powertools.utilities.typing import LambdaContext

from dripline import fanout
from dripline.observability import logger, metrics, scope


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    # A tick's own lines carry the scheduled event's id; each run's lines its enrollment's.
    with scope(correlation_id=event.get("id")):
        return fanout.shared().coordinate(remaining_ms=context.get_remaining_time_in_millis)
