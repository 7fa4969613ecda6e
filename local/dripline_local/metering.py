"""Count AWS calls and DynamoDB capacity units, as AWS would bill them.

    with Meter() as meter:
        ...  # anything that makes AWS calls through botocore (boto3, pynamodb)
    usage = meter.usage()
    usage.calls            # {"dynamodb:UpdateItem": 200, "sesv2:SendEmail": 100, ...}
    usage.write_units      # {"dripline-runs": 812.0, ...}, base table and its indexes
    usage.per(100)         # the same, per step

Calls are counted with botocore events on every client created while the meter is
installed (pynamodb makes one botocore session per thread, so the meter hooks client
creation rather than one session). Neither moto nor a mock reports consumed capacity,
so units are computed from item sizes with DynamoDB's sizing rules:

- item size: attribute names plus values (string: UTF-8 bytes; number: 1 byte per two
  significant digits + 1; binary: bytes; bool/null: 1; list/map: 3 + 1 per element
  + the elements; sets: their elements);
- a write costs ceil(size / 1 KB) of the larger of the old and the new image, at least
  1; a failed conditional write costs the existing item's size, at least 1; a
  transaction costs twice that per item;
- each global secondary index (counted apart, as "table/index/name"): an item entering it is one put, leaving it one delete,
  a change of its key values a delete and a put; a change of a projected attribute one
  write; a change of attributes it does not project nothing. An index write costs
  ceil(index entry / 1 KB); the entry is the table and index keys plus the projection;
- a read costs ceil(size / 4 KB), at least 1, halved when eventually consistent (index
  queries always are); GetItem and BatchGetItem per item (a missing key still costs
  the minimum), Query and Scan per page on the summed size of the page's items.

Writes need the old image (and, for an UpdateItem that does not return ALL_NEW, the new
one): the meter reads it with its own, unmetered client, just before the write. Under
concurrent writers to the same item that image can be a moment stale; sizes move by a
few bytes at most. A Query/Scan with a ProjectionExpression is sized on what it returned
(DynamoDB bills the whole items read), so it undercounts that case.

The meter's own work (those reads, the size arithmetic) is timed with time.thread_time,
so a caller measuring CPU with time.process_time can subtract `overhead_cpu_seconds`.
"""
from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

KB = 1024
READ_UNIT_BYTES = 4 * KB
WRITE_OPERATIONS = frozenset({"PutItem", "UpdateItem", "DeleteItem"})
_CONTEXT_KEY = "dripline_meter"
REFUSED_CODES = frozenset({"ConditionalCheckFailedException", "TransactionCanceledException"})


# --- DynamoDB's sizing rules ----------------------------------------------------------------


def value_size(value: Mapping[str, Any]) -> int:
    """Bytes of one typed attribute value ({"S": ...}, {"N": ...}, {"M": {...}} ...)."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode("utf-8"))
    if kind == "N":
        return _number_size(data)
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode("utf-8")) for s in data)
    if kind == "NS":
        return sum(_number_size(n) for n in data)
    if kind == "BS":
        return sum(len(b) for b in data)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in data)
    if kind == "M":
        return 3 + sum(1 + len(k.encode("utf-8")) + value_size(v) for k, v in data.items())
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def _number_size(text: str) -> int:
    digits = str(Decimal(text).normalize()).lstrip("-").replace(".", "").split("E")[0].strip("0") or "0"
    return math.ceil(len(digits) / 2) + 1


def item_size(item: Mapping[str, Any] | None) -> int:
    """Bytes of a typed item: every attribute's name plus its value."""
    if not item:
        return 0
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / KB))


def read_units(size: int, *, consistent: bool) -> float:
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


