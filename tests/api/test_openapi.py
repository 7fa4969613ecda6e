"""The served OpenAPI document comes from the code, says what the API answers, and
matches the contract in docs/API.md; docs/openapi.json is a copy of it."""
import json
import re
from pathlib import Path

from dripline import actions
from dripline.api.app import openapi_json

DOCS = Path(__file__).resolve().parents[2] / "docs"
COMMITTED = DOCS / "openapi.json"
API_MD = DOCS / "API.md"
ERROR_REF = "#/components/schemas/ErrorBody"


def document() -> dict:
    return json.loads(openapi_json())


def operations(doc: dict):
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            yield method, path, op


def api_md_routes() -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(routes of the contract, local-only routes): every `METHOD /path` written in docs/API.md."""
    text = API_MD.read_text()
    found = {(m.lower(), p) for m, p in re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s?]*)", text)}
    local = {(m, p) for m, p in found if p.startswith("/_local/")}
    return found - local, local


def test_committed_document_matches_the_code():
    # Regenerate with: PYTHONPATH=layers/common .venv/bin/python -m dripline.api.openapi > docs/openapi.json
    assert COMMITTED.read_text() == openapi_json(), "docs/openapi.json is stale: regenerate it"


def test_served_document_is_the_committed_one(api):
    reply = api.get("/openapi.json", team=None)
    assert reply.status == 200 and reply.body == json.loads(COMMITTED.read_text())


def test_swagger_ui_shows_the_same_document(api):
    reply = api.get("/docs", team=None, query={"format": "json"})
    assert reply.body == json.loads(COMMITTED.read_text())


def test_every_served_operation_is_in_api_md_and_every_api_md_route_is_served():
    served = {(method, path) for method, path, _ in operations(document())}
    contract, local = api_md_routes()
    contract -= {("get", "/openapi.json"), ("get", "/docs")}  # the document itself, not an operation

    assert served - contract == set(), "served but not in docs/API.md"
    assert contract - served == set(), "in docs/API.md but not served"
    assert local == {("post", "/_local/token"), ("get", "/_local/clock"), ("post", "/_local/clock"),
                     ("post", "/_local/tick"), ("get", "/_local/emails"), ("get", "/_local/dashboard")}


def test_every_documented_error_uses_the_error_body():
    checked = 0
    for method, path, op in operations(document()):
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            content = response["content"]
            assert content["application/json"]["schema"] == {"$ref": ERROR_REF}, (method, path, status)
            # The unsubscribe pages may answer a browser with HTML instead.
            assert set(content) <= {"application/json", "text/html"}, (method, path, status)
            assert "text/html" not in content or path.startswith("/unsubscribe/"), (method, path, status)
            checked += 1
    error = document()["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["message"] and {"message", "field", "errors", "contact_id"} == set(error["properties"])
    assert checked >= 2 * len(list(operations(document())))  # a 500 and at least one 4xx each, or more


def test_no_powertools_placeholders_are_left():
    doc = document()
    text = json.dumps(doc)
    assert "Response Validation Error" not in text and "HTTPValidationError" not in text
    for method, path, op in operations(doc):
        assert op["responses"]["500"]["content"]["application/json"]["schema"] == {"$ref": ERROR_REF}
        takes_input = "requestBody" in op or any(p["in"] == "query" for p in op.get("parameters", []))
        assert ("422" in op["responses"]) == takes_input, (method, path)


def test_204_answers_declare_no_body():
    deletes = [op for method, _, op in operations(document()) if method == "delete"]
    assert len(deletes) == 6
    for op in deletes:
        assert "content" not in op["responses"]["204"]


def test_formats_are_described():
    schemas = document()["components"]["schemas"]
    assert schemas["StepIn"]["properties"]["action_type"]["enum"] == sorted(actions.names())
    for model, field in (("ContactIn", "email"), ("ContactPatch", "email"), ("SuppressionIn", "email"),
                         ("DealIn", "owner_email"), ("DealPatch", "owner_email")):
        email = schemas[model]["properties"][field]
        pattern = email["pattern"] if "pattern" in email else next(s["pattern"] for s in email["anyOf"] if "pattern" in s)
        assert re.fullmatch(pattern, "ada.lovelace+drip@example.co.uk")
        assert not re.fullmatch(pattern, "ada..lovelace@example.com")
    assert schemas["PipelineIn"]["properties"]["model_type"]["enum"] == ["contact", "deal"]
    tokens = [p for _, _, op in operations(document()) for p in op.get("parameters", []) if p["name"] == "next_token"]
    assert len(tokens) == 8  # contacts, pipelines, runs, tasks, suppressions, deals, a contact's messages, /stats/pipelines
    for parameter in tokens:
        (string,) = [s for s in parameter["schema"]["anyOf"] if s.get("type") == "string"]
        assert string["pattern"] == r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"


def test_links_lead_from_created_resources_to_the_operations_on_them():
    doc = document()
    by_id = {op["operationId"]: (method, path, op) for method, path, op in operations(doc)}
    taking_ids = {op_id for op_id, (_, path, op) in by_id.items() if "{" in path and not path.startswith("/unsubscribe/")}
    linked = set()
    for _, _, op in operations(doc):
        for response in op["responses"].values():
            for link in response.get("links", {}).values():
                target = by_id[link["operationId"]]
                names = {p["name"] for p in target[2].get("parameters", [])}
                assert set(link["parameters"]) <= names, link
                linked.add(link["operationId"])
    assert taking_ids <= linked


def test_authenticated_routes_declare_the_bearer_scheme():
    doc = document()
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for method, path, op in operations(doc):
        if path == "/health" or path.startswith("/unsubscribe/"):
            assert "security" not in op
        else:
            assert op["security"] == [{"bearerAuth": []}], (method, path)


def test_contract_fields_are_in_the_schemas():
    schemas = document()["components"]["schemas"]
    assert set(schemas["PipelineOut"]["properties"]) == {
        "pipeline_id", "name", "model_type", "version", "automatic", "status", "steps", "exit_when", "created_at",
        "updated_at"}
    assert set(schemas["ContactOut"]["properties"]) == {
        "contact_id", "email", "first_name", "last_name", "timezone", "attributes", "pipeline_ids", "unsubscribed",
        "created_at", "updated_at"}
    assert {"run_id", "pipeline_id", "pipeline_version", "pipelineable_type", "pipelineable_id", "source", "status",
            "current_step", "next_step_number", "next_step_at", "created_at", "updated_at", "completed_at",
            "exit_match", "history"} <= set(schemas["RunOut"]["properties"])
    assert "exited" in schemas["RunCounts"]["properties"] and "conversion_rate" in schemas["StatsOut"]["properties"]
    assert "exit_when" in schemas["PipelineIn"]["properties"]
    assert "from SES's events" in schemas["StatsOut"]["properties"]["emails"]["description"]
