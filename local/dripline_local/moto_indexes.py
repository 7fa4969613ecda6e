"""Make moto's Query cost what the queried partition holds, not the whole table.

moto answers every Query (on the table or an index) by sorting every item of the table
and then testing each one against the key condition, so a query costs O(n log n) in the
table's size: the chaos run's drain rounds and `make bench`'s 100k-runs row spent most of
their time there. Here each table keeps its items grouped by each index's hash key
(`_Partitions`), updated by every write that can change an item (PutItem, DeleteItem,
UpdateItem, and what moto builds on them: BatchWriteItem, TransactWriteItems, PartiQL),
and a Query hands moto only the items of its partition.

Semantics stay moto's exactly: moto's own Query code still runs (key condition,
begins_with/between/<, ScanIndexForward, Limit, ExclusiveStartKey/LastEvaluatedKey,
projections, filters); it merely iterates over the partition's items, in the order moto's
full listing gives them, instead of every item. `bypassed()` answers with moto's own full
scan, for the equivalence test (tests/integration/test_moto_indexes.py).

Installed wherever moto runs for us, next to moto_lock's serialisation: the local stack,
the chaos run, `make bench`'s moto server and the tests' `aws` fixture.

Every write and query keeps its partitions under moto_lock's (re-entrant) lock, so they
change with the items, atomically.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from collections.abc import Iterator
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

from dripline_local.moto_lock import lock

TableKey = tuple[DynamoType, DynamoType | None]
PartitionKey = tuple[DynamoType, ...]

_local = threading.local()  # .listing: (table, items) while a Query runs; .bypassed


class _Partitions:
    """One table's items grouped by each index's hash key (the table's own items are
    already grouped by hash key in `Table.items`)."""

    def __init__(self, table: Table) -> None:
        self.signature = _index_signature(table)
        self.hash_attributes = dict(self.signature)
        self.items: dict[str, dict[PartitionKey, dict[TableKey, Item]]] = {name: {} for name in self.hash_attributes}
        self.located: dict[str, dict[TableKey, PartitionKey]] = {name: {} for name in self.hash_attributes}
        for stored in table.items.values():
            for item in stored.values() if table.range_key_attr else [stored]:
                self.place((item.hash_key, item.range_key), item)

    def place(self, key: TableKey, item: Item | None) -> None:
        """Put the item stored under `key` (None: deleted) where each index would have it."""
        for name, attributes in self.hash_attributes.items():
            located = self.located[name]
            old = located.pop(key, None)
            if old is not None:
                partition = self.items[name][old]
                del partition[key]
                if not partition:
                    del self.items[name][old]
            if item is None or not all(attribute in item.attrs for attribute in attributes):
                continue  # not in this (sparse) index
            new = tuple(item.attrs[attribute] for attribute in attributes)
            self.items[name].setdefault(new, {})[key] = item
            located[key] = new

    def partition(self, index_name: str, key: PartitionKey) -> list[Item]:
        return list(self.items[index_name].get(key, {}).values())


def _index_signature(table: Table) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple(
        (index.name, tuple(k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"))
        for index in table.all_indexes()
    )


def _partitions(table: Table) -> _Partitions:
    """The table's partitions, built on first use and rebuilt when its indexes changed
    (UpdateTable); a table moto made by copying items (a restore) starts without any."""
    partitions = getattr(table, "_dripline_partitions", None)
    if partitions is None or partitions.signature != _index_signature(table):
        partitions = table._dripline_partitions = _Partitions(table)  # type: ignore[attr-defined]
    return partitions


def _stored(table: Table, key: TableKey) -> Item | None:
    hash_key, range_key = key
    stored = table.items.get(hash_key)  # .get: `items` is a defaultdict
    if stored is None or range_key is None:
        return stored  # type: ignore[return-value]
    return stored.get(range_key)


def _refresh(table: Table | None, key: TableKey | None) -> None:
    """After a write to `key`, move its item to where it now belongs (if the table's
    partitions exist yet: a table never queried has nothing to keep up to date)."""
    if table is None:
        return
    partitions = getattr(table, "_dripline_partitions", None)
    if partitions is None:
        return
    if key is None:  # a write whose key we could not read: rebuild on the next query
        del table._dripline_partitions  # type: ignore[attr-defined]
    else:
        partitions.place(key, _stored(table, key))


def placed(table: Table, key: TableKey) -> None:
    """For code that writes `table.items` directly (the bench's seeding): keep the
    partitions of the item stored under `key` up to date."""
    with lock():
        _refresh(table, key)


def _key_of(table: Table, attributes: dict[str, Any]) -> TableKey | None:
    """The table key in a request's item or key (None when it has none: moto refuses it)."""
    try:
        hash_key = DynamoType(attributes[table.hash_key_attr])
        range_key = DynamoType(attributes[table.range_key_attr]) if table.range_key_attr else None
    except (KeyError, TypeError):
        return None
    return hash_key, range_key


def _listing_order(item: Item) -> Any:
    """The order of moto's `Table.all_items` (its Query sorts stably from there)."""
    return (item.hash_key, item.range_key) if item.range_key else item.hash_key


def _candidates(table: Table, call: inspect.BoundArguments) -> list[Item] | None:
    """The items moto's Query would consider (None: let moto list the whole table)."""
    arguments = call.arguments
    index_name = arguments.get("index_name")
    if not index_name:
        hash_key = arguments.get("hash_key")
        if hash_key is None:
            return None
        stored = table.items.get(hash_key)
        if stored is None:
            return []
        return list(stored.values()) if table.range_key_attr else [stored]  # type: ignore[union-attr]
    partitions = _partitions(table)
    attributes = partitions.hash_attributes.get(index_name)
    conditions = dict(arguments.get("hash_key_conditions") or ())
    if attributes is None or set(conditions) != set(attributes):
        return None  # an unknown index or an unusual condition: moto answers (or refuses) it
    return partitions.partition(index_name, tuple(conditions[attribute] for attribute in attributes))


@contextlib.contextmanager
def bypassed() -> Iterator[None]:
    """Queries in this block (this thread) use moto's own full-table scan."""
    previous = getattr(_local, "bypassed", False)
    _local.bypassed = True
    try:
        yield
    finally:
        _local.bypassed = previous


def _patch_query(original: Any) -> Any:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def query(self: Table, *args: Any, **kwargs: Any) -> Any:
        if getattr(_local, "bypassed", False):
            return original(self, *args, **kwargs)
        with lock():
            candidates = _candidates(self, signature.bind(self, *args, **kwargs))
            if candidates is None:
                return original(self, *args, **kwargs)
            candidates.sort(key=_listing_order)
            _local.listing = (self, candidates)
            try:
                return original(self, *args, **kwargs)
            finally:
                _local.listing = None

    return query


def _patch_all_items(original: Any) -> Any:
    @functools.wraps(original)
    def all_items(self: Table) -> list[Item]:
        listing = getattr(_local, "listing", None)
        if listing is not None and listing[0] is self:
            return listing[1]
        return original(self)

    return all_items


def _patch_put_item(original: Any) -> Any:
    @functools.wraps(original)
    def put_item(self: Table, item_attrs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        with lock():
            try:
                return original(self, item_attrs, *args, **kwargs)
            finally:
                _refresh(self, _key_of(self, item_attrs))

    return put_item


def _patch_delete_item(original: Any) -> Any:
    @functools.wraps(original)
    def delete_item(self: Table, hash_key: DynamoType, range_key: DynamoType | None) -> Any:
        with lock():
            try:
                return original(self, hash_key, range_key)
            finally:
                _refresh(self, (hash_key, range_key))

    return delete_item


def _patch_update_item(original: Any) -> Any:
    """UpdateItem changes the stored item in place (moto's Table never sees it)."""

    @functools.wraps(original)
    def update_item(self: DynamoDBBackend, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        with lock():
            try:
                return original(self, table_name, key, *args, **kwargs)
            finally:
                table = self.tables.get(table_name)
                _refresh(table, _key_of(table, key) if table is not None else None)

    return update_item


_PATCHES: tuple[tuple[type, str, Any], ...] = (
    (Table, "query", _patch_query),
    (Table, "all_items", _patch_all_items),
    (Table, "put_item", _patch_put_item),
    (Table, "delete_item", _patch_delete_item),
    (DynamoDBBackend, "update_item", _patch_update_item),
)


def index_queries() -> None:
    """Install the partitions (idempotent; before or after moto_lock's serialisation)."""
    for cls, name, patch in _PATCHES:
        method = getattr(cls, name)
        if _is_ours(method):
            continue
        patched = patch(method)
        patched._dripline_indexed = True
        setattr(cls, name, patched)


def _is_ours(method: Any) -> bool:
    while method is not None:
        if getattr(method, "_dripline_indexed", False):
            return True
        method = getattr(method, "__wrapped__", None)
    return False
