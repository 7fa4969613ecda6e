"""What an exit costs, counted with scale's meter (calls and write units, never timed):
through the stream, one runs Query and one conditional write per converted contact; an
update that changes no field or attribute reads no runs; before a step, nothing beyond
the claim and the finish the step path makes anyway."""
import pytest

from dripline import clock, runtime
from dripline.domain import Step
from dripline.exits import ExitCondition
from dripline.processor import Clients, Processor
from dripline.storage import pipelines, runs
from dripline_local.metering import Meter
from functions.enrollment import app as enrollment_app
from tests.support import EMAIL_STEP, FOLLOW_UP_STEP, FakeContext, StreamReader, put_contact, stream_event

TEAM = "acme"
CONTACTS = 20


def enroll(records):
    assert enrollment_app.lambda_handler(stream_event(records), FakeContext()) == {"batchItemFailures": []}


@pytest.fixture
def converted(aws, settings, frozen_clock):
    """CONTACTS contacts enrolled in a two-email pipeline that exits on plan=paid, past step 1."""
    pipeline = pipelines.create_pipeline(
        TEAM, name="Trial", model_type="contact", steps=[Step.from_dict(s) for s in (EMAIL_STEP, FOLLOW_UP_STEP)],
        now=clock.now(), automatic=True, exit_when=ExitCondition.parse({"attribute": "plan", "equals": "paid"}, "contact"),
    )
    stream = StreamReader(aws.contacts_stream_arn)
    people = [put_contact(TEAM, f"c{i}@example.com", first_name=f"Contact{i}") for i in range(CONTACTS)]
    enroll(stream.read())
    Processor(settings).tick()
    return pipeline, people, stream


def statuses(people):
    return {run.status for person in people for run in runs.runs_of(TEAM, "contact", person.contact_id)}


def test_an_exit_through_the_stream_costs_a_query_and_a_write_per_contact(converted, settings):
    pipeline, people, stream = converted
    for person in people:
        person.update(actions=[type(person).attributes.set({"plan": "paid"}), type(person).updated_at.set(clock.now())])
    records = stream.read()

    with Meter() as meter:
        runtime.configure(settings)
        enroll(records)
        usage = meter.usage()

    assert statuses(people) == {"exited"}
    # per contact: its current read, its runs Query, the exit's conditional UpdateItem; one stats ADD per batch
    assert usage.calls["dynamodb:Query"] == CONTACTS, usage.calls
    assert usage.per(CONTACTS)["calls"] <= 3.05, usage.calls
    print(f"\nexit through the stream, per contact: {usage.per(CONTACTS)}")


def test_an_update_that_changes_no_field_or_attribute_reads_no_runs(converted, settings):
    _, people, stream = converted
    for person in people:  # a touch: only updated_at moves
        person.update(actions=[type(person).updated_at.set(clock.now())])
    records = stream.read()

    with Meter() as meter:
        runtime.configure(settings)
        enroll(records)
        usage = meter.usage()

    assert "dynamodb:Query" not in usage.calls, usage.calls
    assert statuses(people) == {"pending"}


def test_an_exit_before_a_step_costs_the_claim_and_the_finish_only(converted, settings, frozen_clock):
    _, people, stream = converted
    for person in people:  # the stream lags: its records are never handed to enrollment here
        person.update(actions=[type(person).attributes.set({"plan": "paid"})])
    frozen_clock.advance(3 * 86400)

    with Meter() as meter:
        runtime.configure(settings)
        processor = Processor(settings, Clients(settings))
        report = processor.tick()
        usage = meter.usage()

    assert report.outcomes == {"exited": CONTACTS}
    assert statuses(people) == {"exited"}
    assert "ses:SendEmail" not in usage.calls and "sesv2:SendEmail" not in usage.calls, usage.calls
    # per run: claim + finish (no action); per tick: the due queries, one contacts BatchGetItem, one stats ADD
    per_tick = settings.due_shards + 1 + 1
    assert usage.total_calls <= 2 * CONTACTS + per_tick + 1, usage.calls  # + the signing key, read once per process
    print(f"\nexit before a step, per run: {usage.per(CONTACTS)}")
