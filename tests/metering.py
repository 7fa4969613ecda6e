"""Counts AWS calls and DynamoDB write units, as AWS would bill them (moto reports none).

Every botocore client created while the meter is installed gets three hooks:
`before-parameter-build` keeps the call's parameters, `before-call` counts the call and
reads the item as it was from moto's backend, `after-call` reads it as it is and bills:

* the table: ceil(larger of the before/after item size / 1 KB), at least 1; a failed
  conditional write is billed on the item as it was;
* each global secondary index: a put or delete when the item enters or leaves it, a
  delete plus a put when its keys change, one write when only a projected attribute
  changes, nothing otherwise (sizes of the projected index items).

Item size follows DynamoDB's rules: attribute name bytes + value bytes (numbers about
one byte per two digits + 1, lists and maps 3 bytes + 1 per element).
"""
from __future__ import annotations

import json
import math
import threading
from collections import Counter
from typing import Any

import botocore.session

WRITES = {"PutItem", "UpdateItem", "DeleteItem"}


def value_size(value: dict[str, Any]) -> int:
    (kind, raw), = value.items()
    if kind == "S":
        return len(raw.encode())
    if kind == "N":
        digits = raw.lstrip("-").replace(".", "").strip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(raw) if isinstance(raw, (bytes, bytearray)) else len(raw.encode())
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in raw)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in raw.items())
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: v}) for v in raw)
    raise ValueError(kind)


def item_size(item: dict[str, Any] | None) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in (item or {}).items())


def units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


class Meter:
    """Install with `with Meter() as meter:`; read `calls` and `write_units`."""

    def __init__(self) -> None:
        self.calls: Counter = Counter()  # "Service.Operation" -> count
        self.write_units: Counter = Counter()  # table or "table/index" -> units
        self._lock = threading.Lock()
        self._original = None

    # --- reading ------------------------------------------------------------------------
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def total_write_units(self) -> int:
        return sum(self.write_units.values())

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.write_units.clear()

    # --- installing ---------------------------------------------------------------------
    def __enter__(self) -> "Meter":
        original = botocore.session.Session.create_client
        meter = self

        def create_client(session, *args, **kwargs):
            client = original(session, *args, **kwargs)
            events = client.meta.events
            events.register("before-parameter-build.*.*", meter._keep_params)
            events.register("before-call.*.*", meter._before)
            events.register("after-call.*.*", meter._after)
            return client

        self._original = original
        botocore.session.Session.create_client = create_client
        self._drop_cached_clients()
        return self

    def __exit__(self, *exc: Any) -> None:
        botocore.session.Session.create_client = self._original
        self._drop_cached_clients()

    @staticmethod
    def _drop_cached_clients() -> None:
        """pynamodb caches a client per model: make the next call build a metered one."""
        from dripline.storage.models import ALL_MODELS

        for model in ALL_MODELS:
            model._connection = None

    # --- hooks --------------------------------------------------------------------------
    def _keep_params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["metered_params"] = dict(params)

    def _before(self, model, context: dict[str, Any], **_: Any) -> None:
        name = f"{model.service_model.service_id}.{model.name}"
        with self._lock:
            self.calls[name] += 1
        if model.service_model.service_id == "DynamoDB" and model.name in WRITES:
            params = context.get("metered_params", {})
            context["metered_before"] = _moto_item(params.get("TableName"), params.get("Key") or _key_of(params))

    def _after(self, model, http_response, context: dict[str, Any], **_: Any) -> None:
        if "metered_before" not in context:
            return
        params = context["metered_params"]
        table = params["TableName"]
        before = context.pop("metered_before")
        if http_response.status_code >= 300:
            billed = {table: units(item_size(before))} if http_response.status_code == 400 else {}
        else:
            after = _moto_item(table, params.get("Key") or _key_of(params))
            billed = {table: units(max(item_size(before), item_size(after)))}
            for name, index_units in _index_writes(table, before, after).items():
                billed[f"{table}/{name}"] = index_units
        with self._lock:
            self.write_units.update(billed)


def _moto_backend():
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends["123456789012"]["us-east-1"]


def _key_of(params: dict[str, Any]) -> dict[str, Any]:
    """A PutItem's key: the table's key attributes of the item."""
    table = _moto_backend().get_table(params["TableName"])
    item = params.get("Item") or {}
    return {k: item[k] for k in (table.hash_key_attr, table.range_key_attr) if k}


def _moto_item(table_name: str, key: dict[str, Any]) -> dict[str, Any] | None:
    from moto.dynamodb.models.dynamo_type import DynamoType

    table = _moto_backend().get_table(table_name)
    hash_key = DynamoType(key[table.hash_key_attr])
    range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
    item = table.get_item(hash_key, range_key)
    return json.loads(json.dumps(item.to_json()["Attributes"], default=str)) if item else None


def _index_writes(table_name: str, before: dict | None, after: dict | None) -> dict[str, int]:
    table = _moto_backend().get_table(table_name)
    table_keys = [k for k in (table.hash_key_attr, table.range_key_attr) if k]
    billed: dict[str, int] = {}
    for index in table.global_indexes:
        keys = [k["AttributeName"] for k in index.schema]
        projection = index.projection or {}
        kind = projection.get("ProjectionType", "ALL")

        def projected(item: dict | None) -> dict | None:
            if item is None or any(k not in item for k in keys):
                return None
            if kind == "ALL":
                return dict(item)
            names = set(keys) | set(table_keys)
            if kind == "INCLUDE":
                names |= set(projection.get("NonKeyAttributes", []))
            return {k: v for k, v in item.items() if k in names}

        old, new = projected(before), projected(after)
        if old is None and new is None:
            continue
        if old is None or new is None:
            billed[index.name] = units(item_size(old or new))
        elif any(old.get(k) != new.get(k) for k in keys):
            billed[index.name] = units(item_size(old)) + units(item_size(new))
        elif old != new:
            billed[index.name] = units(max(item_size(old), item_size(new)))
    return billed
