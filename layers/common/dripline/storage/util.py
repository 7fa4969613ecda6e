"""Small helpers for turning pynamodb/botocore failures into decisions."""
from __future__ import annotations

from pynamodb.exceptions import PynamoDBException

CONDITION_FAILED = "ConditionalCheckFailedException"


def is_condition_failure(exc: PynamoDBException) -> bool:
    return getattr(exc, "cause_response_code", None) == CONDITION_FAILED
