"""Exit conditions: "stop this pipeline for a record once it has converted".

A pipeline's `exit_when` is one condition over the record it runs for (a contact today),
its fields and its attributes:

    condition := leaf | {"any": [condition, ...]} | {"all": [condition, ...]}
    leaf      := {"field": NAME, OP} | {"attribute": NAME, OP}
    OP        := "equals": SCALAR | "in": [SCALAR, ...] | "exists": true | false
    SCALAR    := a string (at most 256 characters), a finite number, true or false

- `field` names one of the model type's fields (`RECORD_FIELDS`); `attribute` one key of
  its `attributes` (1-128 characters, the key as stored: no nested paths).
- `equals` holds when the value is present and the same: strings exactly, numbers by
  value (1 equals 1.0), booleans only as booleans (true never equals 1). `in` holds when
  the value equals one of the list (1-50 values). A list or object value equals nothing.
- `exists: true` holds when the value is present and not null; `exists: false` when it
  is absent or null.
- `any` holds when one of its conditions does, `all` when every one does (1-20 each).
- At most `MAX_DEPTH` levels of `any`/`all` and `MAX_LEAVES` leaves in all; a stored
  condition is at most `MAX_BYTES` of JSON.

`evaluate` answers where the condition held, as a path in the same notation as a
validation error's field: `exit_when` (the whole condition), `exit_when.any[1]`,
`exit_when.all[0].any[2]`: the matching leaf under an `any`, the whole group for an
`all`. A run that exits records that path (`PipelineRun.exit_match`).

Pure: no AWS, no clock. The enrollment function evaluates it on each change of a record
(stream MODIFY and INSERT) and the processor just before a step runs.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dripline.errors import ValidationFailed

ROOT = "exit_when"
MAX_DEPTH = 4  # levels of any/all
MAX_LEAVES = 20
MAX_CHILDREN = 20
MAX_IN_VALUES = 50
MAX_STRING = 256
MAX_NAME = 128
MAX_BYTES = 4096

# The fields a condition may name, per model type (plus `attribute` for any attribute key).
# A new model type adds its entry here and passes its records to `record_of`.
RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "contact": ("email", "first_name", "last_name", "timezone"),
    "deal": ("name", "value", "stage", "owner_email"),
}

OPERATORS = ("equals", "in", "exists")
GROUPS = ("any", "all")
_GROUP_PATH = re.compile(r"\.(any|all)\[(\d+)\]")
_ABSENT = object()


@dataclass(frozen=True)
class Leaf:
    path: str
    source: str  # "field" | "attribute"
    name: str
    operator: str  # one of OPERATORS
    operand: Any  # a scalar (equals), a tuple of scalars (in), a bool (exists)

    def holds(self, record: Mapping[str, Any]) -> bool:
        if self.source == "field":
            value = record.get(self.name, _ABSENT)
        else:
            attributes = record.get("attributes")
            value = attributes.get(self.name, _ABSENT) if isinstance(attributes, Mapping) else _ABSENT
        present = value is not _ABSENT and value is not None
        if self.operator == "exists":
            return present is self.operand
        if not present:
            return False
        if self.operator == "equals":
            return same(value, self.operand)
        return any(same(value, option) for option in self.operand)


@dataclass(frozen=True)
class Group:
    path: str
    kind: str  # "any" | "all"
    children: tuple["Leaf | Group", ...]


Node = Leaf | Group


@dataclass(frozen=True)
class ExitCondition:
    """A parsed, valid `exit_when`; `raw` is its JSON form (stored and served as given)."""

    root: Node
    raw: dict[str, Any]

    @classmethod
    def parse(cls, raw: Any, model_type: str | None = None) -> "ExitCondition":
        """Parse and validate; ValidationFailed names the offending field (`exit_when.any[1].field`).

        With a model type, `field` must name one of its fields; without (a stored
        condition read back), any name is taken, so a stored version always loads.
        """
        fields = None if model_type is None else RECORD_FIELDS.get(model_type, ())
        counter = [0]
        root = _node(raw, ROOT, 0, fields, counter)
        size = len(json.dumps(raw, separators=(",", ":")).encode())
        if size > MAX_BYTES:
            raise ValidationFailed(ROOT, f"too large ({size} bytes as JSON; at most {MAX_BYTES})")
        return cls(root, raw)

    def evaluate(self, record: Mapping[str, Any]) -> str | None:
        """The path of what held for `record`, or None when the condition does not hold."""
        return _match(self.root, record)

    def to_dict(self) -> dict[str, Any]:
        return self.raw

    def at(self, path: str) -> dict[str, Any] | None:
        """The JSON of the condition at `path` (as `evaluate` answers it), or None."""
        if not path.startswith(ROOT):
            return None
        node: Any = self.raw
        rest = path[len(ROOT):]
        for kind, index in _GROUP_PATH.findall(rest):
            children = node.get(kind) if isinstance(node, dict) else None
            if not isinstance(children, list) or int(index) >= len(children):
                return None
            node = children[int(index)]
        if "".join(f".{k}[{i}]" for k, i in _GROUP_PATH.findall(rest)) != rest:
            return None
        return node


def record_of(model_type: str, view: Any) -> dict[str, Any]:
    """What a condition sees of a record: its model type's fields and its attributes."""
    record = {name: getattr(view, name, None) for name in RECORD_FIELDS.get(model_type, ())}
    record["attributes"] = dict(getattr(view, "attributes", None) or {})
    return record


