"""The served OpenAPI document: Powertools' generated one, made to say what the API does.

Powertools documents every route's 500 as its "Response Validation Error" and a 422 as
its own `HTTPValidationError`, and gives a 204 a JSON body. Dripline answers every error
with `ErrorBody` (`dripline.api.errors`), a 204 has no body, and a route without inputs
(or with only path ids) cannot answer 422. `finish` rewrites those entries, states what the models cannot
(the registered action types, the `next_token` format), and adds OpenAPI links from the responses that create
or list resources to the operations that take their ids, so a client or a fuzzer can
follow them.

Print it with `python -m dripline.api.openapi > docs/openapi.json`.
"""
from __future__ import annotations

import sys
from typing import Any

ERROR_REF = "#/components/schemas/ErrorBody"
_POWERTOOLS_SCHEMAS = ("HTTPValidationError", "ValidationError", "ResponseValidationError")
SERVER_ERROR = {
    "description": "Unexpected error (logged); the request may or may not have taken effect",
    "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
}
INVALID = "Well-formed but invalid: `message` names the field"
# next_token (dripline.signing): base64url(payload) "." base64url(MAC); anything else is a 400.
NEXT_TOKEN_PATTERN = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"

# (operation, response status) -> {link name: (target operation, {parameter: runtime expression})}
LINKS: dict[tuple[str, str], dict[str, tuple[str, dict[str, str]]]] = {}


def _link(source: str, status: str, expression: str, targets: dict[str, str]) -> None:
    """Each target operation takes the id found at `expression` as its parameter of that name."""
    for operation, parameter in targets.items():
        LINKS.setdefault((source, status), {})[operation] = (operation, {parameter: expression})


_PIPELINE_TARGETS = {
    "get_pipeline": "pipeline_id", "update_pipeline": "pipeline_id", "archive_pipeline": "pipeline_id",
    "pipeline_stats": "pipeline_id", "put_automatic": "pipeline_id", "delete_automatic": "pipeline_id",
    "list_runs": "pipeline_id", "reconcile_pipeline_stats": "pipeline_id",
    "preview_pipeline": "pipeline_id", "simulate_pipeline": "pipeline_id", "test_send_step": "pipeline_id",
}
_CONTACT_TARGETS = {
    "get_contact": "contact_id", "patch_contact": "contact_id", "delete_contact": "contact_id",
    "contact_runs": "contact_id", "assign": "contact_id", "list_tasks": "contact_id", "contact_messages": "contact_id",
}
# Not list_tasks: a second link into it (filling deal_id where contact's fills contact_id) makes
# schemathesis draw its query differently per source, which hypothesis refuses as flaky.
_DEAL_TARGETS = {"get_deal": "deal_id", "patch_deal": "deal_id", "delete_deal": "deal_id", "deal_runs": "deal_id"}
_link("create_pipeline", "201", "$response.body#/pipeline_id", _PIPELINE_TARGETS)
_link("update_pipeline", "200", "$response.body#/pipeline_id", _PIPELINE_TARGETS)
_link("list_pipelines", "200", "$response.body#/items/0/pipeline_id", _PIPELINE_TARGETS)
_link("compare_pipelines", "200", "$response.body#/items/0/pipeline_id", _PIPELINE_TARGETS)
_link("list_automatic", "200", "$response.body#/items/0/pipeline_id", _PIPELINE_TARGETS)
_link("create_contact", "201", "$response.body#/contact_id", _CONTACT_TARGETS)
_link("list_contacts", "200", "$response.body#/items/0/contact_id", _CONTACT_TARGETS)
_link("create_deal", "201", "$response.body#/deal_id", _DEAL_TARGETS)
_link("list_deals", "200", "$response.body#/items/0/deal_id", _DEAL_TARGETS)
_link("deal_runs", "200", "$response.body#/items/0/run_id", {"get_run": "run_id"})
_link("assign", "201", "$response.body#/run_id", {"get_run": "run_id"})
_link("list_runs", "200", "$response.body#/items/0/run_id", {"get_run": "run_id"})
_link("contact_runs", "200", "$response.body#/items/0/run_id", {"get_run": "run_id"})
_link("contact_messages", "200", "$response.body#/items/0/run_id", {"get_run": "run_id"})
_link("error_patterns", "200", "$response.body#/items/0/example_run_id", {"get_run": "run_id"})
# A preview names each step: the test send takes the same pipeline and the step's number.
LINKS[("preview_pipeline", "200")] = {"test_send_step": (
    "test_send_step", {"pipeline_id": "$response.body#/pipeline_id", "step_number": "$response.body#/steps/0/step_number"}
)}
_link("list_tasks", "200", "$response.body#/items/0/task_id", {"patch_task": "task_id"})
# Removing a contact from a run needs both ids: the run names its contact.
LINKS[("assign", "201")]["unassign"] = (
    "unassign", {"contact_id": "$response.body#/pipelineable_id", "run_id": "$response.body#/run_id"}
)


def finish(document: dict[str, Any], action_types: list[str]) -> dict[str, Any]:
    """Powertools' document -> the document of what the API answers (changed in place)."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            _finish_operation(operation)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in _POWERTOOLS_SCHEMAS:
        schemas.pop(name, None)
    action_type = schemas.get("StepIn", {}).get("properties", {}).get("action_type")
    if action_type is not None:
        action_type["enum"] = sorted(action_types)
    return document


def _finish_operation(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        if parameter.get("name") == "next_token":
            schema = parameter["schema"]
            for option in schema.get("anyOf", [schema]):
                if option.get("type") == "string":
                    option["pattern"] = NEXT_TOKEN_PATTERN
    responses = operation["responses"]
    responses["500"] = SERVER_ERROR
    # Path ids are unconstrained strings (an unknown one is a 404): only a body or a query can be invalid.
    takes_input = "requestBody" in operation or any(p.get("in") == "query" for p in operation.get("parameters", []))
    if "422" in responses:
        if takes_input:
            description = responses["422"].get("description", INVALID)
            responses["422"] = {"description": INVALID if description == "Validation Error" else description,
                                "content": {"application/json": {"schema": {"$ref": ERROR_REF}}}}
        else:
            del responses["422"]
    if "204" in responses:
        responses["204"].pop("content", None)
    for status, response in responses.items():
        links = LINKS.get((operation.get("operationId", ""), status))
        if links:
            response["links"] = {
                name: {"operationId": target, "parameters": parameters} for name, (target, parameters) in sorted(links.items())
            }


if __name__ == "__main__":
    from dripline.api.app import openapi_json

    sys.stdout.write(openapi_json())
