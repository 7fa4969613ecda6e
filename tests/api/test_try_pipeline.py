"""Issue 10, items 3-6: strict templates, preview, simulation, test send.

Each checks the try-out against what the processor then really does: the same contact,
the same clock, faults injected where requests reach AWS (dripline_local.faults).
"""
import email
import email.policy
import time

from moto.ses.models import ses_backends

from dripline.processor import Processor
from dripline.simulation import tick_at
from dripline.storage import runs
from dripline_local.faults import THROTTLE, FaultInjector, Rule
from tests.api.conftest import TEAM, contact_body, deliver, table_items

# The token of the sample events (events/api_create_contact.json) says this is the caller's verified address.
CALLER = "ada@acme.example"

WELCOME = {"step_number": 1, "action_type": "send_email", "delay_seconds": 0,
           "message": "Hi {{ contact.first_name }} <{{ contact.attributes.plan | default('free') }}>\nWelcome aboard.",
           "data": {"subject": "Welcome {{ contact.first_name }}"}}
FOLLOW_UP = {"step_number": 2, "action_type": "send_email", "delay_seconds": 86400,
             "message": "Still with us, {{ contact.first_name }}?", "data": {"subject": "Day two"}}
CALL = {"step_number": 3, "action_type": "create_task", "delay_seconds": 3600,
        "message": "Call {{ contact.email }}", "data": {"title": "Call {{ contact.first_name }}"}}


def sent():
    backend = ses_backends["123456789012"]["us-east-1"]
    return [email.message_from_string(m.raw_data, policy=email.policy.default) for m in backend.sent_messages]


def part(message, kind):
    """A MIME part's bytes as sent (base64 decoded), not re-read as text."""
    return message.get_body((kind,)).get_payload(decode=True)


def the_run(contact_id):
    (run,) = runs.runs_of(TEAM, "contact", contact_id)
    return run


def new_pipeline(api, steps, **extra):
    reply = api.post("/pipelines", {"name": "Onboarding", "automatic": True, "steps": steps, **extra})
    assert reply.status == 201, reply.body
    return reply.body["pipeline_id"]


# --- strict templates ------------------------------------------------------------------------


def test_a_misspelled_contact_field_is_a_422_naming_it_and_the_known_fields(api, snapshot):
    before = snapshot()
    step = {**WELCOME, "message": "Hi {{ contact.frist_name }}"}

    reply = api.post("/pipelines", {"name": "Typo", "steps": [step]})

    assert reply.status == 422
    assert "steps[0].message" in reply.message and "contact.frist_name" in reply.message
    assert "first_name" in reply.message and "attributes" in reply.message
    assert snapshot() == before


def test_a_missing_attribute_renders_empty_or_its_default(api):
    steps = [{**WELCOME, "message": "[{{ contact.attributes.nickname }}][{{ contact.attributes.plan | default('free') }}]"}]
    pipeline_id = new_pipeline(api, steps)

    reply = api.post(f"/pipelines/{pipeline_id}/preview", {"contact": {"email": "bo@example.com"}})

    assert reply.status == 200, reply.body
    assert reply.body["steps"][0]["rendered"]["text"].startswith("[][free]\n")


def test_an_email_that_renders_empty_fails_with_empty_message_and_is_not_sent(api, stream, settings):
    pipeline_id = new_pipeline(api, [{**WELCOME, "message": "{{ contact.attributes.nickname }}"}, CALL])
    contact_id = api.post("/contacts", contact_body()).body["contact_id"]
    deliver(stream)
    shown = api.post(f"/pipelines/{pipeline_id}/preview", {"contact_id": contact_id}).body["steps"]

    Processor(settings).tick()

    run = the_run(contact_id)
    assert run.status == "failed" and run.last_error == "empty_message"
    assert [(h.step_number, h.outcome, h.error) for h in run.history] == [(1, "failed", "empty_message")]
    assert sent() == []
    assert [(s["outcome"], s["error"]) for s in shown] == [("failed", "empty_message"), ("not_reached", None)]
    assert shown[1]["rendered"]["title"] == "Call Ada"  # a step not reached is still shown rendered


# --- preview ---------------------------------------------------------------------------------


