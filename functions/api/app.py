"""API Gateway HTTP API (payload 2.0) -> the Dripline API (dripline.api).

No metrics decorator: API Gateway already publishes request counts, 4xx/5xx and
latency per route; the engine's metrics come from enrollment and the processor.
"""
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from dripline.api.app import handle
from dripline.observability import logger


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return handle(event, context)
