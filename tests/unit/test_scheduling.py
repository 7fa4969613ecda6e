"""Send windows and wait-until steps as the engine plans them (pure: no emulator).

DST days pinned: Europe/Berlin springs forward on Sunday 2026-03-29 (02:00 -> 03:00,
UTC+1 -> UTC+2); Australia/Sydney falls back on Sunday 2026-04-05 (03:00 -> 02:00,
UTC+11 -> UTC+10) and springs forward on Sunday 2026-10-04 (02:00 -> 03:00).
"""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from dripline import engine
from dripline.domain import ContactView, Outcome, PipelineSpec, RunStatus, Step
from dripline.engine import ActionResult, Recipient
from dripline.errors import ValidationFailed
from dripline.wait_until import WaitUntil
from dripline.windows import SendWindow

WEEKDAYS_9_TO_5 = SendWindow.parse({"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"})
BERLIN, SYDNEY = ZoneInfo("Europe/Berlin"), ZoneInfo("Australia/Sydney")


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


def pipeline(*steps):
    return PipelineSpec("t", "p", 1, "P", "contact", tuple(steps))


def email(number, delay=0, window=None, wait=None):
    return Step(number, "send_email", delay, "hi", {"subject": "s"}, send_window=window, wait_until=wait)


def advance(spec, step_number, scheduled_at, executed_at=None, recipient=Recipient(), result=ActionResult.succeeded()):
    return engine.after_step(
        spec, step_number, result, scheduled_at=scheduled_at, executed_at=executed_at or scheduled_at,
        failed_attempts_before=0, max_attempts=3, retry_base_seconds=60, retry_max_seconds=3600, recipient=recipient,
    )


# --- send windows --------------------------------------------------------------------------------


def test_enrolled_on_a_weekend_the_first_step_waits_for_monday_morning_after_berlins_spring_forward():
    spec = pipeline(email(1, window=WEEKDAYS_9_TO_5))
    schedule = engine.enroll(spec, utc(2026, 3, 28, 12), Recipient(BERLIN))  # Saturday, CET
    assert schedule.next_step_at == utc(2026, 3, 30, 7)  # Monday 09:00 CEST (UTC+2, not +1)


def test_a_step_inside_its_window_keeps_its_planned_time():
    spec = pipeline(email(1, window=WEEKDAYS_9_TO_5))
    assert engine.enroll(spec, utc(2026, 3, 30, 10), Recipient(BERLIN)).next_step_at == utc(2026, 3, 30, 10)


def test_advancing_into_sydneys_fall_back_day_lands_on_the_window_opening_in_the_new_offset():
    sunday_morning = SendWindow.parse({"days": ["sun"], "start": "09:00", "end": "10:00"})
    spec = pipeline(email(1), email(2, delay=3600, window=sunday_morning))
    decision = advance(spec, 1, utc(2026, 4, 4, 6), recipient=Recipient(SYDNEY))  # Saturday 17:00 AEDT
    assert decision.schedule.next_step_number == 2
    assert decision.schedule.next_step_at == utc(2026, 4, 4, 23)  # Sunday 09:00 AEST (UTC+10)


def test_a_window_opening_inside_sydneys_spring_forward_gap_opens_when_the_clocks_jump():
    night = SendWindow.parse({"days": ["sun"], "start": "02:30", "end": "04:00"})
    spec = pipeline(email(1, window=night))
    # Sunday 2026-10-04: 02:00 AEST jumps to 03:00 AEDT, i.e. 2026-10-03T16:00Z.
    assert engine.enroll(spec, utc(2026, 10, 3, 12), Recipient(SYDNEY)).next_step_at == utc(2026, 10, 3, 16)


@pytest.mark.parametrize("zone, opening", [("Asia/Kolkata", utc(2026, 11, 30, 3, 30)), ("Asia/Kathmandu", utc(2026, 11, 30, 3, 15))])
def test_zones_with_30_and_45_minute_offsets(zone, opening):
    spec = pipeline(email(1, window=WEEKDAYS_9_TO_5))
    # Monday 2026-11-30 00:00Z is 05:30 in Kolkata and 05:45 in Kathmandu: before 09:00.
    assert engine.enroll(spec, utc(2026, 11, 30), Recipient(ZoneInfo(zone))).next_step_at == opening


