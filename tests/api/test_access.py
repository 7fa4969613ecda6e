"""Identity on every route: no token is 401, unusable claims are 401, unknown ids are 404
(another team's ids: test_tenant_isolation.py, driven by the served OpenAPI document)."""
import pytest

from tests.api.conftest import OTHER, TASK_FIRST, contact_body
from tests.support import load_event

ROUTES = [
    ("POST", "/pipelines"),
    ("GET", "/pipelines"),
    ("GET", "/pipelines/{pipeline_id}"),
    ("PUT", "/pipelines/{pipeline_id}"),
    ("DELETE", "/pipelines/{pipeline_id}"),
    ("GET", "/pipelines/{pipeline_id}/stats"),
    ("GET", "/automatic-pipelines"),
    ("PUT", "/automatic-pipelines/{pipeline_id}"),
    ("DELETE", "/automatic-pipelines/{pipeline_id}"),
    ("POST", "/contacts"),
    ("GET", "/contacts"),
    ("GET", "/contacts/{contact_id}"),
    ("PATCH", "/contacts/{contact_id}"),
    ("DELETE", "/contacts/{contact_id}"),
    ("GET", "/contacts/{contact_id}/runs"),
    ("POST", "/contacts/{contact_id}/runs"),
    ("DELETE", "/contacts/{contact_id}/runs/{run_id}"),
    ("POST", "/deals"),
    ("GET", "/deals"),
    ("GET", "/deals/{deal_id}"),
    ("PATCH", "/deals/{deal_id}"),
    ("DELETE", "/deals/{deal_id}"),
    ("GET", "/deals/{deal_id}/runs"),
    ("GET", "/runs"),
    ("GET", "/runs/{run_id}"),
    ("GET", "/tasks"),
    ("PATCH", "/tasks/{task_id}"),
]
ID_ROUTES = [r for r in ROUTES if "{" in r[1]]

def body_for(method, path, world):
    if path == "/pipelines" or (method == "PUT" and path.startswith("/pipelines/")):
        return {"name": "X", "steps": [TASK_FIRST]}
    if path == "/contacts":
        return contact_body()
    if method == "PATCH" and path.startswith("/contacts/"):
        return {"first_name": "Mallory"}
    if path == "/deals":
        return {"name": "Mallory's deal"}
    if method == "PATCH" and path.startswith("/deals/"):
        return {"stage": "lost"}
    if method == "POST" and path.endswith("/runs"):
        return {"pipeline_id": world["pipeline_id"]}
    if path.startswith("/tasks/"):
        return {"status": "done"}
    return None


def test_every_route_without_a_token_is_401_and_changes_nothing(api, world, snapshot):
    before = snapshot()
    answers = {}
    for method, template in ROUTES:
        reply = api.call(method, template.format(**world), body_for(method, template, world), team=None)
        answers[f"{method} {template}"] = (reply.status, reply.body)

    assert answers == {route: (401, {"message": "Unauthorized"}) for route in answers}
    assert len(answers) == len(ROUTES)
    assert snapshot() == before


@pytest.mark.parametrize("team", ["", "   ", "acme#contact", "a\x1fb"])
def test_an_unusable_team_claim_is_401(api, team):
    assert api.get("/pipelines", team=team).status == 401


def test_unknown_ids_answer_404(api, world):
    unknown = {k: "0" * 32 for k in world}
    answers = {}
    for method, template in ID_ROUTES:
        body = body_for(method, template, world)
        reply = api.call(method, template.format(**unknown), body)
        answers[f"{method} {template}"] = reply.status

    assert answers == {route: 404 for route in answers}


def test_another_teams_pipeline_cannot_be_assigned(api, world, snapshot):
    theirs = api.post("/contacts", contact_body(), team=OTHER).body
    before = snapshot()

    reply = api.post(f"/contacts/{theirs['contact_id']}/runs", {"pipeline_id": world["pipeline_id"]}, team=OTHER)
    created = api.post("/contacts", contact_body(pipeline_ids=[world["pipeline_id"]]), team=OTHER)

    assert (reply.status, reply.body["field"]) == (422, "pipeline_id")
    assert (created.status, created.body["field"]) == (422, "pipeline_ids")
    assert snapshot() == before


def test_the_team_is_never_read_from_the_body(api, world):
    reply = api.post("/contacts", contact_body(team_id=OTHER))

    assert reply.status == 422 and reply.body["field"] == "team_id"
    assert api.get("/contacts", team=OTHER).body["items"] == []


def test_public_routes_need_no_token(api):
    health = api.send(load_event("api_health.json"))
    assert (health.status, health.body) == (200, {"status": "ok"})
    assert api.get("/openapi.json", team=None).body["info"]["title"] == "Dripline"
    docs = api.get("/docs", team=None)
    assert docs.status == 200 and "swagger" in docs.body.lower()


def test_the_sample_event_without_a_token_is_401(api):
    reply = api.send(load_event("api_no_token.json"))
    assert (reply.status, reply.body) == (401, {"message": "Unauthorized"})
    assert reply.headers.get("WWW-Authenticate") == "Bearer"
