"""Runs, tasks and stats, after the real processor has moved runs along."""
from datetime import timedelta

import pytest

from dripline.processor import Processor
from tests.api.conftest import TEAM, contact_body, deliver, pipeline_body
from tests.support import EMAIL_STEP, FOLLOW_UP_STEP, TASK_STEP, load_event, run_ticks_until


@pytest.fixture
def three_steps(api):
    return api.post("/pipelines", pipeline_body(steps=[EMAIL_STEP, TASK_STEP, FOLLOW_UP_STEP])).body


def test_get_run_shows_its_history(api, stream, settings, frozen_clock, three_steps):
    contact = api.post("/contacts", contact_body()).body
    deliver(stream)
    processor = Processor(settings)
    run_ticks_until(processor, frozen_clock, frozen_clock.now() + timedelta(days=1, minutes=1))

    (listed,) = api.get(f"/contacts/{contact['contact_id']}/runs").body["items"]
    run = api.get(f"/runs/{listed['run_id']}").body

    assert run == listed
    assert run["status"] == "pending" and run["current_step"] == 2 and run["next_step_number"] == 3
    assert run["next_step_at"] == "2026-03-06T09:00:00.000Z"  # step 2 ran at 03-03 09:00, + 3 days
    first, second = run["history"]
    assert first["step_number"] == 1 and first["action_type"] == "send_email" and first["outcome"] == "succeeded"
    assert first["scheduled_at"] == first["executed_at"] == "2026-03-02T09:00:00.000Z" and first["error"] is None
    assert first["detail"]["to"] == "ada@example.com" and first["attempt"] == 1
    assert second["action_type"] == "create_task" and second["executed_at"] == "2026-03-03T09:00:00.000Z"


def test_list_runs_by_status_and_pipeline(api, stream, settings, three_steps):
    other = api.post("/pipelines", pipeline_body(name="Other", automatic=False)).body
    ada = api.post("/contacts", contact_body()).body
    api.post("/contacts", contact_body(email="bob@example.com", pipeline_ids=[other["pipeline_id"]]))
    deliver(stream)
    (ada_run,) = api.get(f"/contacts/{ada['contact_id']}/runs").body["items"]
    api.delete(f"/contacts/{ada['contact_id']}/runs/{ada_run['run_id']}")

    everything = api.get("/runs").body
    cancelled = api.get("/runs", query={"status": "cancelled"}).body["items"]
    pending = api.get("/runs", query={"status": "pending"}).body["items"]
    of_other = api.get("/runs", query={"pipeline_id": other["pipeline_id"]}).body["items"]
    pending_of_three = api.get("/runs", query={"pipeline_id": three_steps["pipeline_id"], "status": "pending"}).body["items"]

    assert len(everything["items"]) == 3 and everything["next_token"] is None
    assert [r["run_id"] for r in cancelled] == [ada_run["run_id"]]
    assert {r["pipeline_id"] for r in pending} == {three_steps["pipeline_id"], other["pipeline_id"]}
    assert {r["pipeline_id"] for r in of_other} == {other["pipeline_id"]} and len(of_other) == 1
    assert len(pending_of_three) == 1


def test_the_sample_list_runs_event(api, stream, three_steps):
    api.post("/contacts", contact_body())
    deliver(stream)
    reply = api.send(load_event("api_list_runs.json"))
    assert reply.status == 200 and [r["status"] for r in reply.body["items"]] == ["pending"]


def test_tasks_list_by_contact_and_status_and_mark_done(api, stream, settings, frozen_clock, three_steps):
    ada = api.post("/contacts", contact_body()).body
    bob = api.post("/contacts", contact_body(email="bob@example.com")).body
    deliver(stream)
    run_ticks_until(Processor(settings), frozen_clock, frozen_clock.now() + timedelta(days=1, minutes=1))

    all_tasks = api.get("/tasks").body["items"]
    (adas,) = api.get("/tasks", query={"contact_id": ada["contact_id"]}).body["items"]
    done = api.patch(f"/tasks/{adas['task_id']}", {"status": "done"})

    assert len(all_tasks) == 2
    assert adas["contact_id"] == ada["contact_id"] and adas["title"] == "Intro call" and adas["assignee"] == "sales"
    assert adas["description"] == "Call ada@example.com" and adas["step_number"] == 2 and adas["status"] == "open"
    assert adas["pipeline_id"] == three_steps["pipeline_id"] and adas["created_at"] == "2026-03-03T09:00:00.000Z"
    assert done.status == 200 and done.body == {**adas, "status": "done"}
    assert [t["task_id"] for t in api.get("/tasks", query={"status": "done"}).body["items"]] == [adas["task_id"]]
    (open_one,) = api.get("/tasks", query={"status": "open"}).body["items"]
    assert open_one["contact_id"] == bob["contact_id"]
    assert api.get("/tasks", query={"contact_id": bob["contact_id"], "status": "done"}).body["items"] == []


