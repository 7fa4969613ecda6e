"""Enrollment handler driven by real stream records from the emulated contacts table."""
import json

import pytest

from dripline.domain import RunStatus
from dripline.storage import runs
from functions.enrollment import app as enrollment_app
from tests.support import EMAIL_STEP, TASK_STEP, FakeContext, StreamReader, load_event, make_pipeline, put_contact, stream_event

TEAM = "acme"


@pytest.fixture
def stream(aws):
    return StreamReader(aws.contacts_stream_arn)


def deliver(records):
    return enrollment_app.lambda_handler(stream_event(records), FakeContext())


def active_runs(contact_id):
    return [r for r in runs.runs_of(TEAM, "contact", contact_id) if r.status in ("pending", "running")]


def test_new_contact_is_enrolled_in_the_automatic_pipeline(aws, stream, frozen_clock):
    pipeline = make_pipeline(TEAM, [EMAIL_STEP, TASK_STEP])
    contact = put_contact(TEAM, "ada@example.com")

    response = deliver(stream.read())

    assert response == {"batchItemFailures": []}
    (run,) = runs.runs_of(TEAM, "contact", contact.contact_id)
    assert run.pipeline_id == pipeline.pipeline_id and run.source == "automatic"
    assert run.status == "pending" and run.next_step_number == 1
    assert run.next_step_at == frozen_clock.now()  # first step has no delay
    assert run.due_shard.startswith("due#")


def test_new_contact_is_enrolled_in_each_of_three_automatic_pipelines(aws, stream):
    ids = {make_pipeline(TEAM, [EMAIL_STEP], name=f"P{i}").pipeline_id for i in range(3)}
    contact = put_contact(TEAM, "ada@example.com")

    deliver(stream.read())

    assert {r.pipeline_id for r in active_runs(contact.contact_id)} == ids


def test_manual_and_automatic_union_gives_one_run_per_pipeline(aws, stream):
    both = make_pipeline(TEAM, [EMAIL_STEP], name="both")
    manual_only = make_pipeline(TEAM, [EMAIL_STEP], automatic=False, name="manual")
    auto_only = make_pipeline(TEAM, [EMAIL_STEP], name="auto")
    contact = put_contact(TEAM, "ada@example.com", pipeline_ids=[both.pipeline_id, manual_only.pipeline_id])

    deliver(stream.read())

    sources = {r.pipeline_id: r.source for r in active_runs(contact.contact_id)}
    assert sources == {both.pipeline_id: "manual", manual_only.pipeline_id: "manual", auto_only.pipeline_id: "automatic"}


def test_redelivered_insert_creates_one_run(aws, stream):
    make_pipeline(TEAM, [EMAIL_STEP])
    contact = put_contact(TEAM, "ada@example.com")
    records = stream.read()

    deliver(records)
    deliver(records)  # Lambda retries a batch after a timeout: same records again

    assert len(runs.runs_of(TEAM, "contact", contact.contact_id)) == 1


def test_insert_from_the_sample_event_enrolls_manual_pipeline(aws):
    manual = make_pipeline(TEAM, [EMAIL_STEP], automatic=False)
    put_contact(TEAM, "ada@example.com", contact_id="c-ada", pipeline_ids=[manual.pipeline_id])
    event = json.loads(json.dumps(load_event("contact_insert.json")).replace("PIPELINE_MANUAL", manual.pipeline_id))

    assert enrollment_app.lambda_handler(event, FakeContext()) == {"batchItemFailures": []}
    assert [r.pipeline_id for r in active_runs("c-ada")] == [manual.pipeline_id]


def test_modify_adds_and_removes_manual_pipelines(aws, stream, frozen_clock):
    kept = make_pipeline(TEAM, [EMAIL_STEP], automatic=False, name="kept")
    dropped = make_pipeline(TEAM, [EMAIL_STEP], automatic=False, name="dropped")
    added = make_pipeline(TEAM, [EMAIL_STEP], automatic=False, name="added")
    contact = put_contact(TEAM, "ada@example.com", pipeline_ids=[kept.pipeline_id, dropped.pipeline_id])
    deliver(stream.read())

    frozen_clock.advance(60)
    contact.update(actions=[type(contact).pipeline_ids.set([kept.pipeline_id, added.pipeline_id]),
                            type(contact).updated_at.set(frozen_clock.now())])
    records = stream.read()
    deliver(records)
    deliver(records)  # redelivered MODIFY: still one run of `added`

    by_pipeline = {r.pipeline_id: r.status for r in runs.runs_of(TEAM, "contact", contact.contact_id)}
    assert by_pipeline == {kept.pipeline_id: "pending", dropped.pipeline_id: "cancelled", added.pipeline_id: "pending"}


def test_unsubscribe_cancels_every_active_run(aws, stream):
    make_pipeline(TEAM, [EMAIL_STEP], name="a")
    make_pipeline(TEAM, [EMAIL_STEP], name="b")
    contact = put_contact(TEAM, "ada@example.com")
    deliver(stream.read())

    contact.update(actions=[type(contact).unsubscribed.set(True)])
    deliver(stream.read())

    statuses = [r.status for r in runs.runs_of(TEAM, "contact", contact.contact_id)]
    assert statuses == ["cancelled", "cancelled"]


def test_removed_contact_has_its_runs_cancelled(aws, stream):
    make_pipeline(TEAM, [EMAIL_STEP])
    contact = put_contact(TEAM, "ada@example.com")
    deliver(stream.read())

    contact.delete()
    deliver(stream.read())

    (run,) = runs.runs_of(TEAM, "contact", contact.contact_id)
    assert run.status == "cancelled" and run.last_error == "contact_deleted" and run.due_shard is None