def test_a_window_crossing_midnight_is_open_after_midnight_and_waits_a_week_once_closed():
    friday_night = SendWindow.parse({"days": ["fri"], "start": "22:00", "end": "06:00"})
    spec = pipeline(email(1, window=friday_night))
    assert engine.enroll(spec, utc(2026, 11, 28, 3), Recipient()).next_step_at == utc(2026, 11, 28, 3)  # Sat 03:00
    assert engine.enroll(spec, utc(2026, 11, 28, 7), Recipient()).next_step_at == utc(2026, 12, 4, 22)  # next Fri


def test_the_recipient_of_a_contact_is_its_zone_falling_back_to_utc():
    def contact(tz):
        return ContactView("t", "c", "a@example.com", timezone=tz, attributes={"plan": "pro"})

    assert Recipient.of(contact("Asia/Kathmandu")) == Recipient(ZoneInfo("Asia/Kathmandu"), {"plan": "pro"})
    assert Recipient.of(contact(None)).zone == ZoneInfo("UTC")
    assert Recipient.of(contact("Mars/Olympus")).zone == ZoneInfo("UTC")


def test_a_step_whose_window_closed_before_it_ran_is_rescheduled_without_an_attempt():
    step = email(1, window=WEEKDAYS_9_TO_5)
    friday_evening = utc(2026, 3, 27, 17, 30)  # 18:30 CET: the window closed at 17:00
    closed = engine.outside_window(step, friday_evening, Recipient(BERLIN))
    assert closed is not None and closed.reopens_at == utc(2026, 3, 30, 7)  # Monday 09:00 CEST
    assert engine.outside_window(step, utc(2026, 3, 30, 8), Recipient(BERLIN)) is None
    assert engine.outside_window(email(1), friday_evening, Recipient(BERLIN)) is None

    spec = pipeline(step, email(2, delay=60))
    decision = engine.after_step(
        spec, 1, closed, scheduled_at=utc(2026, 3, 27, 15), executed_at=friday_evening, failed_attempts_before=1,
        max_attempts=3, retry_base_seconds=60, retry_max_seconds=3600,
    )
    assert decision.rescheduled and decision.history is None and decision.attempts == 1
    assert (decision.schedule.status, decision.schedule.next_step_number, decision.schedule.next_step_at) == (
        RunStatus.PENDING, 1, utc(2026, 3, 30, 7))


# --- wait-until ----------------------------------------------------------------------------------


def test_a_fixed_wall_time_is_the_recipients_and_an_explicit_offset_is_absolute():
    wall = WaitUntil.parse({"until": "2031-03-01T09:00:00"})
    absolute = WaitUntil.parse({"until": "2031-03-01T09:00:00Z"})
    spec_wall, spec_abs = pipeline(email(1, wait=wall)), pipeline(email(1, wait=absolute))
    assert engine.enroll(spec_wall, utc(2026, 11, 28), Recipient(BERLIN)).next_step_at == utc(2031, 3, 1, 8)
    assert engine.enroll(spec_abs, utc(2026, 11, 28), Recipient(BERLIN)).next_step_at == utc(2031, 3, 1, 9)


def test_an_attribute_time_with_an_offset():
    wait = WaitUntil.parse({"until_attribute": "trial_ends_at", "offset_seconds": -86400})
    spec = pipeline(email(1), email(2, wait=wait))
    new_york = Recipient(ZoneInfo("America/New_York"), {"trial_ends_at": "2031-03-10"})
    # Midnight 2031-03-10 in New York is 04:00Z (EDT since 2031-03-09); a day before.
    assert advance(spec, 1, utc(2031, 1, 1), recipient=new_york).schedule.next_step_at == utc(2031, 3, 9, 4)
    with_time = Recipient(BERLIN, {"trial_ends_at": "2031-03-10T12:00:00+00:00"})
    assert advance(spec, 1, utc(2031, 1, 1), recipient=with_time).schedule.next_step_at == utc(2031, 3, 9, 12)


