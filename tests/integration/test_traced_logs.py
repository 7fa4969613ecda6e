"""Issue 13, Build 4: "why didn't Ada get her email?" answered from the logs alone.

One contact is followed from `POST /contacts` to its emails and their SES events using
nothing but the JSON lines the functions write: the request line names the contact and
its correlation id (the API Gateway request id); the enrollment lines carry that id and
name the runs; each step's lines carry it too and name the SES message; the SES event's
line names the message, the run and the contact. Another contact written by a later
request never borrows the first one's correlation id, and 404s and 422s leave a line.
"""
import io
import json
import logging

import pytest

from dripline import fanout
from dripline.observability import logger as dripline_logger
from tests.api.conftest import Api, contact_body, deliver
from tests.support import FakeContext, StreamReader, load_event

STEPS = [
    {"step_number": 1, "action_type": "send_email", "delay_seconds": 0, "message": "Hi", "data": {"subject": "Welcome"}},
    {"step_number": 2, "action_type": "send_email", "delay_seconds": 3600, "message": "Again", "data": {"subject": "Day two"}},
]


@pytest.fixture
def lines():
    """Every JSON line our logger writes, parsed (a callable: the lines so far)."""
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.setFormatter(dripline_logger.registered_formatter)
    std_logger = logging.getLogger(dripline_logger.name)
    std_logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in written.getvalue().splitlines() if line.startswith("{")]
    std_logger.removeHandler(handler)


class _Requests(Api):
    """The API with a distinct API Gateway request id per request, as in Lambda."""

    def call(self, method, path, body=None, *, request_id="req-unnamed", **kwargs):
        event = self.event(method, path, body, **kwargs)
        event["requestContext"]["requestId"] = request_id
        return self.send(event)


def _tick(clock):
    from functions.processor import app as processor_app

    processor_app.lambda_handler(load_event("processor_scheduled.json"), FakeContext())
    clock.advance(60)


def test_one_contact_is_followed_from_its_request_to_its_emails_through_the_logs(aws, frozen_clock, lines):
    from functions.ses_events import app as ses_events_app

    # given: an automatic pipeline of two emails, and two contacts created by two requests
    api, stream = _Requests(), StreamReader(aws.contacts_stream_arn)
    fanout.shared.cache_clear()  # a cold start: this test's settings and clients
    assert api.post("/pipelines", {"name": "Welcome", "automatic": True, "steps": STEPS}, request_id="req-pipeline").status == 201
    assert api.post("/contacts", contact_body(email="ada@example.com", first_name="Ada"), request_id="req-ada").status == 201
    assert api.post("/contacts", contact_body(email="bob@example.com", first_name="Bob"), request_id="req-bob").status == 201
    assert api.get("/contacts/c_missing", request_id="req-404").status == 404
    assert api.post("/contacts", {"email": "not an address"}, request_id="req-422").status == 422
    # when: enrollment reads both records in one batch, the processor runs both steps,
    deliver(stream)
    _tick(frozen_clock)
    frozen_clock.advance(3600)
    _tick(frozen_clock)
    # and SES reports a delivery for each email (the events name only what SES knows)
    for line in [x for x in lines() if x["message"] == "step finished" and x.get("ses_message_id")]:
        event = json.dumps(load_event("ses_delivery.json"))
        for placeholder, value in (("MESSAGE_ID", line["ses_message_id"]), ("RUN_ID", line["run_id"]), ("PIPELINE_ID", line["pipeline_id"])):
            event = event.replace(placeholder, value)
        event = json.loads(event)
        event["id"] = f"ses-event-{line['ses_message_id']}"
        event["detail"]["mail"]["tags"]["step"] = [str(line["step"])]
        ses_events_app.lambda_handler(event, FakeContext())

    # then, from the lines alone: the request that created Ada names her contact id
    log = lines()
    (created,) = [x for x in log if x["message"] == "request" and x["correlation_id"] == "req-ada"]
    assert (created["route"], created["status"], created["team_id"]) == ("POST /contacts", 201, "acme")
    assert created["latency_ms"] >= 0
    contact_id = created["contact_id"]
    about_ada = [x for x in log if x.get("contact_id") == contact_id]

    # her stream record's enrollment carries her request's id and names her run
    (enrolled,) = [x for x in about_ada if x["message"] == "enrollment record processed"]
    assert enrolled["correlation_id"] == "req-ada" and enrolled["event"] == "INSERT"
    (run_id,) = enrolled["run_ids"]
    (run_line,) = [x for x in about_ada if x["message"] == "run enrolled"]
    assert run_line["run_id"] == run_id and run_line["correlation_id"] == "req-ada"

    # each step of her run carries the same id, and names the SES message it sent
    steps = sorted((x for x in about_ada if x["message"] == "step finished"), key=lambda x: x["step"])
    assert [(s["step"], s["outcome"], s["run_id"], s["correlation_id"]) for s in steps] == [
        (1, "succeeded", run_id, "req-ada"), (2, "succeeded", run_id, "req-ada")]
    message_ids = [s["ses_message_id"] for s in steps]
    assert all(message_ids) and len(set(message_ids)) == 2

    # and SES's delivery of each message is on a line that names message, run and contact
    delivered = [x for x in log if x["message"] == "email event" and x.get("ses_message_id") in message_ids]
    assert sorted(x["ses_message_id"] for x in delivered) == sorted(message_ids)
    assert all(x["run_id"] == run_id and x["contact_id"] == contact_id and x["outcome"] == "counted" for x in delivered)
    assert sorted(x["step"] for x in delivered) == [1, 2]

    # every line about Ada names her team and pipeline; only SES events have another cause
    pipeline_id = steps[0]["pipeline_id"]
    for x in about_ada:
        assert x["team_id"] == "acme" and x.get("pipeline_id", pipeline_id) == pipeline_id, x
        assert x["correlation_id"] == ("ses-event-" + x["ses_message_id"] if x["message"] == "email event" else "req-ada"), x
    # Bob's lines carry Bob's request id, though his record came in the same batch
    (bob,) = [x["contact_id"] for x in log if x["message"] == "request" and x["correlation_id"] == "req-bob"]
    about_bob = [x for x in log if x.get("contact_id") == bob]
    assert about_bob and all(x["correlation_id"] == "req-bob" for x in about_bob if x["message"] != "email event")

    # the rejected requests left a line each: route, status, team, latency
    (missing,) = [x for x in log if x["message"] == "request" and x["correlation_id"] == "req-404"]
    assert (missing["route"], missing["status"], missing["team_id"]) == ("GET /contacts/{contact_id}", 404, "acme")
    (invalid,) = [x for x in log if x["message"] == "request" and x["correlation_id"] == "req-422"]
    assert (invalid["route"], invalid["status"], invalid["team_id"]) == ("POST /contacts", 422, "acme")
    assert "ada@example.com" not in json.dumps(log) and "Ada" not in json.dumps(log)
