"""Tenant isolation, proven for every operation the API serves.

The operations come from the served OpenAPI document, not from a list in this file, so a
new route is covered the day it is added. Team A (`acme`) owns a pipeline, a contact, a deal,
a run and a task. For every authenticated operation that takes an id (in the path, or as a
`*_id` query filter) team B (`globex`) calls it with A's ids: reads, updates, deletes,
sub-resources and stats answer 404, listings answer 200 with no items. Every listing
called by B shows nothing. A's data is unchanged afterwards, and A still reads every id.
An operation taking an id this test cannot supply fails the test: add a factory.
"""
from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import OTHER, TASK_FIRST, contact_body

# Team A's resource for each id parameter (from the `world` fixture).
ID_FACTORIES = {
    "pipeline_id": lambda world: world["pipeline_id"],
    "contact_id": lambda world: world["contact_id"],
    "run_id": lambda world: world["run_id"],
    "task_id": lambda world: world["task_id"],
    "deal_id": lambda world: world["deal_id"],
    "step_number": lambda world: 2,  # the world pipeline's email step
}
# A valid request body for each request schema.
BODY_FACTORIES = {
    "PipelineIn": lambda world: {"name": "Mallory's", "steps": [TASK_FIRST]},
    "ContactIn": lambda world: contact_body(),
    "ContactPatch": lambda world: {"first_name": "Mallory", "unsubscribed": True},
    "AssignIn": lambda world: {"pipeline_id": world["pipeline_id"]},
    "TaskPatch": lambda world: {"status": "done"},
    "DealIn": lambda world: {"name": "Mallory's deal", "contact_ids": []},
    "DealPatch": lambda world: {"stage": "lost", "contact_ids": []},
    # Team A's pipeline tried for team A's contact: both unknown to team B.
    "PreviewIn": lambda world: {"contact_id": world["contact_id"]},
    "SimulateIn": lambda world: {"contact_id": world["contact_id"], "failures": [{"step_number": 1}]},
    "TestSendIn": lambda world: {"to": "ada@acme.example", "contact_id": world["contact_id"]},
}


def authenticated_operations(document: dict[str, Any]):
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if operation.get("security"):  # public routes (health, the signed unsubscribe link) have no team
                yield method.upper(), path, operation


def id_parameters(operation: dict[str, Any]) -> tuple[list[str], list[str]]:
    parameters = operation.get("parameters", [])
    in_path = [p["name"] for p in parameters if p["in"] == "path"]
    in_query = [p["name"] for p in parameters if p["in"] == "query" and p["name"].endswith("_id")]
    return in_path, in_query


def body_of(operation: dict[str, Any], world: dict[str, Any]) -> dict[str, Any] | None:
    if "requestBody" not in operation:
        return None
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    name = ref.rsplit("/", 1)[1]
    assert name in BODY_FACTORIES, f"no body factory for {name}: add one to BODY_FACTORIES"
    return BODY_FACTORIES[name](world)


def is_listing(operation: dict[str, Any]) -> bool:
    ok = operation["responses"].get("200", {}).get("content", {}).get("application/json", {}).get("schema", {})
    return ok.get("$ref", "").endswith(("Page", "List"))


@pytest.fixture
def document(api):
    reply = api.get("/openapi.json", team=None)
    assert reply.status == 200
    return reply.body


def test_another_team_can_reach_none_of_our_resources_through_any_operation(api, world, snapshot, document):
    ids = {name: factory(world) for name, factory in ID_FACTORIES.items()}
    before = snapshot()
    answers: dict[str, Any] = {}
    expected: dict[str, Any] = {}

    for method, path, operation in authenticated_operations(document):
        in_path, in_query = id_parameters(operation)
        if not in_path and not (method == "GET" and is_listing(operation)):
            continue  # takes no id and lists nothing: creates B's own resources (POST /pipelines, /contacts)
        missing = [name for name in in_path + in_query if name not in ids]
        assert not missing, f"{method} {path} takes {missing}: add a factory to ID_FACTORIES"
        url = path.format(**{name: ids[name] for name in in_path})
        body = body_of(operation, world)
        queries = [{}] + [{name: ids[name]} for name in in_query]
        for query in queries:
            key = f"{method} {path} {query}"
            reply = api.call(method, url, body, query=query, team=OTHER)
            if in_path:
                answers[key], expected[key] = reply.status, 404
            else:
                answers[key], expected[key] = (reply.status, reply.body["items"]), (200, [])

    assert answers == expected
    assert len(answers) >= 20
    assert snapshot() == before, "another team's calls changed our data"


def test_every_id_the_other_team_was_refused_is_ours(api, world, document):
    """The 404s above are about tenancy, not wrong ids: team A reads each of them."""
    ids = {name: factory(world) for name, factory in ID_FACTORIES.items()}
    read = 0
    for method, path, operation in authenticated_operations(document):
        in_path, _ = id_parameters(operation)
        if method == "GET" and in_path:
            reply = api.get(path.format(**{name: ids[name] for name in in_path}))
            assert reply.status == 200, (path, reply.body)
            read += 1
    assert read >= 5
