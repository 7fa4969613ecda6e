"""Deals, the second model type, end to end through the API handler: CRUD under /deals, automatic
deal pipelines enrolling new deals from the deals table's stream, email steps to the deal's
owner or its contacts, tasks about a deal, and the errors each of them answers."""
from __future__ import annotations

import email
import email.policy
from datetime import timedelta

import pytest

from dripline.processor import Processor
from dripline.storage import runs
from tests.api.conftest import OTHER, contact_body, deliver
from functions.enrollment import app as enrollment_app
from tests.support import FakeContext, StreamReader, run_ticks_until

OWNER_EMAIL = {"step_number": 1, "action_type": "send_email", "delay_seconds": 0,
               "message": "{{ deal.name }} is at {{ deal.stage }} ({{ deal.value }})",
               "data": {"subject": "Deal {{ deal.name }}", "to": "owner"}}
CONTACTS_EMAIL = {"step_number": 2, "action_type": "send_email", "delay_seconds": 3600,
                  "message": "Hi {{ contact.first_name }}, about {{ deal.name }}",
                  "data": {"subject": "Your proposal", "to": "contacts"}}
DEAL_TASK = {"step_number": 3, "action_type": "create_task", "delay_seconds": 86400,
             "message": "Follow up on {{ deal.name }} with {{ deal.owner_email }}",
             "data": {"title": "Chase {{ deal.name }}", "assignee": "sales"}}


def sent_emails():
    from moto.ses.models import ses_backends

    backend = ses_backends["123456789012"]["us-east-1"]
    return [email.message_from_string(m.raw_data, policy=email.policy.default) for m in backend.sent_messages]


@pytest.fixture
def deals_stream(aws) -> StreamReader:
    return StreamReader(aws.deals_stream_arn)


def deal_pipeline(api, steps, **extra) -> dict:
    reply = api.post("/pipelines", {"name": "Deal follow-up", "model_type": "deal", "automatic": True, "steps": steps, **extra})
    assert reply.status == 201, reply.body
    return reply.body


def new_contact(api, email_address: str, first_name: str) -> str:
    reply = api.post("/contacts", contact_body(email=email_address, first_name=first_name, pipeline_ids=[]))
    assert reply.status == 201, reply.body
    return reply.body["contact_id"]


def new_deal(api, **fields) -> dict:
    body = {"name": "Acme renewal", "value": 12000, "stage": "proposal", "owner_email": "owner@example.com", **fields}
    reply = api.post("/deals", body)
    assert reply.status == 201, reply.body
    return reply.body


# --- enrollment -------------------------------------------------------------------------------------


def test_a_new_deal_is_enrolled_in_the_automatic_deal_pipelines_only(api, stream, deals_stream, settings):
    # given an automatic deal pipeline and an automatic contact pipeline
    deals_pipeline = deal_pipeline(api, [OWNER_EMAIL])
    contacts_pipeline = api.post("/pipelines", {"name": "Welcome", "automatic": True, "steps": [
        {"step_number": 1, "action_type": "create_task", "delay_seconds": 0, "message": "Call", "data": {}}]}).body
    # when a deal and a contact are created and both streams are delivered (twice: redelivery)
    deal = new_deal(api)
    contact_id = new_contact(api, "ada@example.com", "Ada")
    records = deals_stream.read()
    for _ in range(2):
        assert enrollment_app.lambda_handler({"Records": records}, FakeContext()) == {"batchItemFailures": []}
    deliver(stream)
    # then the deal has one run, of the deal pipeline; the contact one of the contact pipeline
    (run,) = api.get(f"/deals/{deal['deal_id']}/runs").body["items"]
    assert (run["pipeline_id"], run["pipelineable_type"], run["pipelineable_id"], run["source"], run["status"]) == (
        deals_pipeline["pipeline_id"], "deal", deal["deal_id"], "automatic", "pending")
    (contact_run,) = api.get(f"/contacts/{contact_id}/runs").body["items"]
    assert contact_run["pipeline_id"] == contacts_pipeline["pipeline_id"]
    # and runs, stats and listings name the deal generically
    assert api.get(f"/runs/{run['run_id']}").body["pipelineable_type"] == "deal"
    assert [r["run_id"] for r in api.get("/runs", query={"pipeline_id": deals_pipeline["pipeline_id"]}).body["items"]] == [run["run_id"]]
    assert api.get(f"/pipelines/{deals_pipeline['pipeline_id']}/stats").body["runs"]["pending"] == 1
    automatic = {a["pipeline_id"]: a["model_type"] for a in api.get("/automatic-pipelines").body["items"]}
    assert automatic == {deals_pipeline["pipeline_id"]: "deal", contacts_pipeline["pipeline_id"]: "contact"}


