"""One team's full story through every function, for the security tests that watch it
(the logs it writes, the AWS calls each function makes): API -> stream -> enrollment ->
processor (email, task, a step whose template fails) -> preview, simulate, test send -> SES event ->
a deal of that contact through its own stream (email to its owner, to its contacts, a task) ->
unsubscribe -> suppression list -> delete.
"""
from __future__ import annotations

import contextlib
import email
import email.policy
import json
from collections.abc import Callable
from typing import Any, ContextManager

import boto3
from moto.ses.models import ses_backends

from dripline import fanout, runtime
from tests.api.conftest import Api, contact_body, deliver, pipeline_body
from tests.support import FakeContext, StreamReader, load_event

EMAIL = "zelda.quixote@pii.example.org"
FIRST_NAME = "Zelda"
LAST_NAME = "Quixote"
TEST_TO = "ada@acme.example"  # the caller's verified address in the sample events' token
STEPS = [
    {"step_number": 1, "action_type": "send_email", "delay_seconds": 0,
     "message": "Hi {{ contact.first_name }} {{ contact.last_name }} <{{ contact.email }}>", "data": {"subject": "Hello {{ contact.first_name }}"}},
    {"step_number": 2, "action_type": "create_task", "delay_seconds": 0,
     "message": "Call {{ contact.first_name }} at {{ contact.email }}", "data": {"title": "Call {{ contact.first_name }}"}},
    # A template error whose message (in Jinja's words) would quote the contact's address.
    {"step_number": 3, "action_type": "send_email", "delay_seconds": 0,
     "message": "{{ contact.attributes[contact.email] + 1 }}", "data": {"subject": "Oops {{ contact.last_name }}"}},
]

OWNER = "owner.quixote@pii.example.org"
DEAL_STEPS = [
    {"step_number": 1, "action_type": "send_email", "delay_seconds": 0,
     "message": "{{ deal.name }} for {{ deal.value }}", "data": {"subject": "Deal {{ deal.name }}", "to": "owner"}},
    {"step_number": 2, "action_type": "send_email", "delay_seconds": 0,
     "message": "Hi {{ contact.first_name }}", "data": {"subject": "About {{ deal.name }}", "to": "contacts"}},
    {"step_number": 3, "action_type": "create_task", "delay_seconds": 0,
     "message": "Call {{ deal.owner_email }}", "data": {"title": "Chase {{ deal.name }}"}},
]

Call = Callable[[str], ContextManager[Any]]


def _no_tracking(function: str) -> ContextManager[Any]:
    return contextlib.nullcontext()


