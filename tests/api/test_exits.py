"""Exit conditions end to end: a pipeline's exit_when, saved through the API, ends runs
`exited` when a contact update makes it true (through the contacts stream) or, at the
latest, just before the next step; stats count the exits as conversions."""
from datetime import timedelta

import pytest

from dripline.processor import Processor
from tests.api.conftest import contact_body, deliver, pipeline_body
from tests.support import EMAIL_STEP, FOLLOW_UP_STEP, run_ticks_until

PAID = {"attribute": "plan", "equals": "paid"}


def sent_emails():
    from moto.ses.models import ses_backends

    return ses_backends["123456789012"]["us-east-1"].sent_messages


@pytest.fixture
def two_emails(api):
    """Automatic: a welcome now and a follow-up 3 days later, until the contact pays."""
    return api.post("/pipelines", pipeline_body(steps=[EMAIL_STEP, FOLLOW_UP_STEP], exit_when=PAID)).body


def only_run(api, contact_id):
    (run,) = api.get(f"/contacts/{contact_id}/runs").body["items"]
    return run


def test_an_update_between_two_steps_exits_the_run_through_the_stream_and_counts_a_conversion(
    api, stream, settings, frozen_clock, two_emails
):
    # given a contact whose first step has run (the welcome was sent)
    contact = api.post("/contacts", contact_body()).body
    deliver(stream)
    processor = Processor(settings)
    run_ticks_until(processor, frozen_clock, frozen_clock.now() + timedelta(minutes=1))
    assert len(sent_emails()) == 1 and only_run(api, contact["contact_id"])["status"] == "pending"

    # when the contact pays, and the stream hands the change to enrollment
    frozen_clock.advance(3600)
    api.patch(f"/contacts/{contact['contact_id']}", {"attributes": {"plan": "paid"}})
    deliver(stream)

    # then the run has exited already, before any tick: nothing is due any more
    run = only_run(api, contact["contact_id"])
    assert run["status"] == "exited" and run["next_step_at"] is None and run["next_step_number"] is None
    assert run["exit_match"] == {"path": "exit_when", "condition": PAID}
    assert run["completed_at"] == "2026-03-02T10:01:00.000Z" and run["last_error"] is None
    assert [h["step_number"] for h in run["history"]] == [1]

    # and the next ticks, through the follow-up's due time, send nothing
    ticks = run_ticks_until(processor, frozen_clock, frozen_clock.now() + timedelta(days=4))
    assert ticks == 0 and len(sent_emails()) == 1
    assert only_run(api, contact["contact_id"])["status"] == "exited"

    # and stats show one conversion
    stats = api.get(f"/pipelines/{two_emails['pipeline_id']}/stats").body
    assert stats["runs"] == {"total": 1, "pending": 0, "running": 0, "completed": 0, "failed": 0, "cancelled": 0, "exited": 1}
    assert stats["conversion_rate"] == 1.0 and stats["completion_rate"] == 0.0
    assert [s["executed"] for s in stats["steps"]] == [1, 0]


def test_the_condition_is_checked_just_before_a_step_when_the_stream_lags(api, stream, settings, frozen_clock, two_emails):
    # given a contact past its first step
    contact = api.post("/contacts", contact_body()).body
    deliver(stream)
    processor = Processor(settings)
    run_ticks_until(processor, frozen_clock, frozen_clock.now() + timedelta(minutes=1))

    # when it pays but its stream record is not processed before the follow-up falls due
    api.patch(f"/contacts/{contact['contact_id']}", {"attributes": {"plan": "paid"}})
    run_ticks_until(processor, frozen_clock, frozen_clock.now() + timedelta(days=4))

    # then the follow-up is not sent, not recorded as a step, and the run exited
    run = only_run(api, contact["contact_id"])
    assert len(sent_emails()) == 1
    assert run["status"] == "exited" and run["exit_match"]["path"] == "exit_when"
    assert [h["step_number"] for h in run["history"]] == [1]

    # and the late stream record finds it ended: counted once
    deliver(stream)
    stats = api.get(f"/pipelines/{two_emails['pipeline_id']}/stats").body
    assert stats["runs"]["exited"] == 1 and stats["runs"]["total"] == 1 and stats["runs"]["pending"] == 0
    assert api.post(f"/pipelines/{two_emails['pipeline_id']}/stats/reconcile", None).body["runs"] == stats["runs"]