def test_stats_after_a_three_step_drip(api, stream, settings, frozen_clock, three_steps):
    # given three contacts in the 3-step pipeline (email now, task after 1 day, email 3 days later)
    ids = [api.post("/contacts", contact_body(email=f"c{n}@example.com")).body["contact_id"] for n in range(3)]
    deliver(stream)
    processor = Processor(settings)
    # when step 1 runs for all, then one contact unsubscribes, and the drip plays out
    run_ticks_until(processor, frozen_clock, frozen_clock.now() + timedelta(hours=1))
    api.patch(f"/contacts/{ids[2]}", {"unsubscribed": True})
    deliver(stream)
    run_ticks_until(processor, frozen_clock, frozen_clock.now() + timedelta(days=5))

    stats = api.get(f"/pipelines/{three_steps['pipeline_id']}/stats")

    # then the counters say so (emails sent: step 1 three times, step 3 twice)
    assert stats.status == 200
    assert stats.body == {
        "runs": {"total": 3, "pending": 0, "running": 0, "completed": 2, "failed": 0, "cancelled": 1, "exited": 0},
        "completion_rate": 0.6667,
        "conversion_rate": 0.0,
        "success_rate": 1.0,
        "steps": [
            {"step_number": 1, "action_type": "send_email", "executed": 3, "succeeded": 3, "failed": 0, "skipped": 0,
             "avg_lateness_seconds": 0.0},
            {"step_number": 2, "action_type": "create_task", "executed": 2, "succeeded": 2, "failed": 0, "skipped": 0,
             "avg_lateness_seconds": 0.0},
            {"step_number": 3, "action_type": "send_email", "executed": 2, "succeeded": 2, "failed": 0, "skipped": 0,
             "avg_lateness_seconds": 0.0},
        ],
        "emails": {"sent": 5, "delivered": 0, "bounced": 0, "complained": 0, "opened": 0, "clicked": 0, "suppressed": 0},
    }


def test_stats_count_lateness(api, stream, settings, frozen_clock):
    pipeline = api.post("/pipelines", pipeline_body(steps=[EMAIL_STEP])).body
    api.post("/contacts", contact_body())
    deliver(stream)
    frozen_clock.advance(90)  # the processor is 90 s late

    Processor(settings).tick()

    (step,) = api.get(f"/pipelines/{pipeline['pipeline_id']}/stats").body["steps"]
    assert step["executed"] == 1 and step["avg_lateness_seconds"] == 90.0


def test_reconcile_recounts_the_counters_from_the_runs(api, stream, settings, frozen_clock, three_steps):
    from dripline.storage import stats

    api.post("/contacts", contact_body())
    deliver(stream)
    Processor(settings).tick()
    pipeline_id = three_steps["pipeline_id"]
    counted = api.get(f"/pipelines/{pipeline_id}/stats").body
    # a process died before its counters were written: they lag the runs by one run
    with stats.Tally() as lagging:
        lagging.run_moved(TEAM, pipeline_id, stats.RunStatus.PENDING, stats.RunStatus.FAILED)

    reply = api.post(f"/pipelines/{pipeline_id}/stats/reconcile", None)

    assert reply.status == 200 and reply.body == counted == api.get(f"/pipelines/{pipeline_id}/stats").body
    assert reply.body["runs"]["pending"] == 1 and reply.body["steps"][0]["executed"] == 1


def test_reconcile_of_an_unknown_pipeline_is_404(api):
    assert api.post("/pipelines/nope/stats/reconcile", None).status == 404
