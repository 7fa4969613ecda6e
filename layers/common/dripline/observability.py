"""Logger and metrics shared by every function (Powertools).

Service name and metrics namespace come from POWERTOOLS_SERVICE_NAME and
POWERTOOLS_METRICS_NAMESPACE, set per function in infra/template.yaml. Tracing is the
Lambda's own X-Ray setting (`Tracing: Active`), so no tracer SDK is bundled.
"""
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
metrics = Metrics()

__all__ = ["logger", "metrics", "MetricUnit"]
