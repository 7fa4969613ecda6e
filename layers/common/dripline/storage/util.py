"""Small helpers for turning pynamodb/botocore failures into decisions."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import DeleteError, PynamoDBException, UpdateError
from pynamodb.models import Model

from dripline import observability
from dripline.errors import Conflict, NotFound

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


def next_stamp(previous: datetime | None, now: datetime) -> datetime:
    """The updated_at of a new write: now, but always after the previous write.

    A manual assignment's enrollment key is derived from updated_at, so two writes
    must never share one (a fast or frozen clock would otherwise let them).
    """
    if previous is not None and now <= previous:
        return previous + timedelta(milliseconds=1)
    return now


Item = TypeVar("Item", bound=Model)


def modify_record(
    read: Callable[[], Item], change: Callable[[Item], dict[str, Any]], now: datetime, *, what: str, attempts: int = 5
) -> Item:
    """Apply `change(current) -> {field: new value}` to a record (a contact, a deal ...)
    as one conditional update.

    The update is conditioned on the record's updated_at as read, so a concurrent
    writer makes us read again and recompute rather than overwrite its change. A None
    value removes the attribute. updated_at is always bumped (see next_stamp), and
    correlation_id set to the current request's (every record model has both). `read`
    raises NotFound for an unknown (or concurrently deleted) record.
    """
    for _ in range(attempts):
        current = read()
        model = type(current)
        # The write's cause goes with it (the stream record's correlation id).
        changes = {**change(current), "correlation_id": observability.correlation_id()}
        actions = [
            getattr(model, name).remove() if value is None else getattr(model, name).set(value)
            for name, value in changes.items()
        ]
        actions.append(model.updated_at.set(next_stamp(current.updated_at, now)))
        try:
            current.update(actions=actions, condition=model.updated_at == current.updated_at)
        except UpdateError as exc:
            if not is_condition_failure(exc):
                raise
            continue  # changed or deleted since we read it: read again
        return current
    raise Conflict(f"{what} is being changed concurrently; retry")


def delete_record(current: Item, what: str) -> Item:
    """Delete a record just read (its stream REMOVE cancels its runs); NotFound if it went meanwhile."""
    model = type(current)
    range_key = model._range_keyname
    try:
        current.delete(condition=getattr(model, range_key).exists())
    except DeleteError as exc:
        if is_condition_failure(exc):
            raise NotFound(f"{what} not found") from exc
        raise
    return current
