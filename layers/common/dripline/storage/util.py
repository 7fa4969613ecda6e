"""Small helpers for turning pynamodb/botocore failures into decisions."""
from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

CONDITION_FAILED = "ConditionalCheckFailedException"

# Error codes that mean "not done, try again": throttling and the service's own trouble.
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "TransactionConflictException",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


def plain(value: Any) -> Any:
    """A pynamodb MapAttribute (or nested ones) as plain JSON values."""
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def botocore_cause(exc: BaseException) -> BaseException:
    """The botocore error behind a pynamodb one (GetError, PutError, UpdateError ... wrap
    ClientError and BotoCoreError); other exceptions as they are."""
    if isinstance(exc, PynamoDBException) and isinstance(exc.cause, (ClientError, BotoCoreError)):
        return exc.cause
    return exc


def is_condition_failure(exc: BaseException) -> bool:
    cause = botocore_cause(exc)
    return isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") == CONDITION_FAILED


def is_transient(exc: BaseException) -> bool:
    """A throttle, a 5xx or a connection failure from DynamoDB, seen through pynamodb's
    wrappers: worth another try (the SDK's own retries are spent)."""
    cause = botocore_cause(exc)
    if isinstance(cause, BotoCoreError):
        return True
    if isinstance(cause, ClientError):
        code = cause.response.get("Error", {}).get("Code", "")
        status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in TRANSIENT_CODES or status >= 500
    return False
