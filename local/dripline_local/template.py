"""Read infra/template.yaml: the one source of truth for tables, queues and settings."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """Understands CloudFormation short-form tags (!Ref, !GetAtt, !Sub ...)."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


@lru_cache(maxsize=None)
def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def resources_of_type(resource_type: str, path: Path = TEMPLATE_PATH) -> dict[str, dict[str, Any]]:
    resources = load_template(path)["Resources"]
    return {name: res for name, res in resources.items() if res["Type"] == resource_type}


def function_properties(logical_id: str, path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """A function's properties with the template's Globals applied (what Lambda would run)."""
    template = load_template(path)
    merged = dict(template.get("Globals", {}).get("Function", {}))
    own = template["Resources"][logical_id]["Properties"]
    for key, value in own.items():
        if key == "Environment":
            variables = dict(merged.get("Environment", {}).get("Variables", {}))
            variables.update(value.get("Variables", {}))
            merged["Environment"] = {"Variables": variables}
        else:
            merged[key] = value
    return merged


def stream_event_sources(function_id: str = "EnrollmentFunction") -> dict[str, dict[str, Any]]:
    """A function's DynamoDB stream event sources (batch size, retries ...), by the logical id
    of the table whose stream each reads (`Stream: !GetAtt <Table>.StreamArn`)."""
    events = function_properties(function_id)["Events"]
    sources = {}
    for event in events.values():
        if event["Type"] == "DynamoDB":
            table, _attribute = _get_att(event["Properties"]["Stream"])
            sources[table] = event["Properties"]
    return sources


def stream_event_source(function_id: str = "EnrollmentFunction", table: str = "ContactsTable") -> dict[str, Any]:
    """The event source of a function on one table's stream."""
    try:
        return stream_event_sources(function_id)[table]
    except KeyError:
        raise LookupError(f"{function_id} has no DynamoDB event source on {table}") from None


def _get_att(value: Any) -> tuple[str, str]:
    """`!GetAtt A.B` (a string) or `Fn::GetAtt: [A, B]` -> (A, B)."""
    target = value["Fn::GetAtt"]
    if isinstance(target, str):
        resource, _, attribute = target.partition(".")
        return resource, attribute
    return target[0], target[1]
