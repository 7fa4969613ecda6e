"""Small helpers for turning pynamodb/botocore failures into decisions."""
from __future__ import annotations

from typing import Any

from pynamodb.exceptions import PynamoDBException

CONDITION_FAILED = "ConditionalCheckFailedException"


def plain(value: Any) -> Any:
    """A pynamodb MapAttribute (or nested ones) as plain JSON values."""
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def is_condition_failure(exc: PynamoDBException) -> bool:
    return getattr(exc, "cause_response_code", None) == CONDITION_FAILED