def run(stream, clock, *, calling: Call = _no_tracking) -> dict[str, Any]:
    """Play the story; `calling(function)` wraps every invocation of that function."""
    from functions.processor import app as processor_app
    from functions.ses_events import app as ses_events_app

    api = _TrackedApi(calling)
    pipeline = api.post("/pipelines", {**pipeline_body(), "steps": STEPS})
    assert pipeline.status == 201, pipeline.body
    created = api.post("/contacts", contact_body(email=EMAIL, first_name=FIRST_NAME, last_name=LAST_NAME, pipeline_ids=[]))
    assert created.status == 201, created.body
    contact_id = created.body["contact_id"]
    with calling("enrollment"):
        deliver(stream)

    fanout.shared.cache_clear()  # a cold start: this test's settings and clients
    for _ in range(3):
        with calling("processor"):
            processor_app.lambda_handler(load_event("processor_scheduled.json"), FakeContext())
        clock.advance(60)

    runs_page = api.get(f"/contacts/{contact_id}/runs")
    (run_out,) = runs_page.body["items"]
    assert run_out["status"] == "failed", run_out
    assert api.get("/contacts", query={"limit": 1}).status == 200
    assert api.get("/runs", query={"limit": 1}).status == 200
    assert api.get("/tasks", query={"contact_id": contact_id}).status == 200
    assert api.get(f"/pipelines/{pipeline.body['pipeline_id']}/stats").status == 200

    (raw,) = [m for m in ses_backends["123456789012"]["us-east-1"].sent_messages]
    sent = email.message_from_string(raw.raw_data, policy=email.policy.default)
    # Trying the pipeline: the API renders and plans (preview, simulate), and sends one test email.
    pipeline_path = f"/pipelines/{pipeline.body['pipeline_id']}"
    assert api.post(f"{pipeline_path}/preview", {"contact_id": contact_id}).status == 200
    assert api.post(f"{pipeline_path}/simulate", {"contact_id": contact_id, "failures": [{"step_number": 1}]}).status == 200
    tested = api.post(f"{pipeline_path}/steps/1/test", {"to": TEST_TO, "contact": {"email": EMAIL}})
    assert tested.status == 200, tested.body
    message_id = run_out["history"][0]["detail"]["message_id"]
    bounce = json.dumps(load_event("ses_bounce_permanent.json")).replace("ada@example.com", EMAIL)
    bounce = bounce.replace("RUN_ID", run_out["run_id"]).replace("MESSAGE_ID", message_id)
    with calling("ses_events"):
        ses_events_app.lambda_handler(json.loads(bounce.replace("PIPELINE_ID", pipeline.body["pipeline_id"])), FakeContext())
    with calling("enrollment"):
        deliver(stream)

    _deal_story(api, clock, contact_id, calling)

    unsubscribe_path = "/" + str(sent["List-Unsubscribe"]).strip("<> ").split("/", 3)[3]
    assert api.get(unsubscribe_path, team=None).status == 200
    assert api.post(unsubscribe_path, team=None).status == 200
    # the address: found, a duplicate refused, its suppression listed, removed and added again
    assert api.get("/contacts", query={"email": EMAIL.upper()}).body["items"][0]["contact_id"] == contact_id
    assert api.post("/contacts", contact_body(email=EMAIL)).status == 409
    assert api.get("/suppressions").body["items"][0]["reason"] == "bounce"
    assert api.delete("/suppressions", query={"email": EMAIL}).status == 204
    assert api.post("/suppressions", {"email": EMAIL}).status == 201
    assert api.delete(f"/contacts/{contact_id}").status == 204
    with calling("enrollment"):
        deliver(stream)
    return {"contact_id": contact_id, "email": raw}


def _deal_story(api: Api, clock, contact_id: str, calling: Call) -> None:
    """A deal of the (now suppressed) contact: its owner is emailed, its contact skipped, a task made."""
    from functions.processor import app as processor_app

    deals_stream = StreamReader(_stream_arn(runtime.settings().deals_table))
    assert api.post("/pipelines", {"name": "Deal", "model_type": "deal", "automatic": True, "steps": DEAL_STEPS}).status == 201
    deal = api.post("/deals", {"name": "Windmills", "value": 3, "owner_email": OWNER, "contact_ids": [contact_id]})
    assert deal.status == 201, deal.body
    deal_id = deal.body["deal_id"]
    with calling("enrollment"):
        deliver(deals_stream)
    for _ in range(3):
        with calling("processor"):
            processor_app.lambda_handler(load_event("processor_scheduled.json"), FakeContext())
        clock.advance(60)
    (run_out,) = api.get(f"/deals/{deal_id}/runs").body["items"]
    assert [(h["step_number"], h["outcome"]) for h in run_out["history"]] == [(1, "succeeded"), (2, "skipped"), (3, "succeeded")]
    assert api.patch(f"/deals/{deal_id}", {"stage": "won"}).status == 200
    assert api.get("/deals", query={"limit": 1}).status == 200
    assert len(api.get("/tasks", query={"deal_id": deal_id}).body["items"]) == 1
    assert api.delete(f"/deals/{deal_id}").status == 204
    with calling("enrollment"):
        deliver(deals_stream)


def _stream_arn(table: str) -> str:
    return boto3.client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]


class _TrackedApi(Api):
    def __init__(self, calling: Call) -> None:
        super().__init__()
        self._calling = calling

    def send(self, event):
        with self._calling("api"):
            return super().send(event)
