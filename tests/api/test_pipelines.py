"""Pipelines and the team's automatic-pipeline setting, through the handler."""
from datetime import timedelta

from dripline.processor import Processor
from dripline.storage import runs
from tests.api.conftest import contact_body, deliver, pipeline_body
from tests.support import EMAIL_STEP, FOLLOW_UP_STEP, TASK_STEP, load_event, run_ticks_until


def test_create_pipeline_from_the_sample_event(api):
    reply = api.send(load_event("api_create_pipeline.json"))

    assert reply.status == 201
    body = reply.body
    assert body["name"] == "Welcome" and body["model_type"] == "contact"
    assert body["version"] == 1 and body["automatic"] is True and body["status"] == "active"
    assert [s["step_number"] for s in body["steps"]] == [1, 2]
    assert body["steps"][0] == {"step_number": 1, "action_type": "send_email", "delay_seconds": 0,
                                "message": "Hi {{ contact.first_name }}, welcome!", "data": {"subject": "Welcome"},
                                "send_window": None, "wait_until": None}
    assert body["created_at"] == body["updated_at"] == "2026-03-02T09:00:00.000Z"
    assert api.get(f"/pipelines/{body['pipeline_id']}").body == body
    assert api.get("/automatic-pipelines").body == {
        "items": [{"pipeline_id": body["pipeline_id"], "model_type": "contact", "created_at": "2026-03-02T09:00:00.000Z"}]
    }


def test_send_window_and_wait_until_are_stored_and_served_with_defaults_filled_in(api):
    window = {"days": ["fri", "mon"], "start": "09:00", "end": "17:30"}
    steps = [dict(EMAIL_STEP, send_window=window),
             dict(FOLLOW_UP_STEP, delay_seconds=0, wait_until={"until_attribute": "trial_ends_at", "offset_seconds": -86400})]
    body = api.post("/pipelines", pipeline_body(steps=steps)).body

    assert body["steps"][0]["send_window"] == {"days": ["mon", "fri"], "start": "09:00", "end": "17:30"}
    assert body["steps"][0]["wait_until"] is None
    assert body["steps"][1]["wait_until"] == {"until_attribute": "trial_ends_at", "offset_seconds": -86400, "if_missing": "skip"}
    assert api.get(f"/pipelines/{body['pipeline_id']}").body == body


def test_steps_run_in_ascending_order_with_gaps_allowed(api):
    steps = [dict(EMAIL_STEP, step_number=30), dict(TASK_STEP, step_number=10)]
    body = api.post("/pipelines", pipeline_body(steps=steps, automatic=False)).body

    assert [s["step_number"] for s in body["steps"]] == [10, 30]
    assert body["automatic"] is False and api.get("/automatic-pipelines").body == {"items": []}


def test_model_type_defaults_to_contact(api):
    body = pipeline_body()
    body.pop("model_type")
    assert api.post("/pipelines", body).body["model_type"] == "contact"


def test_update_makes_a_new_version(api, frozen_clock):
    created = api.post("/pipelines", pipeline_body()).body
    frozen_clock.advance(60)

    reply = api.put(f"/pipelines/{created['pipeline_id']}", pipeline_body(name="Welcome v2", steps=[EMAIL_STEP]))

    assert reply.status == 200
    assert reply.body["version"] == 2 and reply.body["name"] == "Welcome v2" and len(reply.body["steps"]) == 1
    assert reply.body["created_at"] == created["created_at"] and reply.body["updated_at"] == "2026-03-02T09:01:00.000Z"
    assert reply.body["automatic"] is True  # absent on PUT: unchanged
    assert api.get(f"/pipelines/{created['pipeline_id']}").body == reply.body


def test_update_with_automatic_false_unsets_it(api):
    created = api.post("/pipelines", pipeline_body()).body
    reply = api.put(f"/pipelines/{created['pipeline_id']}", pipeline_body(automatic=False))
    assert reply.body["automatic"] is False and api.get("/automatic-pipelines").body["items"] == []


def test_list_pipelines(api):
    ids = {api.post("/pipelines", pipeline_body(name=f"P{i}")).body["pipeline_id"] for i in range(3)}
    reply = api.get("/pipelines")
    assert reply.status == 200 and reply.body["next_token"] is None
    assert {p["pipeline_id"] for p in reply.body["items"]} == ids