def test_deleting_a_deal_cancels_its_runs(api, deals_stream, settings):
    deal_pipeline(api, [{**OWNER_EMAIL, "delay_seconds": 3600}])
    deal = new_deal(api)
    deliver(deals_stream)

    assert api.delete(f"/deals/{deal['deal_id']}").status == 204
    deliver(deals_stream)

    (run,) = runs.runs_of("acme", "deal", deal["deal_id"])
    assert (run.status, run.last_error, run.due_shard) == ("cancelled", "deal_deleted", None)
    assert api.get(f"/deals/{deal['deal_id']}").status == 404


# --- steps: email to the owner, to the contacts, tasks ----------------------------------------------


def test_a_deal_pipeline_emails_the_owner_then_each_contact_then_creates_a_task(api, deals_stream, settings, frozen_clock):
    # given a deal with two contacts, one of whom has unsubscribed, and a third contact deleted since
    ada = new_contact(api, "ada@example.com", "Ada")
    bob = new_contact(api, "bob@example.com", "Bob")
    eve = new_contact(api, "eve@example.com", "Eve")
    assert api.patch(f"/contacts/{bob}", {"unsubscribed": True}).status == 200
    pipeline = deal_pipeline(api, [OWNER_EMAIL, CONTACTS_EMAIL, DEAL_TASK])
    deal = new_deal(api, contact_ids=[ada, bob, eve])
    assert api.delete(f"/contacts/{eve}").status == 204
    deliver(deals_stream)

    # when the drip runs for two days
    run_ticks_until(Processor(settings), frozen_clock, frozen_clock.now() + timedelta(days=2))

    # then the owner got the deal's email, with no unsubscribe link (it is a user of the team, not a contact)
    messages = sent_emails()
    owner = [m for m in messages if m["To"] == "owner@example.com"]
    (first,) = owner
    assert first["Subject"] == "Deal Acme renewal"
    assert first.get_body(("plain",)).get_content().strip() == "Acme renewal is at proposal (12000)"
    assert first["List-Unsubscribe"] is None
    # each subscribed contact got its own email, with its own unsubscribe link; Bob (unsubscribed) and Eve (deleted) none
    to_contacts = [m for m in messages if m["Subject"] == "Your proposal"]
    assert [m["To"] for m in to_contacts] == ["ada@example.com"]
    assert to_contacts[0].get_body(("plain",)).get_content().startswith("Hi Ada, about Acme renewal")
    assert to_contacts[0]["List-Unsubscribe"].startswith("<http")
    # and the task is about the deal
    (task,) = api.get("/tasks", query={"deal_id": deal["deal_id"]}).body["items"]
    assert (task["title"], task["description"], task["assignee"]) == (
        "Chase Acme renewal", "Follow up on Acme renewal with owner@example.com", "sales")
    assert (task["pipelineable_type"], task["pipelineable_id"], task["contact_id"]) == ("deal", deal["deal_id"], None)
    assert api.get("/tasks", query={"contact_id": ada}).body["items"] == []
    (run,) = api.get(f"/deals/{deal['deal_id']}/runs").body["items"]
    assert run["status"] == "completed"
    assert [(h["step_number"], h["outcome"]) for h in run["history"]] == [(1, "succeeded"), (2, "succeeded"), (3, "succeeded")]
    stats = api.get(f"/pipelines/{pipeline['pipeline_id']}/stats").body
    assert stats["runs"]["completed"] == 1 and stats["emails"]["sent"] == 2