# --- table shapes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Index:
    name: str
    keys: tuple[str, ...]
    projection: str  # ALL | KEYS_ONLY | INCLUDE
    included: frozenset[str] = frozenset()

    def entry(self, item: Mapping[str, Any] | None, table_keys: tuple[str, ...]) -> dict[str, Any] | None:
        """The item as this index stores it, or None when the item is not in the index."""
        if not item or any(key not in item for key in self.keys):
            return None
        if self.projection == "ALL":
            return dict(item)
        names = set(table_keys) | set(self.keys) | (self.included if self.projection == "INCLUDE" else set())
        return {name: value for name, value in item.items() if name in names}

    def write_units(self, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, table_keys: tuple[str, ...]) -> int:
        before, after = self.entry(old, table_keys), self.entry(new, table_keys)
        if before is None and after is None:
            return 0
        if before is None:
            return write_units(item_size(after))
        if after is None:
            return write_units(item_size(before))
        if any(before[key] != after[key] for key in self.keys):  # moved: delete + put
            return write_units(item_size(before)) + write_units(item_size(after))
        return write_units(item_size(after)) if before != after else 0


@dataclass(frozen=True)
class TableShape:
    keys: tuple[str, ...]
    indexes: tuple[Index, ...]

    @classmethod
    def from_description(cls, table: Mapping[str, Any]) -> "TableShape":
        def key_names(schema: list[dict[str, str]]) -> tuple[str, ...]:
            return tuple(k["AttributeName"] for k in sorted(schema, key=lambda k: k["KeyType"] != "HASH"))

        indexes = tuple(
            Index(
                name=gsi["IndexName"],
                keys=key_names(gsi["KeySchema"]),
                projection=gsi["Projection"]["ProjectionType"],
                included=frozenset(gsi["Projection"].get("NonKeyAttributes", ())),
            )
            for gsi in table.get("GlobalSecondaryIndexes", ())
        )
        return cls(keys=key_names(table["KeySchema"]), indexes=indexes)

    def key_of(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {name: item[name] for name in self.keys}

    def write_units(self, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> dict[str | None, int]:
        """For one item going from `old` to `new`: the base table's units (key None) and
        each index's that it writes."""
        units: dict[str | None, int] = {None: write_units(max(item_size(old), item_size(new)))}
        for index in self.indexes:
            written = index.write_units(old, new, self.keys)
            if written:
                units[index.name] = written
        return units


# --- what was used ----------------------------------------------------------------------------


@dataclass
class Usage:
    calls: Counter = field(default_factory=Counter)  # "service:Operation" -> count
    # WCU by "table" (the base table) and "table/index/name" (each global secondary index).
    write_units: Counter = field(default_factory=Counter)
    read_units: Counter = field(default_factory=Counter)  # table -> RCU
    # Conditional writes DynamoDB refused ("service:Operation" -> count): paid, wasted.
    refused: Counter = field(default_factory=Counter)

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def total_write_units(self) -> float:
        return float(sum(self.write_units.values()))

    @property
    def total_read_units(self) -> float:
        return float(sum(self.read_units.values()))

    def __sub__(self, other: "Usage") -> "Usage":
        return Usage(
            Counter({k: v - other.calls[k] for k, v in self.calls.items() if v - other.calls[k]}),
            Counter({k: v - other.write_units[k] for k, v in self.write_units.items() if v - other.write_units[k]}),
            Counter({k: v - other.read_units[k] for k, v in self.read_units.items() if v - other.read_units[k]}),
            Counter({k: v - other.refused[k] for k, v in self.refused.items() if v - other.refused[k]}),
        )

    def per(self, n: int) -> dict[str, Any]:
        """Per unit of work (a step, a contact): rounded, JSON-ready."""
        n = max(1, n)
        return {
            "calls": round(self.total_calls / n, 3),
            "calls_by_operation": {k: round(v / n, 3) for k, v in sorted(self.calls.items())},
            "write_units": round(self.total_write_units / n, 3),
            "read_units": round(self.total_read_units / n, 3),
            "write_units_by_table": {k: round(v / n, 3) for k, v in sorted(self.write_units.items())},
            "read_units_by_table": {k: round(v / n, 3) for k, v in sorted(self.read_units.items())},
            "refused_conditional_writes": round(sum(self.refused.values()) / n, 4),
        }


# --- the meter ----------------------------------------------------------------------------------


class Meter:
    """Installs itself on botocore client creation; counts until uninstalled.

    Only clients created while installed are metered: install it before the code under
    measurement builds its clients (pynamodb builds them lazily, per thread).
    """

    _install_lock = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._usage = Usage()
        self._shapes: dict[tuple[str | None, str], TableShape] = {}
        self._readers: dict[tuple[str, str | None], Any] = {}
        self._original_create_client: Any = None
        self._paused = False
        self.overhead_cpu_seconds = 0.0

    # lifecycle -------------------------------------------------------------------------
    def install(self) -> "Meter":
        with Meter._install_lock:
            if self._original_create_client is not None:
                return self
            original = botocore.session.Session.create_client
            meter = self

            def create_client(session: botocore.session.Session, *args: Any, **kwargs: Any) -> Any:
                client = original(session, *args, **kwargs)
                meter._attach(client)
                return client

            self._original_create_client = original
            botocore.session.Session.create_client = create_client  # type: ignore[method-assign]
        return self

    def uninstall(self) -> None:
        with Meter._install_lock:
            if self._original_create_client is not None:
                botocore.session.Session.create_client = self._original_create_client  # type: ignore[method-assign]
                self._original_create_client = None

    def __enter__(self) -> "Meter":
        return self.install()

    def __exit__(self, *exc: Any) -> None:
        self.uninstall()

    def usage(self) -> Usage:
        """A copy of what was counted so far (subtract two copies for an interval)."""
        with self._lock:
            u = self._usage
            return Usage(Counter(u.calls), Counter(u.write_units), Counter(u.read_units), Counter(u.refused))

    def reset(self) -> None:
        with self._lock:
            self._usage = Usage()
            self.overhead_cpu_seconds = 0.0

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Count nothing (and read no images) inside: set-up work between measurements."""
        self._paused = True
        try:
            yield
        finally:
            self._paused = False

    def attach(self, client: Any) -> Any:
        """Meter a client created before install() (returns it)."""
        self._attach(client)
        return client

    # hooks ------------------------------------------------------------------------------
    def _attach(self, client: Any) -> None:
        if getattr(client, "_dripline_metered", False):
            return
        client._dripline_metered = True
        client.meta.events.register("before-parameter-build", self._before(client))
        client.meta.events.register("after-call", self._after(client))

    def _before(self, client: Any) -> Any:
        service = client.meta.service_model.service_name

        def before(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
            if self._paused:
                return
            started = time.thread_time()
            operation = model.name
            with self._lock:
                self._usage.calls[f"{service}:{operation}"] += 1
            if service == "dynamodb":
                context[_CONTEXT_KEY] = (params, self._old_images(client, operation, params))
            self._overhead(started)

        return before

    def _after(self, client: Any) -> Any:
        def after(http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
            if _CONTEXT_KEY not in context:
                return
            started = time.thread_time()
            params, old_images = context.pop(_CONTEXT_KEY)
            failed = http_response.status_code >= 300
            reads, writes = self._units(client, model.name, params, parsed, old_images, failed)
            refused = failed and parsed.get("Error", {}).get("Code") in REFUSED_CODES
            with self._lock:
                self._usage.read_units.update(reads)
                self._usage.write_units.update(writes)
                if refused:
                    self._usage.refused[f"dynamodb:{model.name}"] += 1
            self._overhead(started)

        return after

    def _overhead(self, started: float) -> None:
        spent = time.thread_time() - started
        with self._lock:
            self.overhead_cpu_seconds += spent

    # units ------------------------------------------------------------------------------
    def _old_images(self, client: Any, operation: str, params: dict[str, Any]) -> list[dict[str, Any] | None]:
        """Each written item's current image, in the order _writes() lists the writes."""
        return [self._read(client, table, key) for table, key, _ in self._writes(client, operation, params)]

    def _writes(self, client: Any, operation: str, params: dict[str, Any]) -> list[tuple[str, dict[str, Any], Any]]:
        """(table, key, request) of every item an operation writes."""
        if operation in WRITE_OPERATIONS:
            table = params["TableName"]
            key = params.get("Key") or self._shape(client, table).key_of(params["Item"])
            return [(table, key, (operation, params))]
        if operation == "TransactWriteItems":
            writes = []
            for entry in params["TransactItems"]:
                ((kind, request),) = entry.items()
                table = request["TableName"]
                key = request.get("Key") or self._shape(client, table).key_of(request["Item"])
                writes.append((table, key, (kind, request)))
            return writes
        if operation == "BatchWriteItem":
            writes = []
            for table, requests in params["RequestItems"].items():
                for request in requests:
                    if "PutRequest" in request:
                        item = request["PutRequest"]["Item"]
                        writes.append((table, self._shape(client, table).key_of(item), ("Put", request["PutRequest"])))
                    else:
                        writes.append((table, request["DeleteRequest"]["Key"], ("Delete", request["DeleteRequest"])))
            return writes
        return []

    def _units(
        self,
        client: Any,
        operation: str,
        params: dict[str, Any],
        parsed: dict[str, Any],
        old_images: list[dict[str, Any] | None],
        failed: bool,
    ) -> tuple[Counter, Counter]:
        reads: Counter = Counter()
        writes: Counter = Counter()
        writes_made = self._writes(client, operation, params)
        if writes_made:
            factor = 2 if operation == "TransactWriteItems" else 1
            for (table, key, (kind, request)), old in zip(writes_made, old_images):
                if failed or kind == "ConditionCheck":  # a refused write still costs the item's size
                    writes[table] += factor * write_units(item_size(old))
                    continue
                if kind in ("PutItem", "Put"):
                    new = request["Item"]
                elif kind in ("DeleteItem", "Delete"):
                    new = None
                elif operation == "UpdateItem" and request.get("ReturnValues") == "ALL_NEW":
                    new = parsed.get("Attributes")
                else:
                    new = self._read(client, table, key)
                for index, units in self._shape(client, table).write_units(old, new).items():
                    writes[table if index is None else f"{table}/index/{index}"] += factor * units
            return reads, writes
        if failed:
            return reads, writes
        if operation == "GetItem":
            reads[params["TableName"]] += read_units(item_size(parsed.get("Item")), consistent=bool(params.get("ConsistentRead")))
        elif operation in ("Query", "Scan"):
            size = sum(item_size(item) for item in parsed.get("Items", ()))
            consistent = bool(params.get("ConsistentRead")) and "IndexName" not in params
            reads[params["TableName"]] += read_units(size, consistent=consistent)
        elif operation == "BatchGetItem":
            for table, request in params["RequestItems"].items():
                found = parsed.get("Responses", {}).get(table, [])
                unprocessed = len(parsed.get("UnprocessedKeys", {}).get(table, {}).get("Keys", ()))
                consistent = bool(request.get("ConsistentRead"))
                reads[table] += sum(read_units(item_size(item), consistent=consistent) for item in found)
                missing = len(request["Keys"]) - len(found) - unprocessed
                reads[table] += missing * read_units(0, consistent=consistent)
        elif operation == "TransactGetItems":
            for entry, response in zip(params["TransactItems"], parsed.get("Responses", ())):
                reads[entry["Get"]["TableName"]] += 2 * read_units(item_size(response.get("Item")), consistent=True)
        return reads, writes

    # the meter's own reads ---------------------------------------------------------------
    def _reader(self, client: Any) -> Any:
        where = (client.meta.region_name, client.meta.endpoint_url)
        with self._lock:
            reader = self._readers.get(where)
        if reader is None:
            session = botocore.session.get_session()
            create = self._original_create_client or botocore.session.Session.create_client
            reader = create(
                session,
                "dynamodb",
                region_name=where[0],
                endpoint_url=where[1],
                config=Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32),
            )
            with self._lock:
                reader = self._readers.setdefault(where, reader)
        return reader

    def _shape(self, client: Any, table: str) -> TableShape:
        where = (client.meta.endpoint_url, table)
        with self._lock:
            shape = self._shapes.get(where)
        if shape is None:
            shape = TableShape.from_description(self._reader(client).describe_table(TableName=table)["Table"])
            with self._lock:
                self._shapes[where] = shape
        return shape

    def _read(self, client: Any, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return self._reader(client).get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        except ClientError:  # the table is gone or the key malformed: the call itself will say so
            return None