def test_any_of_over_fields_and_attributes_exits_only_the_pipelines_whose_condition_holds(api, stream, settings):
    condition = {"any": [{"all": [{"attribute": "demo_booked", "exists": True}, {"field": "timezone", "exists": True}]},
                         {"attribute": "plan", "in": ["paid", "enterprise"]}]}
    converting = api.post("/pipelines", pipeline_body(name="Trial", exit_when=condition)).body
    other = api.post("/pipelines", pipeline_body(name="Newsletter", exit_when={"field": "first_name", "equals": "Grace"})).body
    plain = api.post("/pipelines", pipeline_body(name="Plain")).body
    contact = api.post("/contacts", contact_body()).body
    deliver(stream)

    # an unrelated change exits nothing
    api.patch(f"/contacts/{contact['contact_id']}", {"last_name": "Byron"})
    deliver(stream)
    assert {r["status"] for r in api.get(f"/contacts/{contact['contact_id']}/runs").body["items"]} == {"pending"}

    api.patch(f"/contacts/{contact['contact_id']}", {"attributes": {"plan": "pro", "demo_booked": "2026-03-04"}})
    deliver(stream)

    by_pipeline = {r["pipeline_id"]: r for r in api.get(f"/contacts/{contact['contact_id']}/runs").body["items"]}
    exited = by_pipeline[converting["pipeline_id"]]
    assert exited["status"] == "exited"
    assert exited["exit_match"] == {"path": "exit_when.any[0]", "condition": condition["any"][0]}
    assert by_pipeline[other["pipeline_id"]]["status"] == "pending"
    assert by_pipeline[plain["pipeline_id"]]["status"] == "pending"
    assert api.get(f"/pipelines/{converting['pipeline_id']}/stats").body["conversion_rate"] == 1.0
    assert api.get(f"/pipelines/{other['pipeline_id']}/stats").body["runs"]["exited"] == 0


def test_a_contact_created_already_converted_exits_at_enrollment_without_a_step(api, stream, settings, two_emails):
    contact = api.post("/contacts", contact_body(attributes={"plan": "paid"})).body
    deliver(stream)
    Processor(settings).tick()

    run = only_run(api, contact["contact_id"])
    assert run["status"] == "exited" and run["history"] == [] and sent_emails() == []


def test_exit_when_is_stored_served_and_versioned(api):
    created = api.post("/pipelines", pipeline_body(exit_when=PAID)).body
    assert created["exit_when"] == PAID
    assert api.get(f"/pipelines/{created['pipeline_id']}").body["exit_when"] == PAID

    updated = api.put(f"/pipelines/{created['pipeline_id']}", pipeline_body()).body  # PUT replaces: no condition
    assert updated["version"] == 2 and updated["exit_when"] is None
    assert api.post("/pipelines", pipeline_body()).body["exit_when"] is None


def test_a_run_keeps_the_exit_condition_of_its_version(api, stream, settings, two_emails):
    contact = api.post("/contacts", contact_body()).body
    deliver(stream)
    api.put(f"/pipelines/{two_emails['pipeline_id']}", pipeline_body(steps=[EMAIL_STEP, FOLLOW_UP_STEP]))

    api.patch(f"/contacts/{contact['contact_id']}", {"attributes": {"plan": "paid"}})
    deliver(stream)

    assert only_run(api, contact["contact_id"])["status"] == "exited"  # enrolled on version 1, which has the condition