def test_an_owner_email_to_a_deal_without_owner_is_skipped_and_the_run_goes_on(api, deals_stream, settings, frozen_clock):
    deal_pipeline(api, [OWNER_EMAIL, {**DEAL_TASK, "delay_seconds": 60}])
    deal = new_deal(api, owner_email=None)
    deliver(deals_stream)

    run_ticks_until(Processor(settings), frozen_clock, frozen_clock.now() + timedelta(minutes=5))

    (run,) = api.get(f"/deals/{deal['deal_id']}/runs").body["items"]
    assert [(h["step_number"], h["outcome"]) for h in run["history"]] == [(1, "skipped"), (3, "succeeded")]
    assert run["status"] == "completed" and sent_emails() == []


def test_a_deal_change_is_seen_by_the_next_step(api, deals_stream, settings, frozen_clock):
    deal_pipeline(api, [{**OWNER_EMAIL, "delay_seconds": 3600}])
    deal = new_deal(api)
    deliver(deals_stream)
    assert api.patch(f"/deals/{deal['deal_id']}", {"stage": "won", "owner_email": "closer@example.com"}).status == 200
    deliver(deals_stream)  # a MODIFY: no new run

    run_ticks_until(Processor(settings), frozen_clock, frozen_clock.now() + timedelta(hours=2))

    (message,) = sent_emails()
    assert message["To"] == "closer@example.com"
    assert message.get_body(("plain",)).get_content().strip() == "Acme renewal is at won (12000)"
    assert len(api.get(f"/deals/{deal['deal_id']}/runs").body["items"]) == 1


# --- CRUD -------------------------------------------------------------------------------------------


def test_deal_crud_round_trip(api):
    ada = new_contact(api, "ada@example.com", "Ada")
    deal = new_deal(api, contact_ids=[ada, ada], attributes={"source": "web"})
    assert deal["contact_ids"] == [ada]  # duplicates collapse
    assert api.get(f"/deals/{deal['deal_id']}").body == deal

    patched = api.patch(f"/deals/{deal['deal_id']}", {"value": 15000.5, "stage": None, "contact_ids": []}).body
    assert (patched["value"], patched["stage"], patched["contact_ids"], patched["name"]) == (15000.5, None, [], "Acme renewal")
    assert patched["updated_at"] > deal["updated_at"]

    page = api.get("/deals", query={"limit": 1}).body
    assert [d["deal_id"] for d in page["items"]] == [deal["deal_id"]]
    assert api.get("/deals", team=OTHER).body["items"] == []
    assert api.delete(f"/deals/{deal['deal_id']}").status == 204
    assert api.delete(f"/deals/{deal['deal_id']}").status == 404