def same(value: Any, operand: Any) -> bool:
    """`equals` as documented: booleans only as booleans, numbers by value, else ==."""
    if isinstance(operand, bool) or isinstance(value, bool):
        return isinstance(operand, bool) and isinstance(value, bool) and operand is value
    if _is_number(operand):
        return _is_number(value) and _decimal(value) == _decimal(operand)
    return isinstance(value, str) and isinstance(operand, str) and value == operand


def _match(node: Node, record: Mapping[str, Any]) -> str | None:
    if isinstance(node, Leaf):
        return node.path if node.holds(record) else None
    if node.kind == "all":
        return node.path if all(_match(child, record) is not None for child in node.children) else None
    return next((found for child in node.children if (found := _match(child, record)) is not None), None)


def _node(raw: Any, path: str, depth: int, fields: tuple[str, ...] | None, leaves: list[int]) -> Node:
    if not isinstance(raw, dict):
        raise ValidationFailed(path, 'must be an object: {"attribute"|"field": NAME, "equals"|"in"|"exists": ...} or {"any"|"all": [...]}')
    groups = [k for k in GROUPS if k in raw]
    if groups:
        kind = groups[0]
        extra = sorted(set(raw) - {kind})
        if extra:
            raise ValidationFailed(f"{path}.{extra[0]}", f"not allowed next to {kind!r}")
        if depth >= MAX_DEPTH:
            raise ValidationFailed(f"{path}.{kind}", f"nests too deeply (at most {MAX_DEPTH} levels of any/all)")
        children = raw[kind]
        if not isinstance(children, list) or not 1 <= len(children) <= MAX_CHILDREN:
            raise ValidationFailed(f"{path}.{kind}", f"a list of 1-{MAX_CHILDREN} conditions")
        return Group(
            path,
            kind,
            tuple(_node(child, f"{path}.{kind}[{i}]", depth + 1, fields, leaves) for i, child in enumerate(children)),
        )
    return _leaf(raw, path, fields, leaves)


def _leaf(raw: dict[str, Any], path: str, fields: tuple[str, ...] | None, leaves: list[int]) -> Leaf:
    leaves[0] += 1
    if leaves[0] > MAX_LEAVES:
        raise ValidationFailed(path, f"too many conditions (at most {MAX_LEAVES} in all)")
    sources = [k for k in ("field", "attribute") if k in raw]
    operators = [k for k in OPERATORS if k in raw]
    unknown = sorted(set(raw) - {"field", "attribute", *OPERATORS})
    if unknown:
        raise ValidationFailed(f"{path}.{unknown[0]}", f"unknown key; a condition has field or attribute and one of {', '.join(OPERATORS)}, or any/all")
    if len(sources) != 1:
        raise ValidationFailed(path, "needs exactly one of field or attribute")
    if len(operators) != 1:
        raise ValidationFailed(path, f"needs exactly one of {', '.join(OPERATORS)}")
    source, operator = sources[0], operators[0]
    name = raw[source]
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
        raise ValidationFailed(f"{path}.{source}", f"a name of 1-{MAX_NAME} characters")
    if source == "field" and fields is not None and name not in fields:
        raise ValidationFailed(f"{path}.field", f"unknown field {name!r}; one of {', '.join(fields)} (or use attribute)")
    operand = raw[operator]
    where = f"{path}.{operator}"
    if operator == "exists":
        if not isinstance(operand, bool):
            raise ValidationFailed(where, "true or false")
    elif operator == "equals":
        _scalar(operand, where)
    else:
        if not isinstance(operand, list) or not 1 <= len(operand) <= MAX_IN_VALUES:
            raise ValidationFailed(where, f"a list of 1-{MAX_IN_VALUES} values")
        for i, option in enumerate(operand):
            _scalar(option, f"{where}[{i}]")
        operand = tuple(operand)
    return Leaf(path, source, name, operator, operand)


def _scalar(value: Any, where: str) -> None:
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise ValidationFailed(where, f"strings of at most {MAX_STRING} characters")
        return
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)) and (not isinstance(value, float) or math.isfinite(value)):
        return
    raise ValidationFailed(where, "a string, a finite number or a boolean (to test for null, use exists)")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool) and (not isinstance(value, float) or math.isfinite(value))


def _decimal(value: Any) -> Decimal:
    # Through str: 0.1 (a float from JSON) and Decimal("0.1") (from DynamoDB) are the same.
    return value if isinstance(value, Decimal) else Decimal(str(value))
