"""Contacts through the handler; enrollment through the real stream and enrollment handler."""
from dripline.storage import contacts as contact_store
from functions.enrollment import app as enrollment_app
from tests.api.conftest import TEAM, contact_body, deliver, pipeline_body
from tests.support import FakeContext, load_event


def runs_by_pipeline(api, contact_id):
    items = api.get(f"/contacts/{contact_id}/runs").body["items"]
    return {r["pipeline_id"]: (r["source"], r["status"]) for r in items}, items


def test_create_contact_from_the_sample_event(api):
    reply = api.send(load_event("api_create_contact.json"))

    assert reply.status == 201
    body = reply.body
    assert len(body["contact_id"]) == 32
    assert {k: body[k] for k in ("email", "first_name", "last_name", "timezone", "attributes", "pipeline_ids", "unsubscribed")} == {
        "email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace", "timezone": "Europe/London",
        "attributes": {"plan": "pro"}, "pipeline_ids": [], "unsubscribed": False}
    assert body["created_at"] == body["updated_at"] == "2026-03-02T09:00:00.000Z"
    assert api.get(f"/contacts/{body['contact_id']}").body == body
    stored = contact_store.get_contact(TEAM, body["contact_id"])
    assert stored.email == "ada@example.com" and stored.team_id == TEAM


def test_optional_fields_may_be_left_out(api):
    reply = api.post("/contacts", {"email": "bare@example.com"})
    assert reply.status == 201
    assert reply.body["first_name"] is None and reply.body["timezone"] is None and reply.body["attributes"] == {}


def test_a_new_contact_gets_automatic_and_manual_runs_once_each(api, stream):
    # given two automatic pipelines and two manual ones, one of them also automatic
    auto = api.post("/pipelines", pipeline_body(name="auto")).body["pipeline_id"]
    both = api.post("/pipelines", pipeline_body(name="both")).body["pipeline_id"]
    manual = api.post("/pipelines", pipeline_body(name="manual", automatic=False)).body["pipeline_id"]

    # when a contact is created with the manual ones, and the stream delivers its INSERT
    contact = api.post("/contacts", contact_body(pipeline_ids=[manual, both, manual])).body
    assert contact["pipeline_ids"] == [manual, both]
    assert api.get(f"/contacts/{contact['contact_id']}/runs").body == {"items": []}  # enrollment is asynchronous
    records = stream.read()
    for _ in range(2):  # a redelivered batch changes nothing
        assert enrollment_app.lambda_handler({"Records": records}, FakeContext()) == {"batchItemFailures": []}

    # then each pipeline has exactly one run, manual where assigned by hand
    by_pipeline, items = runs_by_pipeline(api, contact["contact_id"])
    assert len(items) == 3
    assert by_pipeline == {auto: ("automatic", "pending"), both: ("manual", "pending"), manual: ("manual", "pending")}
    run = items[0]
    assert run["pipelineable_type"] == "contact" and run["pipelineable_id"] == contact["contact_id"]
    assert run["pipeline_version"] == 1 and run["next_step_number"] == 1 and run["history"] == []
    assert run["next_step_at"] == "2026-03-02T09:00:00.000Z" and run["completed_at"] is None


def test_patch_changes_only_the_given_fields(api, frozen_clock):
    contact = api.post("/contacts", contact_body()).body
    frozen_clock.advance(5)

    reply = api.patch(f"/contacts/{contact['contact_id']}", {"first_name": "Augusta", "timezone": None, "attributes": {"plan": "team"}})

    assert reply.status == 200
    expected = {**contact, "first_name": "Augusta", "timezone": None, "attributes": {"plan": "team"},
                "updated_at": "2026-03-02T09:00:05.000Z"}
    assert reply.body == expected
    assert api.get(f"/contacts/{contact['contact_id']}").body == expected


def test_every_write_moves_updated_at_forward_even_within_a_millisecond(api):
    contact = api.post("/contacts", contact_body()).body
    first = api.patch(f"/contacts/{contact['contact_id']}", {"first_name": "A"}).body
    second = api.patch(f"/contacts/{contact['contact_id']}", {"first_name": "B"}).body
    assert contact["updated_at"] < first["updated_at"] < second["updated_at"]


def test_patch_pipeline_ids_adds_and_cancels_runs(api, stream):
    one = api.post("/pipelines", pipeline_body(name="one", automatic=False)).body["pipeline_id"]
    two = api.post("/pipelines", pipeline_body(name="two", automatic=False)).body["pipeline_id"]
    contact = api.post("/contacts", contact_body(pipeline_ids=[one])).body
    deliver(stream)

    assert api.patch(f"/contacts/{contact['contact_id']}", {"pipeline_ids": [two]}).status == 200
    deliver(stream)

    by_pipeline, _ = runs_by_pipeline(api, contact["contact_id"])
    assert by_pipeline == {one: ("manual", "cancelled"), two: ("manual", "pending")}


