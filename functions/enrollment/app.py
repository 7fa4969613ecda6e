"""Contacts table stream -> enrollment. One failing record is reported alone."""
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from dripline import runtime
from dripline.enrollment import EnrollmentBatch
from dripline.observability import logger, metrics

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    # One batch: pipelines read once, stats counters written once per pipeline at the end.
    with EnrollmentBatch(runtime.settings()) as batch:
        return process_partial_response(event=event, record_handler=batch.handle, processor=processor, context=context)
