"""Issue 10, items 1-2: one contact per address in a team, and a suppression list that
follows the address (not the contact): unsubscribe links, hard bounces, complaints and the
API add to it; only DELETE /suppressions takes an address off it."""
import json
from datetime import timedelta

import pytest
from moto.ses.models import ses_backends

from dripline.processor import Processor
from dripline.storage import contacts, runs
from dripline.storage.models import AddressClaim
from functions.ses_events import app as ses_events_app
from tests.api.conftest import TEAM, contact_body, deliver
from tests.api.test_unsubscribe import link_path
from tests.support import FakeContext, load_event

EMAIL_NOW = {"step_number": 1, "action_type": "send_email", "delay_seconds": 0, "message": "Hi", "data": {"subject": "Hello"}}
TASK_NOW = {"step_number": 2, "action_type": "create_task", "delay_seconds": 0, "message": "Call", "data": {"title": "Call"}}


def sent_count() -> int:
    return len(ses_backends["123456789012"]["us-east-1"].sent_messages)


def email_pipeline(api, automatic=True) -> str:
    body = {"name": "Welcome", "automatic": automatic, "steps": [EMAIL_NOW, TASK_NOW]}
    return api.post("/pipelines", body).body["pipeline_id"]


def run_all(settings, frozen_clock, ticks=3):
    for _ in range(ticks):
        Processor(settings).tick()
        frozen_clock.advance(1)


def history(contact_id):
    (run,) = runs.runs_of(TEAM, "contact", contact_id)
    return run, [(h.step_number, h.outcome.value if hasattr(h.outcome, "value") else h.outcome, h.error) for h in run.history]


# --- address identity --------------------------------------------------------------------------


def test_a_case_variant_of_an_address_is_409_naming_the_existing_contact(api):
    first = api.post("/contacts", contact_body(email="Ada@Example.com")).body

    reply = api.post("/contacts", contact_body(email="ada@EXAMPLE.com"))

    assert reply.status == 409
    assert reply.body["contact_id"] == first["contact_id"] and reply.body["field"] == "email"
    assert first["email"] == "Ada@Example.com"  # kept as typed
    assert [c["contact_id"] for c in api.get("/contacts").body["items"]] == [first["contact_id"]]


def test_get_contacts_by_email_finds_the_contact_in_any_case(api):
    ada = api.post("/contacts", contact_body(email="ada@example.com")).body
    api.post("/contacts", contact_body(email="bob@example.com"))

    assert api.get("/contacts", query={"email": " ADA@example.com "}).body == {"items": [ada], "next_token": None}
    assert api.get("/contacts", query={"email": "nobody@example.com"}).body == {"items": [], "next_token": None}
    assert api.get("/contacts", query={"email": "ada@example.com"}, team="globex").body["items"] == []


def test_upsert_creates_then_changes_the_contact_holding_the_address(api):
    created = api.post("/contacts", contact_body(email="ada@example.com", first_name="Ada"), query={"upsert": "true"})
    changed = api.post("/contacts", {"email": "ADA@example.com", "first_name": "Augusta"}, query={"upsert": "true"})

    assert created.status == 201 and changed.status == 200
    assert changed.body["contact_id"] == created.body["contact_id"]
    assert changed.body["first_name"] == "Augusta" and changed.body["last_name"] == "Lovelace"  # only given fields change
    assert len(api.get("/contacts").body["items"]) == 1


def test_a_deleted_contact_frees_its_address_and_an_email_change_moves_it(api):
    ada = api.post("/contacts", contact_body(email="ada@example.com")).body
    assert api.delete(f"/contacts/{ada['contact_id']}").status == 204
    again = api.post("/contacts", contact_body(email="ada@example.com"))
    assert again.status == 201 and again.body["contact_id"] != ada["contact_id"]

    moved = api.patch(f"/contacts/{again.body['contact_id']}", {"email": "augusta@example.com"})
    assert moved.status == 200
    assert api.post("/contacts", contact_body(email="ada@example.com")).status == 201  # freed
    taken = api.post("/contacts", contact_body(email="Augusta@example.com"))
    assert (taken.status, taken.body["contact_id"]) == (409, again.body["contact_id"])
    bob = api.post("/contacts", contact_body(email="bob@example.com")).body
    refused = api.patch(f"/contacts/{bob['contact_id']}", {"email": "AUGUSTA@example.com"})
    assert (refused.status, refused.body["contact_id"]) == (409, again.body["contact_id"])
    assert api.get(f"/contacts/{bob['contact_id']}").body["email"] == "bob@example.com"


def test_a_claim_left_by_a_crash_is_taken_over_once_it_is_old(api, frozen_clock):
    # a claim whose contact was never written (the process died between the two writes)
    from dripline import clock

    AddressClaim(TEAM, contacts.claim_sk("ada@example.com"), contact_id="gone", claimed_at=clock.now()).save()
    young = api.post("/contacts", contact_body(email="ada@example.com"))
    assert young.status == 409 and "retry" in young.message and "contact_id" not in young.body

    frozen_clock.advance(contacts.CLAIM_GRACE.total_seconds() + 1)
    taken = api.post("/contacts", contact_body(email="ada@example.com"))
    assert taken.status == 201
    assert api.get("/contacts", query={"email": "ada@example.com"}).body["items"][0]["contact_id"] == taken.body["contact_id"]


# --- suppressions ------------------------------------------------------------------------------