@pytest.mark.parametrize("attributes", [{}, {"trial_ends_at": "soon"}, {"trial_ends_at": 20310310},
                                        {"trial_ends_at": "0001-01-01"}, {"trial_ends_at": "9999-12-31"}])
def test_a_missing_time_skips_the_step_and_plans_the_next_from_the_same_base(attributes):
    wait = WaitUntil.parse({"until_attribute": "trial_ends_at", "if_missing": "skip"})
    spec = pipeline(email(1), email(2, wait=wait), email(3, delay=600))
    decision = advance(spec, 1, utc(2031, 1, 1), recipient=Recipient(BERLIN, attributes))
    assert (decision.schedule.next_step_number, decision.schedule.next_step_at) == (3, utc(2031, 1, 1, 0, 10))
    assert decision.history.outcome is Outcome.SUCCEEDED and decision.history.step_number == 1


def test_skipping_the_last_steps_completes_the_run():
    spec = pipeline(email(1, wait=WaitUntil.parse({"until_attribute": "renews_at"})))
    assert engine.enroll(spec, utc(2031, 1, 1), Recipient()).status is RunStatus.COMPLETED


def test_a_past_time_runs_now_or_skips_as_the_step_says():
    past = {"until": "2020-01-01T00:00:00Z"}
    run_now = pipeline(email(1, wait=WaitUntil.parse({**past, "if_missing": "run_now"})))
    skip = pipeline(email(1, wait=WaitUntil.parse({**past, "if_missing": "skip"})), email(2, delay=60))
    assert engine.enroll(run_now, utc(2031, 1, 1), Recipient()).next_step_at == utc(2031, 1, 1)
    schedule = engine.enroll(skip, utc(2031, 1, 1), Recipient())
    assert (schedule.next_step_number, schedule.next_step_at) == (2, utc(2031, 1, 1, 0, 1))


def test_a_wait_until_then_waits_for_its_send_window():
    wait = WaitUntil.parse({"until_attribute": "trial_ends_at"})
    spec = pipeline(email(1, wait=wait, window=WEEKDAYS_9_TO_5))
    saturday = Recipient(BERLIN, {"trial_ends_at": "2026-03-28T10:00:00"})  # a Saturday, wall time
    assert engine.enroll(spec, utc(2026, 3, 1), saturday).next_step_at == utc(2026, 3, 30, 7)


@pytest.mark.parametrize("raw, field", [
    ({}, "wait_until"),
    ({"until": "2031-03-01T09:00:00", "until_attribute": "x"}, "wait_until"),
    ({"until": "next tuesday"}, "wait_until.until"),
    ({"until": "9999-12-31T00:00:00"}, "wait_until.until"),
    ({"until_attribute": ""}, "wait_until.until_attribute"),
    ({"until_attribute": "x", "offset_seconds": 1.5}, "wait_until.offset_seconds"),
    ({"until": "2031-03-01T09:00:00", "offset_seconds": 60}, "wait_until.offset_seconds"),
    ({"until_attribute": "x", "if_missing": "later"}, "wait_until.if_missing"),
    ({"until_attribute": "x", "at": 1}, "wait_until.at"),
    ("2031-03-01", "wait_until"),
])
def test_bad_wait_until_is_refused_naming_the_field(raw, field):
    with pytest.raises(ValidationFailed) as refused:
        WaitUntil.parse(raw)
    assert refused.value.field == field


def test_steps_with_rules_survive_the_stored_form_and_old_steps_have_none():
    step = email(2, window=WEEKDAYS_9_TO_5, wait=WaitUntil.parse({"until_attribute": "x", "offset_seconds": -60}))
    assert Step.from_dict(step.to_dict()) == step
    assert "send_window" not in email(1).to_dict() and Step.from_dict(email(1).to_dict()).wait_until is None