def test_preview_is_what_the_processor_then_sends_byte_for_byte(api, stream, settings, frozen_clock, snapshot):
    pipeline_id = new_pipeline(api, [WELCOME, CALL])
    contact_id = api.post("/contacts", contact_body(first_name="Zoë <b>", attributes={"plan": "pro & co"})).body["contact_id"]
    deliver(stream)
    before = snapshot()

    reply = api.post(f"/pipelines/{pipeline_id}/preview", {"contact_id": contact_id})

    assert reply.status == 200, reply.body
    assert snapshot() == before and sent() == []  # no side effects
    first, call = reply.body["steps"]
    assert (first["scheduled_at"], first["runs_at"], first["outcome"]) == (reply.body["start"], reply.body["start"], "succeeded")
    Processor(settings).tick()
    (message,) = sent()
    assert str(message["Subject"]) == first["rendered"]["subject"] == "Welcome Zoë <b>"
    assert part(message, "plain") == first["rendered"]["text"].encode()
    assert part(message, "html") == first["rendered"]["html"].encode()
    assert "Hi Zoë &lt;b&gt; <pro &amp; co>" in first["rendered"]["html"]

    frozen_clock.set(tick_at(the_run(contact_id).next_step_at))
    Processor(settings).tick()
    (task,) = api.get("/tasks").body["items"]
    assert task["title"] == call["rendered"]["title"] == "Call Zoë <b>"
    assert the_run(contact_id).history[1].executed_at.isoformat().replace("+00:00", "") == call["runs_at"][:-5]


def test_preview_of_an_inline_sample_contact_and_its_errors(api):
    pipeline_id = new_pipeline(api, [WELCOME, FOLLOW_UP])

    sample = api.post(f"/pipelines/{pipeline_id}/preview", {"contact": {"email": "sam@example.com", "first_name": "Sam"}})
    both = api.post(f"/pipelines/{pipeline_id}/preview", {"contact": {"email": "sam@example.com"}, "contact_id": "x"})
    neither = api.post(f"/pipelines/{pipeline_id}/preview", {})
    unknown = api.post(f"/pipelines/{pipeline_id}/preview", {"contact_id": "nobody"})
    other_team = api.post(f"/pipelines/{pipeline_id}/preview", {"contact": {"email": "sam@example.com"}}, team="globex")

    assert sample.status == 200
    text = sample.body["steps"][0]["rendered"]["text"]
    assert text.startswith("Hi Sam <free>\nWelcome aboard.") and text.endswith("/unsubscribe/sample\n")
    day_two = sample.body["steps"][1]
    assert day_two["scheduled_at"] == "2026-03-03T09:00:00.000Z" and day_two["rendered"]["subject"] == "Day two"
    assert (both.status, neither.status, unknown.status, other_team.status) == (422, 422, 404, 404)


# --- simulation ------------------------------------------------------------------------------


def test_simulation_of_a_retrying_step_is_what_the_processor_then_does(api, stream, settings, frozen_clock):
    # given a pipeline whose step 2 will meet two SES throttles
    pipeline_id = new_pipeline(api, [WELCOME, FOLLOW_UP, CALL])
    contact_id = api.post("/contacts", contact_body()).body["contact_id"]
    deliver(stream)
    # when it is simulated with those failures
    simulated = api.post(f"/pipelines/{pipeline_id}/simulate",
                         {"contact_id": contact_id, "failures": [{"step_number": 2, "times": 2}]})
    assert simulated.status == 200, simulated.body
    # and the processor then runs it, the throttles injected where SendEmail reaches AWS
    step_two = Rule("sesv2", "SendEmail", THROTTLE, times=2,
                    when=lambda call: {"Name": "step", "Value": "2"} in call.params.get("EmailTags", []))
    observed = []
    injector = FaultInjector(seed=10, rules=[step_two])
    with injector.installed():
        while (run := the_run(contact_id)).status == "pending":
            frozen_clock.set(max(frozen_clock.now(), tick_at(run.next_step_at)))
            executed_at, step, attempt = frozen_clock.now(), run.next_step_number, run.attempts + 1
            Processor(settings).tick()
            after = the_run(contact_id)
            retried = after.status == "pending" and after.next_step_number == step
            observed.append({
                "step_number": step, "attempt": attempt, "scheduled_at": run.next_step_at, "executed_at": executed_at,
                "outcome": "retry" if retried else after.history[-1].outcome,
                "next_at": after.next_step_at if after.status == "pending" else None,
            })
    # then every attempt, its time, outcome and backoff, and the end are the same
    iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.000Z") if t else None  # noqa: E731
    expected = [{k: a[k] for k in ("step_number", "attempt", "scheduled_at", "executed_at", "outcome", "next_at")}
                for a in simulated.body["attempts"]]
    assert [{k: iso(v) if k in ("scheduled_at", "executed_at", "next_at") else v for k, v in o.items()}
            for o in observed] == expected
    assert [(a["step_number"], a["outcome"], a["retry_in_seconds"]) for a in simulated.body["attempts"]] == [
        (1, "succeeded", None), (2, "retry", 60), (2, "retry", 120), (2, "succeeded", None), (3, "succeeded", None)]
    assert simulated.body["status"] == the_run(contact_id).status == "completed"
    assert sum(injector.injected.values()) == 2 and len(sent()) == 2


