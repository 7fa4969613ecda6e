"""Drive the API handler with API Gateway HTTP API (payload 2.0) events carrying claims."""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest

from dripline.processor import Processor
from functions.api import app as api_app
from tests.support import FakeContext, StreamReader, load_event

TEAM = "acme"
OTHER = "globex"


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def message(self) -> str:
        return self.body.get("message", "") if isinstance(self.body, dict) else ""


class Api:
    """Builds events from the committed samples (events/api_*.json) and calls the handler."""

    def __init__(self) -> None:
        self.base = load_event("api_create_contact.json")

    def event(self, method: str, path: str, body: Any = None, *, query: dict | None = None, team: str | None = TEAM,
              raw_body: str | None = None) -> dict[str, Any]:
        event = copy.deepcopy(self.base)
        event["rawPath"] = path
        event["requestContext"]["http"]["method"] = method
        event["requestContext"]["http"]["path"] = path
        event["pathParameters"] = {"proxy": path.lstrip("/")}
        event["rawQueryString"] = urlencode(query or {})
        event.pop("queryStringParameters", None)
        if query:
            event["queryStringParameters"] = {k: str(v) for k, v in query.items()}
        event.pop("body", None)
        if raw_body is not None:
            event["body"] = raw_body
        elif body is not None:
            event["body"] = json.dumps(body)
        if team is None:
            event["requestContext"].pop("authorizer", None)
            event["headers"].pop("authorization", None)
        else:
            event["requestContext"]["authorizer"]["jwt"]["claims"]["custom:team_id"] = team
        return event

    def send(self, event: dict[str, Any]) -> Reply:
        result = api_app.lambda_handler(event, FakeContext())
        raw = result.get("body")
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        return Reply(result["statusCode"], body, result.get("headers") or {})

    def call(self, method: str, path: str, body: Any = None, **kwargs) -> Reply:
        return self.send(self.event(method, path, body, **kwargs))

    def get(self, path: str, **kwargs) -> Reply:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs) -> Reply:
        return self.call("POST", path, body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs) -> Reply:
        return self.call("PUT", path, body, **kwargs)

    def patch(self, path: str, body: Any = None, **kwargs) -> Reply:
        return self.call("PATCH", path, body, **kwargs)

    def delete(self, path: str, **kwargs) -> Reply:
        return self.call("DELETE", path, **kwargs)


@pytest.fixture
def api(aws) -> Api:
    return Api()


@pytest.fixture
def stream(aws) -> StreamReader:
    return StreamReader(aws.contacts_stream_arn)


def deliver(stream: StreamReader) -> dict:
    """Hand every new record of a stream (contacts or deals) to the enrollment handler, as Lambda would."""
    from functions.enrollment import app as enrollment_app

    records = stream.read()
    result = enrollment_app.lambda_handler({"Records": records}, FakeContext())
    assert result == {"batchItemFailures": []}
    return result


def table_items(settings, name: str) -> list[dict]:
    """Every item of a table (to assert that a rejected request wrote nothing)."""
    table = boto3.resource("dynamodb", region_name=settings.region).Table(getattr(settings, name))
    return sorted(table.scan()["Items"], key=lambda i: json.dumps(i, sort_keys=True, default=str))


@pytest.fixture
def snapshot(aws, settings):
    """snapshot() -> the contents of every table, for before/after comparisons."""
    def take() -> dict[str, list[dict]]:
        return {name: table_items(settings, name) for name in ("contacts_table", "deals_table", "pipelines_table", "runs_table", "tasks_table")}
    return take


TASK_FIRST = {"step_number": 1, "action_type": "create_task", "delay_seconds": 0,
              "message": "Call {{ contact.email }}", "data": {"title": "Intro call"}}
EMAIL_LATER = {"step_number": 2, "action_type": "send_email", "delay_seconds": 3600,
               "message": "Hi", "data": {"subject": "Hello"}}
DEAL_EMAIL_LATER = {"step_number": 1, "action_type": "send_email", "delay_seconds": 3600,
                    "message": "{{ deal.name }}", "data": {"subject": "Deal", "to": "owner"}}


@pytest.fixture
def world(api, stream, settings, aws):
    """Team acme: an automatic pipeline, a contact enrolled in it, the task its first step made; an
    automatic deal pipeline and a deal (of that contact) enrolled in it."""
    pipeline = api.post("/pipelines", {"name": "Onboarding", "automatic": True, "steps": [TASK_FIRST, EMAIL_LATER]}).body
    contact = api.post("/contacts", contact_body()).body
    deliver(stream)
    Processor(settings).tick()
    (run,) = api.get(f"/contacts/{contact['contact_id']}/runs").body["items"]
    (task,) = api.get("/tasks").body["items"]
    # A deal of the team with one of its contacts, enrolled in an automatic deal pipeline.
    deal_pipeline = api.post("/pipelines", {"name": "Deal follow-up", "model_type": "deal", "automatic": True,
                                            "steps": [DEAL_EMAIL_LATER]}).body
    deal = api.post("/deals", {"name": "Acme renewal", "value": 12000, "owner_email": "owner@example.com",
                               "contact_ids": [contact["contact_id"]]}).body
    deliver(StreamReader(aws.deals_stream_arn))
    return {"pipeline_id": pipeline["pipeline_id"], "contact_id": contact["contact_id"], "run_id": run["run_id"],
            "task_id": task["task_id"], "pipeline": pipeline, "deal_id": deal["deal_id"],
            "deal_pipeline_id": deal_pipeline["pipeline_id"]}


def pipeline_body(**overrides) -> dict[str, Any]:
    body = copy.deepcopy(load_event("api_create_pipeline.json"))
    data = json.loads(body["body"])
    data.update(overrides)
    return data


def contact_body(**overrides) -> dict[str, Any]:
    data = json.loads(load_event("api_create_contact.json")["body"])
    data.update(overrides)
    return data