@pytest.mark.parametrize("body, field", [
    ({}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x", "value": "12000"}, "value"),
    ({"name": "x", "value": True}, "value"),
    ({"name": "x", "owner_email": "not an email"}, "owner_email"),
    ({"name": "x", "contact_ids": ["no-such-contact"]}, "contact_ids"),
    ({"name": "x", "contact_ids": [f"c{i}" for i in range(51)]}, "contact_ids"),
    ({"name": "x", "team_id": "globex"}, "team_id"),
    ({"name": "x", "attributes": {f"k{i}": i for i in range(51)}}, "attributes"),
    ({"name": "x", "attributes": {"h": [{"": False}]}}, "attributes"),
])
def test_a_bad_deal_is_refused_and_nothing_is_written(api, snapshot, body, field):
    before = snapshot()
    reply = api.post("/deals", body)
    assert reply.status == 422, reply.body
    assert field in str(reply.body)
    assert snapshot() == before


def test_deal_errors_on_patch_get_and_delete(api, snapshot):
    deal = new_deal(api)
    other_teams_contact = api.post("/contacts", contact_body(), team=OTHER).body["contact_id"]
    before = snapshot()
    assert api.patch(f"/deals/{deal['deal_id']}", {"name": None}).status == 422
    assert api.patch(f"/deals/{deal['deal_id']}", {"attributes": {"h": {"": False}}}).status == 422
    assert api.patch(f"/deals/{deal['deal_id']}", {"contact_ids": [other_teams_contact]}).status == 422
    assert api.patch("/deals/nope", {"stage": "won"}).status == 404
    assert api.get("/deals/nope").status == 404
    assert api.get("/deals/nope/runs").status == 404
    assert api.delete("/deals/nope").status == 404
    assert api.get("/tasks", query={"deal_id": deal["deal_id"], "contact_id": "x"}).status == 422
    assert snapshot() == before


# --- pipelines of model_type deal: what a step may say ---------------------------------------------


@pytest.mark.parametrize("step, field", [
    ({**OWNER_EMAIL, "data": {"subject": "Hi"}}, "steps[0].data.to"),  # a deal's email must say whom it goes to
    ({**OWNER_EMAIL, "data": {"subject": "Hi", "to": "contact"}}, "steps[0].data.to"),
    ({**OWNER_EMAIL, "message": "Hi {{ contact.first_name }}"}, "steps[0].message"),  # the owner is no contact
    ({**OWNER_EMAIL, "data": {"subject": "{{ unsubscribe_url }}", "to": "owner"}}, "steps[0].data.subject"),
    ({**DEAL_TASK, "step_number": 1, "message": "Call {{ contact.email }}"}, "steps[0].message"),
])
def test_a_deal_pipeline_step_that_could_never_run_is_refused(api, snapshot, step, field):
    before = snapshot()
    reply = api.post("/pipelines", {"name": "Bad", "model_type": "deal", "steps": [step]})
    assert reply.status == 422, reply.body
    assert reply.body["field"] == field, reply.body
    assert snapshot() == before


def test_a_contact_pipeline_cannot_name_a_deal_nor_become_one(api):
    reply = api.post("/pipelines", {"name": "Bad", "steps": [{**DEAL_TASK, "step_number": 1}]})
    assert reply.status == 422 and reply.body["field"] == "steps[0].message"
    contact_pipeline = api.post("/pipelines", {"name": "Welcome", "steps": [
        {"step_number": 1, "action_type": "send_email", "delay_seconds": 0, "message": "Hi", "data": {"subject": "Hi", "to": "contact"}}]})
    assert contact_pipeline.status == 201
    reply = api.put(f"/pipelines/{contact_pipeline.body['pipeline_id']}", {"name": "Now deals", "model_type": "deal", "steps": [OWNER_EMAIL]})
    assert reply.status == 422 and reply.body["field"] == "model_type"


def test_suppressed_addresses_get_no_deal_email_whether_owner_or_contact(api, deals_stream, settings, frozen_clock):
    # given the owner's address and one of two contacts' addresses on the team's suppression list
    ada = new_contact(api, "ada@example.com", "Ada")
    bob = new_contact(api, "bob@example.com", "Bob")
    for address in ("Owner@Example.com", "bob@example.com"):
        assert api.post("/suppressions", {"email": address}).status == 201
    deal_pipeline(api, [OWNER_EMAIL, {**CONTACTS_EMAIL, "delay_seconds": 60}])
    deal = new_deal(api, contact_ids=[ada, bob])
    deliver(deals_stream)

    run_ticks_until(Processor(settings), frozen_clock, frozen_clock.now() + timedelta(minutes=5))

    # then the owner's step is skipped as suppressed, and only Ada gets the contacts' email
    (run,) = api.get(f"/deals/{deal['deal_id']}/runs").body["items"]
    assert [(h["step_number"], h["outcome"]) for h in run["history"]] == [(1, "skipped"), (2, "succeeded")]
    assert run["history"][0]["error"] == "suppressed"
    assert run["history"][1]["detail"]["sent"] == 1 and run["history"][1]["detail"]["skipped"] == 1
    assert [m["To"] for m in sent_emails()] == ["ada@example.com"]


# --- with main's run ids, strict templates and try-out routes -------------------------------------


def test_a_deal_run_is_read_by_its_id_and_its_owner_email_events_count_once(api, deals_stream, settings, frozen_clock):
    import json

    from functions.ses_events import app as ses_events_app
    from tests.support import load_event

    pipeline = deal_pipeline(api, [OWNER_EMAIL])
    deal = new_deal(api)
    deliver(deals_stream)
    run_ticks_until(Processor(settings), frozen_clock, frozen_clock.now() + timedelta(minutes=5))
    (listed,) = api.get(f"/deals/{deal['deal_id']}/runs").body["items"]

    # the run id names the deal (type letter `d`), so GET /runs/{id} reads it with one GetItem
    assert listed["run_id"].endswith("d" + deal["deal_id"])
    reply = api.get(f"/runs/{listed['run_id']}")
    assert reply.status == 200, reply.body
    assert (reply.body["pipelineable_type"], reply.body["pipelineable_id"], reply.body["status"]) == (
        "deal", deal["deal_id"], "completed")

    # and SES's delivery event of the owner's email (no contact) finds the run and counts once, redelivered
    message_id = listed["history"][0]["detail"]["message_id"]
    text = (json.dumps(load_event("ses_delivery.json")).replace("RUN_ID", listed["run_id"])
            .replace("MESSAGE_ID", message_id).replace("PIPELINE_ID", pipeline["pipeline_id"]).replace("ada@example.com", "owner@example.com"))
    outcomes = [ses_events_app.lambda_handler(json.loads(text), FakeContext()) for _ in range(2)]
    assert [o.get("outcome") for o in outcomes] == ["counted", "duplicate"], outcomes
    assert api.get(f"/pipelines/{pipeline['pipeline_id']}/stats").body["emails"]["delivered"] == 1


@pytest.mark.parametrize("step,known", [
    ({**OWNER_EMAIL, "message": "{{ deal.nmae }}"}, "deal has id, name, value, stage, owner_email, contact_ids, attributes"),
    ({**CONTACTS_EMAIL, "step_number": 1, "message": "Hi {{ contact.frist_name }}"},
     "contact has id, email, first_name, last_name, timezone, attributes"),
])
def test_a_misspelled_field_of_the_steps_record_is_a_422_listing_that_records_fields(api, step, known):
    reply = api.post("/pipelines", {"name": "Typo", "model_type": "deal", "steps": [step]})
    assert reply.status == 422 and reply.body["field"] == "steps[0].message", reply.body
    assert known in reply.body["message"], reply.body


def test_an_owner_email_may_not_name_a_contact(api):
    step = {**OWNER_EMAIL, "message": "Hi {{ contact.first_name }}"}
    reply = api.post("/pipelines", {"name": "Owner", "model_type": "deal", "steps": [step]})
    assert reply.status == 422 and reply.body["field"] == "steps[0].message", reply.body
    assert "unknown name 'contact'" in reply.body["message"]


def test_preview_simulate_and_test_send_of_a_deal_pipeline_are_a_clear_422(api):
    pipeline_id = deal_pipeline(api, [OWNER_EMAIL])["pipeline_id"]
    contact = {"contact": {"email": "sam@example.com"}}
    for path, body, what in ((f"/pipelines/{pipeline_id}/preview", contact, "preview"),
                             (f"/pipelines/{pipeline_id}/simulate", {**contact, "failures": []}, "simulation"),
                             (f"/pipelines/{pipeline_id}/steps/1/test", {"to": "ada@acme.example"}, "test send")):
        reply = api.post(path, body)
        assert reply.status == 422 and reply.body["field"] == "model_type", (path, reply.body)
        assert reply.body["message"] == f"model_type: {what} supports contact pipelines only; this is a deal pipeline"
