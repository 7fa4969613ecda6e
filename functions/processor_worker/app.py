"""Async Invoke from the per-minute processor -> walk the shards it leased for this worker."""
from functools import lru_cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from dripline import runtime
from dripline.fanout import Fanout
from dripline.observability import logger, metrics
from dripline.processor import Processor


@lru_cache(maxsize=1)
def _fanout() -> Fanout:
    return Fanout(Processor(runtime.settings()))


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return _fanout().work(event, remaining_ms=context.get_remaining_time_in_millis)
