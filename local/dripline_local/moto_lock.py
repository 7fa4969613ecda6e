"""Serialise moto's DynamoDB item operations behind one lock.

moto applies a conditional write in several non-atomic steps, so two threads can both
win the same conditional claim (measured: 4 of 300). Real DynamoDB is atomic per item.
The local stack and concurrency tests run moto's operations one at a time, so what they
measure is Dripline's concurrency control, not moto's race.

The stream reads share the lock too: moto appends stream records inside the writes
above and numbers them by list length, so a concurrent reader must not see a half-made
append.
"""
from __future__ import annotations

import functools
import threading
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoHandler
from moto.dynamodbstreams.models import DynamoDBStreamsBackend

_LOCK = threading.RLock()
_OPERATIONS: dict[type, tuple[str, ...]] = {
    DynamoDBBackend: (
        "put_item",
        "update_item",
        "delete_item",
        "get_item",
        "query",
        "scan",
        "batch_get_item",
        "batch_write_item",
        "transact_write_items",
        "transact_get_items",
        "execute_statement",
        "execute_transaction",
        "batch_execute_statement",
    ),
    # moto's backend batch/transact-get methods are stubs; the responses layer loops over
    # single-item calls. Holding the (re-entrant) lock around the loop makes each batch
    # one step, as DynamoDB makes a TransactGetItems one snapshot.
    DynamoHandler: ("transact_get_items", "batch_get_item", "batch_write_item"),
    DynamoDBStreamsBackend: ("get_records", "get_shard_iterator", "describe_stream"),
}


def lock() -> threading.RLock:
    """The lock itself, for code that reads moto's DynamoDB state directly."""
    return _LOCK


def serialise_dynamodb() -> None:
    """Wrap the backends' item operations in one lock (idempotent)."""
    for cls, names in _OPERATIONS.items():
        for name in names:
            method = getattr(cls, name, None)
            if method is None or getattr(method, "_dripline_serialised", False):
                continue
            setattr(cls, name, _locked(method))


def _locked(method: Any) -> Any:
    @functools.wraps(method)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(self, *args, **kwargs)

    locked._dripline_serialised = True  # type: ignore[attr-defined]
    return locked
