"""The operators' view through the API (issue 13): a contact's delivery log, error patterns
and the pipelines side by side, after the real processor and ses_events handler ran.

Faults are injected where requests reach AWS (dripline_local.faults); SES events are the
samples in events/, addressed to the emails the processor really sent."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from dripline.processor import Processor
from dripline_local.faults import REJECT, THROTTLE, FaultInjector, Rule
from functions.ses_events import app as ses_events_app
from tests.api.conftest import OTHER, contact_body, deliver
from tests.support import EMAIL_STEP, FOLLOW_UP_STEP, TASK_STEP, FakeContext, load_event, run_ticks_until

SECOND_EMAIL = {**FOLLOW_UP_STEP, "step_number": 2, "delay_seconds": 86400}


def ses_event(name: str, run: dict, step: dict, *, at: str | None = None) -> dict:
    """The sample SES event `name` for the email `step` of `run` recorded (its history entry)."""
    text = json.dumps(load_event(name)).replace("RUN_ID", run["run_id"]).replace("PIPELINE_ID", run["pipeline_id"])
    event = json.loads(text.replace("MESSAGE_ID", step["detail"]["message_id"]))
    detail = event["detail"]
    detail["mail"]["timestamp"] = step["executed_at"]  # SES's acceptance: the same in every event of it
    detail["mail"]["tags"]["step"] = [str(step["step_number"])]
    kind = detail["eventType"].lower()
    if at is not None:
        detail.setdefault(kind, {})["timestamp"] = at
    return event


def handle(event: dict) -> str:
    return ses_events_app.lambda_handler(event, FakeContext())["outcome"]


def only_run(api, contact: dict) -> dict:
    (run,) = api.get(f"/contacts/{contact['contact_id']}/runs").body["items"]
    return run


@pytest.fixture
def two_emails(api, stream, settings, frozen_clock):
    """Ada got both emails of a two-email pipeline (day 0 and day 1): (contact, run)."""
    api.post("/pipelines", {"name": "Two emails", "automatic": True, "steps": [EMAIL_STEP, SECOND_EMAIL]})
    contact = api.post("/contacts", contact_body()).body
    deliver(stream)
    run_ticks_until(Processor(settings), frozen_clock, frozen_clock.now() + timedelta(days=1, minutes=1))
    run = only_run(api, contact)
    assert run["status"] == "completed" and len(run["history"]) == 2
    return contact, run


def test_the_delivery_log_lists_each_email_with_its_latest_event_once(api, two_emails):
    contact, run = two_emails
    first, second = run["history"]
    log = f"/contacts/{contact['contact_id']}/messages"
    assert api.get(log).body == {"items": [], "next_token": None}  # nothing until SES reports

    # The first email: delivered, opened (redelivered twice), events before its Send event.
    opened = ses_event("ses_open.json", run, first, at="2026-03-02T10:15:00.000Z")
    outcomes = [handle(ses_event("ses_delivery.json", run, first, at="2026-03-02T09:00:02.000Z")),
                handle(opened), handle(opened), handle(opened), handle(ses_event("ses_send.json", run, first))]
    # The second: only accepted so far.
    outcomes.append(handle(ses_event("ses_send.json", run, second)))

    assert outcomes == ["counted", "counted", "duplicate", "duplicate", "recorded", "recorded"]
    page_one = api.get(log, query={"limit": "1"}).body
    page_two = api.get(log, query={"limit": "1", "next_token": page_one["next_token"]}).body
    newest, oldest = page_one["items"] + page_two["items"]
    assert newest == {
        "message_id": second["detail"]["message_id"], "run_id": run["run_id"], "pipeline_id": run["pipeline_id"],
        "step_number": 2, "sent_at": "2026-03-03T09:00:00.000Z", "latest_event": None, "events": {},
    }
    assert oldest["message_id"] == first["detail"]["message_id"] and oldest["step_number"] == 1
    assert oldest["sent_at"] == "2026-03-02T09:00:00.000Z"
    assert oldest["latest_event"] == {"type": "opened", "at": "2026-03-02T10:15:00.000Z"}
    assert oldest["events"] == {"delivered": "2026-03-02T09:00:02.000Z", "opened": "2026-03-02T10:15:00.000Z"}
    if page_two["next_token"]:  # DynamoDB may stop at the limit without knowing it was the end
        assert api.get(log, query={"next_token": page_two["next_token"]}).body == {"items": [], "next_token": None}
    emails = api.get(f"/pipelines/{run['pipeline_id']}/stats").body["emails"]
    assert emails == {"sent": 2, "delivered": 1, "bounced": 0, "complained": 0, "opened": 1, "clicked": 0, "suppressed": 0}


def test_the_delivery_log_is_the_contacts_own(api, two_emails):
    contact, run = two_emails
    handle(ses_event("ses_send.json", run, run["history"][0]))
    bob = api.post("/contacts", contact_body(email="bob@example.com", pipeline_ids=[])).body
    other_token = api.get(f"/contacts/{contact['contact_id']}/messages", query={"limit": "1"}).body["next_token"]

    assert api.get(f"/contacts/{bob['contact_id']}/messages").body["items"] == []
    assert api.get("/contacts/no-such-contact/messages").status == 404
    assert api.get(f"/contacts/{contact['contact_id']}/messages", team=OTHER).status == 404
    assert other_token is None or api.get(
        f"/contacts/{bob['contact_id']}/messages", query={"next_token": other_token}).status == 400


def test_error_patterns_count_failures_retries_and_recoveries(api, stream, settings, frozen_clock):
    api.post("/pipelines", {"name": "Welcome", "automatic": True, "steps": [EMAIL_STEP, TASK_STEP]})
    ada = api.post("/contacts", contact_body()).body
    bob = api.post("/contacts", contact_body(email="bob@example.com")).body
    deliver(stream)
    processor = Processor(settings)
    to = lambda address: lambda call: address in json.dumps(call.params)  # noqa: E731 - a rule's matcher
    injector = FaultInjector(seed=3)
    # Ada's email: throttled (SESv2's TooManyRequestsException) on its first attempt, every SDK
    # retry too, and sent on the step's retry.
    # Bob's: rejected for good.
    throttled = injector.add(Rule("sesv2", "SendEmail", THROTTLE, when=to("ada@example.com")))
    injector.add(Rule("sesv2", "SendEmail", REJECT, code="MessageRejected", when=to("bob@example.com")))
    with injector.installed():
        processor.tick()
        injector.rules.remove(throttled)
        run_ticks_until(processor, frozen_clock, frozen_clock.now() + timedelta(hours=2))

    ada_run, bob_run = only_run(api, ada), only_run(api, bob)
    assert ada_run["status"] == "pending" and ada_run["history"][0]["attempt"] == 2 and bob_run["status"] == "failed"
    body = api.get("/stats/errors", query={"since": "2026-03-02T09:30:00Z"}).body

    assert body["since"] == "2026-03-02T09:00:00.000Z"  # the start of that hour: hourly counters
    assert body["items"] == [
        {"error_code": "MessageRejected", "action_type": "send_email", "failed": 1, "retried": 0, "recovered": 0,
         "first_seen": "2026-03-02T09:00:00.000Z", "last_seen": "2026-03-02T09:00:00.000Z",
         "example_run_id": bob_run["run_id"]},
        {"error_code": "TooManyRequestsException", "action_type": "send_email", "failed": 0, "retried": 1, "recovered": 1,
         "first_seen": "2026-03-02T09:00:00.000Z", "last_seen": ada_run["history"][0]["executed_at"],
         "example_run_id": ada_run["run_id"]},
    ]
    assert api.get("/stats/errors", query={"since": "2026-03-02T11:00:00+00:00"}).body["items"] == []
    assert api.get("/stats/errors").body["items"] == body["items"]  # default: the last 24 hours
    assert api.get("/stats/errors", team=OTHER).body["items"] == []
    for bad in ("yesterday", "2026-03-02T09:00:00"):
        reply = api.get("/stats/errors", query={"since": bad})
        assert reply.status == 422 and reply.body["field"] == "since", reply.body


def test_pipelines_side_by_side(api, stream, settings, frozen_clock):
    welcome = api.post("/pipelines", {"name": "Welcome", "automatic": True, "steps": [EMAIL_STEP, TASK_STEP]}).body
    tasks = api.post("/pipelines", {"name": "Tasks only", "automatic": False, "steps": [{**TASK_STEP, "step_number": 1}]}).body
    idle = api.post("/pipelines", {"name": "Idle", "automatic": False, "steps": [{**TASK_STEP, "step_number": 1}]}).body
    ada = api.post("/contacts", contact_body(pipeline_ids=[tasks["pipeline_id"]])).body
    api.post("/contacts", contact_body(email="bob@example.com"))
    deliver(stream)
    processor = Processor(settings)
    frozen_clock.advance(90)  # the tick comes 90 s late: every welcome email is 90 s late
    processor.tick()
    run = next(r for r in api.get(f"/contacts/{ada['contact_id']}/runs").body["items"] if r["pipeline_id"] == welcome["pipeline_id"])
    handle(ses_event("ses_delivery.json", run, run["history"][0]))
    handle(ses_event("ses_open.json", run, run["history"][0]))
    run_ticks_until(processor, frozen_clock, frozen_clock.now() + timedelta(days=1, minutes=5))

    page = api.get("/stats/pipelines").body
    rows = {row["name"]: row for row in page["items"]}

    assert page["next_token"] is None and list(rows) == [p["name"] for p in api.get("/pipelines").body["items"]]
    w, t, i = rows["Welcome"], rows["Tasks only"], rows["Idle"]
    assert (w["enrolled"], w["active"], w["completion_rate"], w["success_rate"]) == (2, 0, 1.0, 1.0)
    assert (w["open_rate"], w["click_rate"]) == (1.0, 0.0) and w["emails"]["delivered"] == 1
    assert w["p99_lateness_seconds"] == 120.0 and w["avg_lateness_seconds"] == pytest.approx(45.0)  # 2 x 90 s, 2 x 0 s
    assert {b["le_seconds"]: b["count"] for b in w["lateness_histogram"] if b["count"]} == {1: 2, 120: 2}
    assert (t["enrolled"], t["active"], t["success_rate"], t["p99_lateness_seconds"]) == (1, 0, 1.0, 1.0)
    assert (i["enrolled"], i["active"], i["open_rate"], i["p99_lateness_seconds"], i["status"]) == (0, 0, 0.0, 0.0, "active")
    assert w["steps"] == api.get(f"/pipelines/{welcome['pipeline_id']}/stats").body["steps"]

    first = api.get("/stats/pipelines", query={"limit": "2"}).body
    rest = api.get("/stats/pipelines", query={"next_token": first["next_token"]}).body
    assert [r["pipeline_id"] for r in first["items"] + rest["items"]] == [r["pipeline_id"] for r in page["items"]]
    listing_token = api.get("/pipelines", query={"limit": "2"}).body["next_token"]
    assert api.get("/stats/pipelines", query={"next_token": listing_token}).status == 400
    assert api.get("/stats/pipelines", team=OTHER).body == {"items": [], "next_token": None}
    assert rows["Idle"]["pipeline_id"] == idle["pipeline_id"]
