"""Logger and metrics shared by every function (Powertools).

Service name and metrics namespace come from POWERTOOLS_SERVICE_NAME and
POWERTOOLS_METRICS_NAMESPACE, set per function in infra/template.yaml. Tracing is the
Lambda's own X-Ray setting (`Tracing: Active`), so no tracer SDK is bundled.

Log lines carry ids, counts and error kinds, never contact data (names, addresses,
message bodies). As a second line of defence, anything shaped like an email address
that reaches a log line anyway (an AWS error message quoting a recipient, say) is
masked before it is written.
"""
import re

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import MetricUnit

EMAIL_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")


class AddressMaskingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON lines, with email addresses replaced by `<email>`."""

    def serialize(self, log: dict) -> str:  # type: ignore[override]
        return EMAIL_ADDRESS.sub("<email>", super().serialize(log))


logger = Logger(logger_formatter=AddressMaskingFormatter())
metrics = Metrics()

__all__ = ["logger", "metrics", "MetricUnit"]
