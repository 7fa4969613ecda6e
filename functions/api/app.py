"""API Gateway HTTP API (payload 2.0) -> the Dripline API (dripline.api)."""
import warnings

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from dripline.api.app import handle
from dripline.observability import logger, metrics

# Most requests emit no metric (only a manual assignment counts an enrollment); that is
# expected, not worth a warning per request.
warnings.filterwarnings("ignore", message="No application metrics to publish")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return handle(event, context)