def test_a_step_failing_for_good_ends_the_simulated_run(api):
    pipeline_id = new_pipeline(api, [WELCOME, FOLLOW_UP, CALL])

    reply = api.post(f"/pipelines/{pipeline_id}/simulate", {
        "contact": {"email": "sam@example.com"}, "failures": [{"step_number": 2, "times": 1, "retryable": False}]})
    no_step = api.post(f"/pipelines/{pipeline_id}/simulate", {
        "contact": {"email": "sam@example.com"}, "failures": [{"step_number": 9}]})

    assert reply.status == 200
    assert [(a["step_number"], a["outcome"]) for a in reply.body["attempts"]] == [(1, "succeeded"), (2, "failed")]
    assert (reply.body["status"], reply.body["not_reached"]) == ("failed", [3])
    assert no_step.status == 422 and "failures[0].step_number" in no_step.message
    assert sent() == []


def test_simulating_a_fifty_step_pipeline(api, settings, capsys):
    steps = [{**FOLLOW_UP, "step_number": n, "delay_seconds": 3600} for n in range(1, 51)]
    pipeline_id = new_pipeline(api, steps)
    body = {"contact": {"email": "sam@example.com", "first_name": "Sam"},
            "failures": [{"step_number": n, "times": 2} for n in range(1, 51, 10)]}

    started = time.perf_counter()
    reply = api.post(f"/pipelines/{pipeline_id}/simulate", body)
    elapsed_ms = (time.perf_counter() - started) * 1000

    assert reply.status == 200 and reply.body["status"] == "completed"
    assert len(reply.body["attempts"]) == 50 + 5 * 2
    with capsys.disabled():
        print(f"\nsimulate: 50 steps, 60 attempts, {elapsed_ms:.0f} ms through the API handler")


# --- test send -------------------------------------------------------------------------------


def test_a_test_send_goes_to_the_caller_marked_test_with_no_run_and_no_stats(api, settings):
    pipeline_id = new_pipeline(api, [WELCOME, CALL])
    runs_before = table_items(settings, "runs_table")

    reply = api.post(f"/pipelines/{pipeline_id}/steps/1/test", {"to": CALLER, "contact": {"email": "sam@example.com",
                                                                                         "first_name": "Sam"}})

    assert reply.status == 200, reply.body
    (message,) = sent()
    assert message["To"] == CALLER and str(message["Subject"]) == reply.body["subject"] == "[TEST] Welcome Sam"
    assert part(message, "plain").decode().startswith("Hi Sam <free>")
    assert "/unsubscribe/sample" in message["List-Unsubscribe"]
    assert table_items(settings, "runs_table") == runs_before
    stats = api.get(f"/pipelines/{pipeline_id}/stats").body
    assert stats["emails"]["sent"] == 0 and stats["runs"]["total"] == 0


def test_a_test_send_goes_nowhere_but_the_callers_own_address(api):
    pipeline_id = new_pipeline(api, [WELCOME, CALL])

    stranger = api.post(f"/pipelines/{pipeline_id}/steps/1/test", {"to": "eve@example.com"})
    task = api.post(f"/pipelines/{pipeline_id}/steps/3/test", {"to": CALLER})
    missing = api.post(f"/pipelines/{pipeline_id}/steps/7/test", {"to": CALLER})

    assert stranger.status == 422 and "to" in stranger.message
    assert task.status == 422 and "create_task" in task.message
    assert missing.status == 404
    assert sent() == []


def test_a_suppressed_address_previews_as_skipped_and_gets_no_test_send(api):
    pipeline_id = new_pipeline(api, [WELCOME, CALL])
    assert api.post("/suppressions", {"email": "Sam@Example.com"}).status == 201
    assert api.post("/suppressions", {"email": CALLER}).status == 201

    shown = api.post(f"/pipelines/{pipeline_id}/preview", {"contact": {"email": "sam@example.com"}}).body["steps"]
    tested = api.post(f"/pipelines/{pipeline_id}/steps/1/test", {"to": CALLER})

    assert [(s["outcome"], s["error"]) for s in shown] == [("skipped", "suppressed"), ("succeeded", None)]
    assert tested.status == 422 and "suppression list" in tested.message
    assert sent() == []
