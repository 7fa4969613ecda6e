"""The step engine's rules, with no AWS at all."""
from datetime import datetime, timedelta, timezone

import pytest

from dripline import engine
from dripline.domain import Outcome, PipelineSpec, RunStatus, Step
from dripline.engine import ActionResult
from dripline.settings import DeliveryPolicy

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
PIPELINE = PipelineSpec(
    team_id="acme",
    pipeline_id="p1",
    version=1,
    name="Welcome",
    model_type="contact",
    steps=(
        Step(1, "send_email", 0),
        Step(2, "create_task", 86400),
        Step(5, "send_email", 3 * 86400),  # gaps in step numbers are allowed
    ),
)


def after(step_number, result, *, executed_at=T0, scheduled_at=T0, attempts=0, max_attempts=5):
    return engine.after_step(
        PIPELINE,
        step_number,
        result,
        scheduled_at=scheduled_at,
        executed_at=executed_at,
        failed_attempts_before=attempts,
        max_attempts=max_attempts,
        retry_base_seconds=60,
        retry_max_seconds=3600,
    )


def test_enrollment_schedules_first_step_after_its_delay():
    delayed = PipelineSpec("acme", "p", 1, "n", "contact", (Step(3, "send_email", 90),))
    schedule = engine.enroll(delayed, T0)
    assert schedule == engine.Schedule(RunStatus.PENDING, 3, T0 + timedelta(seconds=90))


def test_pipeline_without_steps_completes_at_once():
    empty = PipelineSpec("acme", "p", 1, "n", "contact", ())
    assert engine.enroll(empty, T0).status is RunStatus.COMPLETED


def test_next_step_is_planned_from_this_steps_planned_time_not_its_execution():
    executed = T0 + timedelta(minutes=7)  # a late tick does not shift the following step
    decision = after(1, ActionResult.succeeded(message_id="m1"), executed_at=executed)
    assert decision.schedule == engine.Schedule(RunStatus.PENDING, 2, T0 + timedelta(days=1))
    assert decision.history.outcome is Outcome.SUCCEEDED
    assert decision.history.detail == {"message_id": "m1"}
    assert decision.attempts == 0


def test_lateness_does_not_add_up_over_steps_on_a_late_ticking_processor():
    planned, late_by = T0, timedelta(seconds=59)  # every tick runs its step 59 s late
    for step_number in (1, 2):
        decision = after(step_number, ActionResult.succeeded(), executed_at=planned + late_by, scheduled_at=planned)
        planned = decision.schedule.next_step_at
    assert planned == T0 + timedelta(days=1 + 3)  # exactly the plan: no drift


def test_a_step_run_hours_late_keeps_the_spacing_to_the_next():
    executed = T0 + timedelta(seconds=engine.REPLAN_AFTER_SECONDS + 1)  # after an outage
    decision = after(1, ActionResult.succeeded(), executed_at=executed)
    assert decision.schedule.next_step_at == executed + timedelta(days=1)


def test_steps_run_in_ascending_order_across_gaps():
    assert after(2, ActionResult.succeeded()).schedule.next_step_number == 5


def test_last_step_completes_the_run():
    decision = after(5, ActionResult.succeeded())
    assert decision.schedule.status is RunStatus.COMPLETED
    assert decision.schedule.next_step_at is None


def test_skipped_step_still_advances():
    decision = after(1, ActionResult.skipped("unsubscribed"))
    assert decision.schedule.next_step_number == 2
    assert decision.history.outcome is Outcome.SKIPPED
    assert decision.history.error == "unsubscribed"


def test_retryable_failure_backs_off_exponentially_without_history():
    first = after(1, ActionResult.failed("Throttling", retryable=True), attempts=0)
    assert first.schedule == engine.Schedule(RunStatus.PENDING, 1, T0 + timedelta(seconds=60))
    assert first.history is None and first.attempts == 1 and first.retried
    third = after(1, ActionResult.failed("Throttling", retryable=True), attempts=2)
    assert third.schedule.next_step_at == T0 + timedelta(seconds=240)


def test_retries_end_in_failed_after_max_attempts():
    decision = after(1, ActionResult.failed("Throttling", retryable=True), attempts=4, max_attempts=5)
    assert decision.schedule.status is RunStatus.FAILED
    assert decision.history.outcome is Outcome.FAILED and decision.history.attempt == 5
    assert decision.last_error == "Throttling"


def test_permanent_failure_fails_at_once():
    decision = after(1, ActionResult.failed("MessageRejected", retryable=False))
    assert decision.schedule.status is RunStatus.FAILED
    assert decision.attempts == 1


def test_stop_result_cancels_the_run_and_records_the_step():
    decision = after(1, ActionResult.stop("contact_deleted"))
    assert decision.schedule.status is RunStatus.CANCELLED
    assert decision.history.outcome is Outcome.SKIPPED


def test_unreadable_pipeline_version_fails_the_run():
    decision = engine.after_step(
        None, 1, ActionResult.failed("pipeline_version_missing", retryable=False),
        scheduled_at=T0, executed_at=T0, failed_attempts_before=0, max_attempts=5,
        retry_base_seconds=60, retry_max_seconds=3600,
    )
    assert decision.schedule.status is RunStatus.FAILED
    assert decision.history.action_type == "unknown"


@pytest.mark.parametrize(
    ("attempt", "expected"), [(0, 0), (1, 60), (2, 120), (3, 240), (7, 3600), (30, 3600)]
)
def test_backoff_is_capped(attempt, expected):
    assert engine.backoff_seconds(attempt, 60, 3600) == expected


def test_reclaimed_email_is_not_resent_under_at_most_once():
    result = engine.outcome_of_reclaimed_step(action_idempotent=False, policy=DeliveryPolicy.AT_MOST_ONCE)
    assert result.outcome is Outcome.SKIPPED and result.error == engine.DELIVERY_UNKNOWN


def test_reclaimed_step_runs_again_when_idempotent_or_at_least_once():
    assert engine.outcome_of_reclaimed_step(action_idempotent=True, policy=DeliveryPolicy.AT_MOST_ONCE) is None
    assert engine.outcome_of_reclaimed_step(action_idempotent=False, policy=DeliveryPolicy.AT_LEAST_ONCE) is None
