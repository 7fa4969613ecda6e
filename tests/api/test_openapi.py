"""The served OpenAPI document comes from the code, and docs/openapi.json is a copy of it."""
import json
from pathlib import Path

from dripline.api.app import openapi_json

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"

API_MD_ROUTES = {
    ("get", "/health"),
    ("post", "/pipelines"), ("get", "/pipelines"), ("get", "/pipelines/{pipeline_id}"),
    ("put", "/pipelines/{pipeline_id}"), ("delete", "/pipelines/{pipeline_id}"), ("get", "/pipelines/{pipeline_id}/stats"),
    ("get", "/automatic-pipelines"), ("put", "/automatic-pipelines/{pipeline_id}"), ("delete", "/automatic-pipelines/{pipeline_id}"),
    ("post", "/contacts"), ("get", "/contacts/{contact_id}"), ("patch", "/contacts/{contact_id}"),
    ("delete", "/contacts/{contact_id}"), ("get", "/contacts/{contact_id}/runs"), ("post", "/contacts/{contact_id}/runs"),
    ("delete", "/contacts/{contact_id}/runs/{run_id}"),
    ("get", "/runs/{run_id}"), ("get", "/runs"),
    ("get", "/tasks"), ("patch", "/tasks/{task_id}"),
    ("get", "/unsubscribe/{token}"), ("post", "/unsubscribe/{token}"),
}


def test_committed_document_matches_the_code():
    # Regenerate with: PYTHONPATH=layers/common python -m dripline.api.openapi > docs/openapi.json
    assert COMMITTED.read_text() == openapi_json(), "docs/openapi.json is stale: regenerate it"


def test_served_document_is_the_committed_one(api):
    reply = api.get("/openapi.json", team=None)
    assert reply.status == 200 and reply.body == json.loads(COMMITTED.read_text())


def test_document_has_every_route_of_api_md():
    document = json.loads(openapi_json())
    routes = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert API_MD_ROUTES <= routes
    # Beyond API.md: the contact listing, the webhook secret (issue 11) and the counters' recount
    # (README, "Stats counters").
    assert routes - API_MD_ROUTES == {
        ("get", "/contacts"), ("get", "/webhook-secret"), ("post", "/webhook-secret/rotate"),
        ("post", "/pipelines/{pipeline_id}/stats/reconcile"),
    }


def test_authenticated_routes_declare_the_bearer_scheme():
    document = json.loads(openapi_json())
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            if path == "/health" or path.startswith("/unsubscribe/"):
                assert "security" not in op
            else:
                assert op["security"] == [{"bearerAuth": []}], (method, path)


def test_contract_fields_are_in_the_schemas():
    schemas = json.loads(openapi_json())["components"]["schemas"]
    assert set(schemas["PipelineOut"]["properties"]) == {
        "pipeline_id", "name", "model_type", "version", "automatic", "status", "steps", "created_at", "updated_at"}
    assert set(schemas["ContactOut"]["properties"]) == {
        "contact_id", "email", "first_name", "last_name", "timezone", "attributes", "pipeline_ids", "unsubscribed",
        "created_at", "updated_at"}
    assert {"run_id", "pipeline_id", "pipeline_version", "pipelineable_type", "pipelineable_id", "source", "status",
            "current_step", "next_step_number", "next_step_at", "created_at", "updated_at", "completed_at",
            "history"} <= set(schemas["RunOut"]["properties"])
    assert "from SES's events" in schemas["StatsOut"]["properties"]["emails"]["description"]
