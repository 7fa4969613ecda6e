"""Async Invoke from the per-minute processor -> walk the shards it leased for this worker."""
from aws_lambda_powertools.utilities.typing import LambdaContext

from dripline import fanout
from dripline.observability import logger, metrics, scope


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    # A worker's own lines carry its coordinator's lease owner id; each run's lines its enrollment's.
    with scope(correlation_id=event.get("lease_owner")):
        return fanout.shared().work(event, remaining_ms=context.get_remaining_time_in_millis)
