"""A run's history in one compact string: lossless for what it keeps, bounded in size."""
from datetime import datetime, timedelta, timezone

from dripline.domain import StepRecord
from dripline.storage.models import PipelineRun
from dripline.storage.runs import HISTORY_DETAIL_BUDGET, compact_history

T0 = datetime(2026, 3, 2, 9, 0, 0, 123000, tzinfo=timezone.utc)
ATTRIBUTE = PipelineRun.history


def email_step(n: int) -> StepRecord:
    planned = T0 + timedelta(hours=n)
    return StepRecord(n, "succeeded", planned, planned + timedelta(seconds=42, milliseconds=7),
                      detail={"message_id": f"0100018c-{n:04d}-4f0e-a1b2-000000000000-000000", "to": "ada@example.com"})


def test_records_round_trip_with_their_attempts_errors_and_details():
    records = [
        email_step(1),
        StepRecord(2, "failed", T0 + timedelta(days=1), T0 + timedelta(days=1, minutes=5), attempt=5,
                   error="Throttling: slow; down | now", detail=None),
        StepRecord(3, "skipped", T0 + timedelta(days=2), T0 + timedelta(days=2), error="unsubscribed"),
    ]
    stored = ATTRIBUTE.serialize(records)
    assert ATTRIBUTE.deserialize(stored) == records
    assert stored.startswith("1s") and ";2f82800000+300000|[5," in stored  # 23 h after step 1


def test_a_plain_step_costs_about_sixteen_bytes():
    plain = [StepRecord(n, "succeeded", T0 + timedelta(hours=n), T0 + timedelta(hours=n, seconds=30)) for n in range(1, 21)]
    stored = ATTRIBUTE.serialize(plain)
    assert (len(stored) - 14) / 19 <= 17  # the first entry carries the absolute epoch ms


def test_old_details_are_dropped_first_to_stay_within_the_budget_and_the_newest_keeps_its_own():
    records = compact_history([email_step(n) for n in range(1, 21)])
    assert len(ATTRIBUTE.serialize(records)) <= HISTORY_DETAIL_BUDGET + 120
    assert records[-1].detail is not None and records[0].detail is None
    assert [r.step_number for r in records] == list(range(1, 21))  # every step stays recorded
