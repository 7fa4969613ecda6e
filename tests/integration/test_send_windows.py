"""Send windows and wait-until steps wired end to end: the stream enrolls, the processor
ticks, over emulated DynamoDB and SES on a manual clock (DST days in both hemispheres)."""
from datetime import datetime, timezone

from dripline.processor import Processor
from tests.integration.test_processor import TEAM, enroll, sent_emails, stream, the_run  # noqa: F401 - stream: a fixture
from tests.support import EMAIL_STEP, TASK_STEP, make_pipeline, put_contact, run_ticks_until

WEEKDAYS_9_TO_5 = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


def test_berlin_contact_enrolled_on_the_spring_forward_weekend_gets_mail_at_nine_cest(aws, stream, settings, frozen_clock):
    frozen_clock.set(utc(2026, 3, 28, 12))  # Saturday; Berlin moves to UTC+2 on Sunday 29 March
    make_pipeline(TEAM, [dict(EMAIL_STEP, send_window=WEEKDAYS_9_TO_5),
                         dict(TASK_STEP, delay_seconds=9 * 3600, send_window=WEEKDAYS_9_TO_5)])
    ada = put_contact(TEAM, "ada@example.com", timezone="Europe/Berlin")
    enroll(stream)
    assert the_run(ada).next_step_at == utc(2026, 3, 30, 7)  # Monday 09:00 CEST

    run_ticks_until(Processor(settings), frozen_clock, utc(2026, 4, 1))

    run = the_run(ada)
    assert run.status == "completed"
    # Step 2 fell due at 16:00Z = 18:00 CEST, after the window: Tuesday 09:00 CEST.
    assert [(h.step_number, h.outcome, h.executed_at) for h in run.history] == [
        (1, "succeeded", utc(2026, 3, 30, 7)), (2, "succeeded", utc(2026, 3, 31, 7))]
    assert len(sent_emails()) == 1


def test_a_backlogged_step_whose_window_closed_waits_for_the_next_opening_unattempted(aws, stream, settings, frozen_clock):
    frozen_clock.set(utc(2026, 4, 4, 20))  # Sunday 06:00 in Sydney, 4 hours after it fell back to UTC+10
    sunday_morning = {"days": ["sun"], "start": "09:00", "end": "10:00"}
    make_pipeline(TEAM, [dict(EMAIL_STEP, send_window=sunday_morning)])
    bea = put_contact(TEAM, "bea@example.com", timezone="Australia/Sydney")
    enroll(stream)
    assert the_run(bea).next_step_at == utc(2026, 4, 4, 23)  # Sunday 09:00 AEST

    frozen_clock.set(utc(2026, 4, 5, 0, 30))  # the processor was down: 10:30 AEST, the window closed
    report = Processor(settings).tick()

    run = the_run(bea)
    assert report.outcomes["rescheduled"] == 1
    assert (run.status, run.next_step_number, run.next_step_at, run.attempts, run.history) == (
        "pending", 1, utc(2026, 4, 11, 23), 0, [])  # next Sunday 09:00 AEST
    assert sent_emails() == []

    run_ticks_until(Processor(settings), frozen_clock, utc(2026, 4, 12))
    run = the_run(bea)
    assert run.status == "completed" and [(h.outcome, h.executed_at) for h in run.history] == [("succeeded", utc(2026, 4, 11, 23))]
    assert len(sent_emails()) == 1


def test_wait_until_an_attribute_date_and_skip_when_it_is_missing(aws, stream, settings, frozen_clock):
    reminder = dict(EMAIL_STEP, step_number=2, wait_until={"until_attribute": "trial_ends_at", "offset_seconds": -86400})
    make_pipeline(TEAM, [EMAIL_STEP, reminder, dict(TASK_STEP, step_number=3, delay_seconds=60)])
    trial = put_contact(TEAM, "trial@example.com", timezone="Asia/Kathmandu", attributes={"trial_ends_at": "2026-03-10"})
    no_trial = put_contact(TEAM, "none@example.com")
    enroll(stream)

    run_ticks_until(Processor(settings), frozen_clock, utc(2026, 3, 12))

    # Midnight 10 March in Kathmandu (UTC+5:45) is 9 March 18:15Z; a day before.
    assert [(h.step_number, h.executed_at) for h in the_run(trial).history] == [
        (1, utc(2026, 3, 2, 9)), (2, utc(2026, 3, 8, 18, 15)), (3, utc(2026, 3, 8, 18, 16))]
    assert [(h.step_number, h.executed_at) for h in the_run(no_trial).history] == [
        (1, utc(2026, 3, 2, 9)), (3, utc(2026, 3, 2, 9, 1))]