def test_an_exit_while_a_step_runs_keeps_the_step_and_ends_the_run_exited(api, stream, settings, frozen_clock, two_emails):
    import boto3

    from dripline.processor import Clients

    contact = api.post("/contacts", contact_body()).body
    deliver(stream)

    class PaysWhileSending:
        """SES that, while the welcome is being sent, sees the contact pay and the stream handled."""

        def __init__(self):
            self.real = boto3.client("sesv2", region_name=settings.region)

        def send_email(self, **kwargs):
            response = self.real.send_email(**kwargs)
            api.patch(f"/contacts/{contact['contact_id']}", {"attributes": {"plan": "paid"}})
            deliver(stream)  # the run is `running` (claimed): the exit ends it anyway
            return response

    clients = Clients(settings)
    clients.__dict__["sesv2"] = PaysWhileSending()  # cached_property slot
    report = Processor(settings, clients).tick()

    run = only_run(api, contact["contact_id"])
    assert report.outcomes["exited"] == 1
    assert run["status"] == "exited" and run["exit_match"]["path"] == "exit_when" and run["next_step_at"] is None
    assert [(h["step_number"], h["outcome"]) for h in run["history"]] == [(1, "succeeded")]
    stats = api.get(f"/pipelines/{two_emails['pipeline_id']}/stats").body
    assert stats["runs"] == {"total": 1, "pending": 0, "running": 0, "completed": 0, "failed": 0, "cancelled": 0, "exited": 1}
    assert [s["succeeded"] for s in stats["steps"]] == [1, 0]
    assert api.post(f"/pipelines/{two_emails['pipeline_id']}/stats/reconcile", None).body["runs"] == stats["runs"]
    assert run_ticks_until(Processor(settings), frozen_clock, frozen_clock.now() + timedelta(days=4)) == 0


def test_a_redelivered_update_counts_the_exit_once(api, stream, two_emails):
    from functions.enrollment import app as enrollment_app
    from tests.support import FakeContext

    contact = api.post("/contacts", contact_body()).body
    deliver(stream)
    api.patch(f"/contacts/{contact['contact_id']}", {"attributes": {"plan": "paid"}})
    records = stream.read()

    for _ in range(2):  # Lambda retries a batch, or the record is delivered twice
        assert enrollment_app.lambda_handler({"Records": records}, FakeContext()) == {"batchItemFailures": []}

    assert only_run(api, contact["contact_id"])["status"] == "exited"
    stats = api.get(f"/pipelines/{two_emails['pipeline_id']}/stats").body
    assert stats["runs"] == {"total": 1, "pending": 0, "running": 0, "completed": 0, "failed": 0, "cancelled": 0, "exited": 1}


@pytest.mark.parametrize("fault", ["lose_connection", "lose_500", "throttle"])
def test_a_lost_or_throttled_exit_write_still_exits_once_and_counts_once(api, stream, two_emails, fault):
    from dripline_local import faults

    contact = api.post("/contacts", contact_body()).body
    deliver(stream)
    api.patch(f"/contacts/{contact['contact_id']}", {"attributes": {"plan": "paid"}})

    def is_exit(call):  # the run update that sets exit_match ("xm")
        return call.operation == "UpdateItem" and "xm" in call.params.get("ExpressionAttributeNames", {}).values()

    kind = {"lose_connection": faults.LOSE_CONNECTION, "lose_500": faults.LOSE_500, "throttle": faults.THROTTLE}[fault]
    injector = faults.FaultInjector(seed=5)
    injector.add(faults.Rule("dynamodb", "UpdateItem", kind, times=1, when=is_exit))
    with injector.installed():
        deliver(stream)

    assert injector.injected[("dynamodb", "UpdateItem", kind)] == 1
    assert only_run(api, contact["contact_id"])["status"] == "exited"
    counted = api.get(f"/pipelines/{two_emails['pipeline_id']}/stats").body["runs"]
    assert counted == {"total": 1, "pending": 0, "running": 0, "completed": 0, "failed": 0, "cancelled": 0, "exited": 1}
    assert api.post(f"/pipelines/{two_emails['pipeline_id']}/stats/reconcile", None).body["runs"] == counted