def test_unsubscribing_cancels_every_active_run(api, stream):
    api.post("/pipelines", pipeline_body())
    contact = api.post("/contacts", contact_body()).body
    deliver(stream)

    reply = api.patch(f"/contacts/{contact['contact_id']}", {"unsubscribed": True})
    deliver(stream)

    assert reply.body["unsubscribed"] is True
    _, items = runs_by_pipeline(api, contact["contact_id"])
    assert [(r["status"], r["last_error"]) for r in items] == [("cancelled", "unsubscribed")]


def test_delete_contact_cancels_its_runs(api, stream):
    api.post("/pipelines", pipeline_body())
    contact = api.post("/contacts", contact_body()).body
    deliver(stream)
    (run,) = api.get(f"/contacts/{contact['contact_id']}/runs").body["items"]

    reply = api.delete(f"/contacts/{contact['contact_id']}")
    deliver(stream)

    assert reply.status == 204 and reply.body is None
    assert api.get(f"/contacts/{contact['contact_id']}").status == 404
    assert api.delete(f"/contacts/{contact['contact_id']}").status == 404
    assert api.get(f"/runs/{run['run_id']}").body["status"] == "cancelled"


def test_manual_assignment_answers_with_the_run_and_the_stream_adds_nothing(api, stream):
    pipeline = api.post("/pipelines", pipeline_body(automatic=False)).body["pipeline_id"]
    contact = api.post("/contacts", contact_body()).body
    deliver(stream)

    reply = api.post(f"/contacts/{contact['contact_id']}/runs", {"pipeline_id": pipeline})
    deliver(stream)  # the MODIFY of the assignment arrives after the answer

    assert reply.status == 201
    assert reply.body["pipeline_id"] == pipeline and reply.body["source"] == "manual" and reply.body["status"] == "pending"
    _, items = runs_by_pipeline(api, contact["contact_id"])
    assert [r["run_id"] for r in items] == [reply.body["run_id"]]
    assert api.get(f"/contacts/{contact['contact_id']}").body["pipeline_ids"] == [pipeline]


def test_manual_assignment_with_an_active_run_is_409_and_changes_nothing(api, stream, snapshot):
    pipeline = api.post("/pipelines", pipeline_body()).body["pipeline_id"]  # automatic
    contact = api.post("/contacts", contact_body()).body
    deliver(stream)
    before = snapshot()

    reply = api.post(f"/contacts/{contact['contact_id']}/runs", {"pipeline_id": pipeline})

    assert reply.status == 409 and pipeline in reply.message
    assert snapshot() == before


def test_an_unsubscribed_contact_cannot_be_assigned(api, snapshot):
    pipeline = api.post("/pipelines", pipeline_body(automatic=False)).body["pipeline_id"]
    contact = api.post("/contacts", contact_body(unsubscribed=True)).body
    before = snapshot()

    assert api.post(f"/contacts/{contact['contact_id']}/runs", {"pipeline_id": pipeline}).status == 409
    assert snapshot() == before


def test_removing_a_run_cancels_it_for_good(api, stream):
    pipeline = api.post("/pipelines", pipeline_body(automatic=False)).body["pipeline_id"]
    contact = api.post("/contacts", contact_body(pipeline_ids=[pipeline])).body
    deliver(stream)
    (run,) = api.get(f"/contacts/{contact['contact_id']}/runs").body["items"]

    reply = api.delete(f"/contacts/{contact['contact_id']}/runs/{run['run_id']}")
    records = stream.read()
    for _ in range(2):  # however often the stream delivers the change
        enrollment_app.lambda_handler({"Records": records}, FakeContext())

    assert reply.status == 204
    _, items = runs_by_pipeline(api, contact["contact_id"])
    assert [(r["run_id"], r["status"], r["last_error"]) for r in items] == [(run["run_id"], "cancelled", "removed_by_user")]
    assert api.get(f"/contacts/{contact['contact_id']}").body["pipeline_ids"] == []

    # and assigning again later starts a fresh run
    again = api.post(f"/contacts/{contact['contact_id']}/runs", {"pipeline_id": pipeline})
    deliver(stream)
    assert again.status == 201 and again.body["run_id"] != run["run_id"]
    assert len(api.get(f"/contacts/{contact['contact_id']}/runs").body["items"]) == 2


def test_a_run_of_another_contact_cannot_be_removed_through_this_one(api, stream, snapshot):
    api.post("/pipelines", pipeline_body())
    ada = api.post("/contacts", contact_body()).body
    bob = api.post("/contacts", contact_body(email="bob@example.com")).body
    deliver(stream)
    (run,) = api.get(f"/contacts/{ada['contact_id']}/runs").body["items"]
    before = snapshot()

    assert api.delete(f"/contacts/{bob['contact_id']}/runs/{run['run_id']}").status == 404
    assert snapshot() == before
