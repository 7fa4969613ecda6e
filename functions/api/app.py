"""API Gateway HTTP API (payload 2.0) -> the Dripline API (dripline.api)."""
import warnings

from aws_lambda_powertools.utilities.typing import LambdaContext

from dripline.api.app import handle
from dripline.observability import logger, metrics

# Most requests emit no metric (only a manual assignment counts an enrollment); that is
# expected, not worth a warning per request.
warnings.filterwarnings("ignore", message="No application metrics to publish")


# The correlation id (the API Gateway request id) is set per request by dripline.api.app.handle.
@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return handle(event, context)
