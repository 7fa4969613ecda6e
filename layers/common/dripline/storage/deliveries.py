"""Delivery records of email steps (see dripline.delivery): SES Send events in, verdicts out."""
from __future__ import annotations

from datetime import datetime, timedelta

from pynamodb.exceptions import DoesNotExist

from dripline.storage.models import DeliveryRecord, delivery_sk

RECORD_DAYS = 30  # an outcome is settled within minutes; a month is plenty


def record_send(team_id: str, run_id: str, step_number: int, message_id: str, now: datetime) -> None:
    """SES accepted `message_id` for this step. Adding to a set: a redelivered event adds nothing."""
    record = DeliveryRecord(team_id, delivery_sk(run_id, step_number))
    record.update(
        actions=[
            DeliveryRecord.run_id.set(run_id),
            DeliveryRecord.step_number.set(step_number),
            DeliveryRecord.message_ids.add({message_id}),
            DeliveryRecord.expires_at.set(now + timedelta(days=RECORD_DAYS)),
        ]
    )


def find(team_id: str, run_id: str, step_number: int) -> DeliveryRecord | None:
    try:
        return DeliveryRecord.get(team_id, delivery_sk(run_id, step_number), consistent_read=True)
    except DoesNotExist:
        return None


def mark_unknown(team_id: str, run_id: str, step_number: int, now: datetime) -> DeliveryRecord:
    """The step's outcome is unknown from `now` on, unless an earlier call said so first.

    One UpdateItem both anchors the settle window (if_not_exists: a repeat, or the SDK
    retrying a lost answer, keeps the first moment) and reads the Send events so far.
    """
    record = DeliveryRecord(team_id, delivery_sk(run_id, step_number))
    record.update(
        actions=[
            DeliveryRecord.run_id.set(run_id),
            DeliveryRecord.step_number.set(step_number),
            DeliveryRecord.unknown_since.set(DeliveryRecord.unknown_since | now),
            DeliveryRecord.expires_at.set(now + timedelta(days=RECORD_DAYS)),
        ]
    )
    return record