def test_archive_stops_enrollment_and_lets_runs_finish(api, stream, settings):
    pipeline = api.post("/pipelines", pipeline_body()).body
    api.post("/contacts", contact_body())
    deliver(stream)

    reply = api.delete(f"/pipelines/{pipeline['pipeline_id']}")

    assert reply.status == 204 and reply.body is None
    archived = api.get(f"/pipelines/{pipeline['pipeline_id']}").body
    assert archived["status"] == "archived" and archived["automatic"] is False
    assert api.get("/automatic-pipelines").body["items"] == []
    assert [r["status"] for r in api.get("/runs").body["items"]] == ["pending"]  # it finishes
    late = api.post("/contacts", contact_body(email="late@example.com")).body
    deliver(stream)
    assert api.get(f"/contacts/{late['contact_id']}/runs").body["items"] == []
    assert api.delete(f"/pipelines/{pipeline['pipeline_id']}").status == 204  # idempotent


def test_archive_with_cancel_runs_cancels_active_runs(api, stream):
    pipeline = api.post("/pipelines", pipeline_body()).body
    other = api.post("/pipelines", pipeline_body(name="Other")).body
    for n in range(3):
        api.post("/contacts", contact_body(email=f"c{n}@example.com"))
    deliver(stream)

    reply = api.delete(f"/pipelines/{pipeline['pipeline_id']}", query={"cancel_runs": "true"})

    assert reply.status == 204
    mine = api.get("/runs", query={"pipeline_id": pipeline["pipeline_id"]}).body["items"]
    assert [r["status"] for r in mine] == ["cancelled"] * 3
    assert {r["last_error"] for r in mine} == {"pipeline_archived"}
    theirs = api.get("/runs", query={"pipeline_id": other["pipeline_id"]}).body["items"]
    assert [r["status"] for r in theirs] == ["pending"] * 3


def test_automatic_pipelines_put_is_idempotent_and_delete_unsets(api, frozen_clock):
    pipeline = api.post("/pipelines", pipeline_body(automatic=False)).body
    path = f"/automatic-pipelines/{pipeline['pipeline_id']}"

    first = api.put(path)
    frozen_clock.advance(30)
    second = api.put(path)

    assert first.status == second.status == 200
    assert first.body == second.body == {"pipeline_id": pipeline["pipeline_id"], "model_type": "contact",
                                         "created_at": "2026-03-02T09:00:00.000Z"}
    assert len(api.get("/automatic-pipelines").body["items"]) == 1
    assert api.get(f"/pipelines/{pipeline['pipeline_id']}").body["automatic"] is True
    assert api.delete(path).status == 204
    assert api.delete(path).status == 204
    assert api.get("/automatic-pipelines").body["items"] == []


def test_a_run_keeps_its_version_when_the_pipeline_changes_mid_way(api, stream, settings, frozen_clock):
    # given a contact whose run has executed step 1 of version 1
    v1 = api.post("/pipelines", pipeline_body(steps=[EMAIL_STEP, TASK_STEP, FOLLOW_UP_STEP])).body
    early = api.post("/contacts", contact_body(email="early@example.com")).body
    deliver(stream)
    processor = Processor(settings)
    processor.tick()
    (run,) = api.get(f"/contacts/{early['contact_id']}/runs").body["items"]
    assert run["current_step"] == 1 and run["next_step_number"] == 2

    # when the pipeline is replaced by a version whose steps differ
    new_steps = [dict(EMAIL_STEP, data={"subject": "New welcome"}),
                 dict(EMAIL_STEP, step_number=5, delay_seconds=60, data={"subject": "Only in v2"})]
    assert api.put(f"/pipelines/{v1['pipeline_id']}", pipeline_body(steps=new_steps)).body["version"] == 2
    late = api.post("/contacts", contact_body(email="late@example.com")).body
    deliver(stream)
    run_ticks_until(processor, frozen_clock, frozen_clock.now() + timedelta(days=5))

    # then the early run finished version 1's steps; the late one ran version 2's
    early_run = api.get(f"/runs/{run['run_id']}").body
    assert early_run["pipeline_version"] == 1 and early_run["status"] == "completed"
    assert [(h["step_number"], h["action_type"]) for h in early_run["history"]] == [
        (1, "send_email"), (2, "create_task"), (3, "send_email")]
    (late_run,) = api.get(f"/contacts/{late['contact_id']}/runs").body["items"]
    assert late_run["pipeline_version"] == 2
    assert [h["step_number"] for h in late_run["history"]] == [1, 5]
    assert len(runs.runs_of("acme", "contact", early["contact_id"])) == 1
