"""EventBridge rate(1 minute) -> one processor tick: it walks the due shards itself, or
coordinates worker invocations when more is due than one invocation runs (dripline.fanout)."""
from functools import lru_cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from dripline import runtime
from dripline.fanout import Fanout
from dripline.observability import logger, metrics
from dripline.processor import Processor


@lru_cache(maxsize=1)
def _fanout() -> Fanout:
    # Built on first use, not at import: the AWS clients it holds live across ticks.
    return Fanout(Processor(runtime.settings()))


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return _fanout().coordinate(remaining_ms=context.get_remaining_time_in_millis)