def test_the_unsubscribe_link_suppresses_the_address_and_a_recreated_contact_gets_no_email(api, stream, settings, frozen_clock):
    pipeline_id = email_pipeline(api)
    ada = api.post("/contacts", contact_body(email="ada@example.com")).body
    deliver(stream)
    run_all(settings, frozen_clock)
    assert sent_count() == 1

    assert api.post(link_path(settings, ada["contact_id"]), team=None, raw_body="List-Unsubscribe=One-Click").status == 200
    (entry,) = api.get("/suppressions").body["items"]
    assert entry["email"] == "ada@example.com" and entry["reason"] == "unsubscribe"
    assert entry["contact_id"] == ada["contact_id"]

    # deleted and created again (in another case): enrolled, tasks go on, the email is skipped
    assert api.delete(f"/contacts/{ada['contact_id']}").status == 204
    again = api.post("/contacts", contact_body(email="ADA@example.com")).body
    deliver(stream)
    run_all(settings, frozen_clock)

    run, steps = history(again["contact_id"])
    assert steps == [(1, "skipped", "suppressed"), (2, "succeeded", None)]
    assert run.status == "completed" and sent_count() == 1
    stats = api.get(f"/pipelines/{pipeline_id}/stats").body
    assert stats["emails"]["suppressed"] == 1 and stats["emails"]["sent"] == 1
    assert stats["steps"][0]["skipped"] == 1


@pytest.mark.parametrize("name,reason", [("ses_bounce_permanent.json", "bounce"), ("ses_complaint.json", "complaint")])
def test_a_hard_bounce_or_complaint_suppresses_the_address(api, stream, settings, frozen_clock, name, reason):
    email_pipeline(api)
    ada = api.post("/contacts", contact_body(email="ada@example.com")).body
    deliver(stream)
    run_all(settings, frozen_clock)
    run, _ = history(ada["contact_id"])
    message_id = run.history[0].detail["message_id"]
    text = json.dumps(load_event(name)).replace("RUN_ID", run.run_id).replace("MESSAGE_ID", message_id)

    assert ses_events_app.lambda_handler(json.loads(text), FakeContext())["suppressed"] is True
    (entry,) = api.get("/suppressions").body["items"]
    assert (entry["email"], entry["reason"]) == ("ada@example.com", reason)

    api.delete(f"/contacts/{ada['contact_id']}")
    again = api.post("/contacts", contact_body(email="ada@example.com")).body
    deliver(stream)
    run_all(settings, frozen_clock)
    assert history(again["contact_id"])[1][0] == (1, "skipped", "suppressed") and sent_count() == 1


def test_removing_a_suppression_allows_email_again(api, stream, settings, frozen_clock):
    email_pipeline(api)
    second = email_pipeline(api, automatic=False)
    assert api.post("/suppressions", {"email": "Ada@example.com"}).status == 201
    ada = api.post("/contacts", contact_body(email="ada@example.com")).body
    deliver(stream)
    run_all(settings, frozen_clock)
    assert history(ada["contact_id"])[1][0] == (1, "skipped", "suppressed") and sent_count() == 0

    assert api.delete("/suppressions", query={"email": "ADA@example.com"}).status == 204
    assert api.get("/suppressions").body["items"] == []
    assert api.post(f"/contacts/{ada['contact_id']}/runs", {"pipeline_id": second}).status == 201
    run_all(settings, frozen_clock)
    assert sent_count() == 1


def test_the_suppressions_api_adds_idempotently_lists_in_pages_and_refuses_bad_input(api, snapshot):
    first = api.post("/suppressions", {"email": "b@example.com", "reason": "bounce"})
    again = api.post("/suppressions", {"email": "B@example.com"})
    api.post("/suppressions", {"email": "a@example.com"})

    assert first.status == 201 and (again.status, again.body) == (200, first.body)
    page = api.get("/suppressions", query={"limit": 1}).body
    rest = api.get("/suppressions", query={"limit": 1, "next_token": page["next_token"]}).body
    assert [page["items"][0]["email"], rest["items"][0]["email"]] == ["a@example.com", "b@example.com"]
    assert api.get("/suppressions", team="globex").body["items"] == []
    assert api.delete("/suppressions", query={"email": "b@example.com"}, team="globex").status == 404

    before = snapshot()
    assert api.post("/suppressions", {"email": "not an address"}).status == 422
    assert api.post("/suppressions", {"email": "c@example.com", "reason": "whim"}).status == 422
    assert api.delete("/suppressions", query={"email": "c@example.com"}).status == 404
    assert snapshot() == before


def test_removing_a_suppression_is_an_explicit_logged_act_without_the_address(api, frozen_clock):
    import io
    import logging

    from dripline.observability import logger as dripline_logger

    assert api.post("/suppressions", {"email": "ada@example.com", "reason": "complaint"}).status == 201
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.setFormatter(dripline_logger.registered_formatter)
    logging.getLogger(dripline_logger.name).addHandler(handler)
    try:
        assert api.delete("/suppressions", query={"email": "ADA@example.com"}).status == 204
    finally:
        logging.getLogger(dripline_logger.name).removeHandler(handler)

    (line,) = [json.loads(x) for x in written.getvalue().splitlines() if '"suppression removed"' in x]
    assert (line["team_id"], line["reason"]) == (TEAM, "complaint") and line["suppressed_at"]
    assert "ada@example.com" not in written.getvalue().lower()
