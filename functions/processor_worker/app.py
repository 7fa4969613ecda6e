"""Async Invoke from the per-minute processor -> walk the shards it leased for this worker."""
from aws_lambda_powertools.utilities.typing import LambdaContext

from dripline import fanout
from dripline.observability import logger, metrics


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return fanout.shared().work(event, remaining_ms=context.get_remaining_time_in_millis)