def test_insert_retried_after_the_contact_was_deleted_creates_nothing(aws, stream):
    make_pipeline(TEAM, [EMAIL_STEP])
    contact = put_contact(TEAM, "ada@example.com")
    insert = stream.read()
    contact.delete()
    deliver(stream.read())  # the REMOVE is processed first ...

    deliver(insert)  # ... then the INSERT arrives late (a retry)

    assert runs.runs_of(TEAM, "contact", contact.contact_id) == []


def test_cancelled_run_is_not_recreated_by_a_redelivered_insert(aws, stream):
    make_pipeline(TEAM, [EMAIL_STEP])
    contact = put_contact(TEAM, "ada@example.com")
    insert = stream.read()
    deliver(insert)
    (run,) = runs.runs_of(TEAM, "contact", contact.contact_id)
    runs.cancel_run(run, run.created_at, "removed_by_user")

    deliver(insert)

    assert [r.status for r in runs.runs_of(TEAM, "contact", contact.contact_id)] == ["cancelled"]


def test_poisoned_record_fails_alone_in_a_batch_of_ten(aws, stream):
    make_pipeline(TEAM, [EMAIL_STEP])
    contacts = [put_contact(TEAM, f"c{i}@example.com") for i in range(9)]
    records = stream.read()
    poison = json.loads(json.dumps(records[4]))
    poison["dynamodb"]["SequenceNumber"] = "999999"
    del poison["dynamodb"]["NewImage"]["email"]  # not a contact any more
    batch = records[:4] + [poison] + records[4:]

    response = deliver(batch)

    assert response == {"batchItemFailures": [{"itemIdentifier": "999999"}]}
    assert all(len(active_runs(c.contact_id)) == 1 for c in contacts)


def test_archived_pipeline_enrolls_nobody(aws, stream):
    from dripline.storage import pipelines

    pipeline = make_pipeline(TEAM, [EMAIL_STEP], automatic=False)
    pipelines.archive_pipeline(TEAM, pipeline.pipeline_id, pipeline.created_at)
    contact = put_contact(TEAM, "ada@example.com", pipeline_ids=[pipeline.pipeline_id])

    assert deliver(stream.read()) == {"batchItemFailures": []}
    assert runs.runs_of(TEAM, "contact", contact.contact_id) == []
    assert RunStatus.PENDING.active


def test_insert_enrolls_only_manual_pipelines_still_assigned(aws, stream):
    kept = make_pipeline(TEAM, [EMAIL_STEP], automatic=False, name="kept")
    dropped = make_pipeline(TEAM, [EMAIL_STEP], automatic=False, name="dropped")
    contact = put_contact(TEAM, "ada@example.com", pipeline_ids=[kept.pipeline_id, dropped.pipeline_id])
    contact.update(actions=[type(contact).pipeline_ids.set([kept.pipeline_id])])  # before enrollment ran

    deliver(stream.read())  # INSERT (both ids) then MODIFY (one removed)

    assert [r.pipeline_id for r in runs.runs_of(TEAM, "contact", contact.contact_id)] == [kept.pipeline_id]


def sample(name, **ids):
    text = json.dumps(load_event(name))
    for placeholder, value in ids.items():
        text = text.replace(placeholder, value)
    return json.loads(text)


def handle(event):
    assert enrollment_app.lambda_handler(event, FakeContext()) == {"batchItemFailures": []}


def test_sample_events_insert_modify_remove(aws):
    from dripline.storage.models import Contact

    manual = make_pipeline(TEAM, [EMAIL_STEP], automatic=False, name="manual")
    added = make_pipeline(TEAM, [EMAIL_STEP], automatic=False, name="added")
    ids = {"PIPELINE_MANUAL": manual.pipeline_id, "PIPELINE_ADDED": added.pipeline_id}
    contact = put_contact(TEAM, "ada@example.com", contact_id="c-ada", pipeline_ids=[manual.pipeline_id])
    handle(sample("contact_insert.json", **ids))

    contact.update(actions=[Contact.pipeline_ids.set([added.pipeline_id])])  # as the sample's new image
    handle(sample("contact_modify_pipelines.json", **ids))
    assert {r.pipeline_id: r.status for r in runs.runs_of(TEAM, "contact", "c-ada")} == {
        manual.pipeline_id: "cancelled", added.pipeline_id: "pending"}

    contact.delete()
    handle(sample("contact_remove.json", **ids))
    (run,) = [r for r in runs.runs_of(TEAM, "contact", "c-ada") if r.pipeline_id == added.pipeline_id]
    assert (run.status, run.last_error) == ("cancelled", "contact_deleted")


def test_sample_event_unsubscribe_cancels_runs(aws):
    from dripline.storage.models import Contact

    manual = make_pipeline(TEAM, [EMAIL_STEP], automatic=False)
    ids = {"PIPELINE_MANUAL": manual.pipeline_id}
    contact = put_contact(TEAM, "ada@example.com", contact_id="c-ada", pipeline_ids=[manual.pipeline_id])
    handle(sample("contact_insert.json", **ids))

    contact.update(actions=[Contact.unsubscribed.set(True)])
    handle(sample("contact_modify_unsubscribe.json", **ids))

    (run,) = runs.runs_of(TEAM, "contact", "c-ada")
    assert (run.status, run.last_error) == ("cancelled", "unsubscribed")
