"""The delivery log: per contact, each email SES accepted and the SES events seen for it.

Written by ses_events (dripline.email_events) from SES's own events, never on the step
path: a step's cost stays claim + action + finish. One UpdateItem per event, which is
also the event's once-marker (see `record`).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from pynamodb.exceptions import UpdateError

from dripline.storage.models import MessageRecord, message_sk
from dripline.storage.util import is_condition_failure

# SES events -> the attribute holding the time it was first seen ("sent": the Send event).
EVENT_ATTRIBUTES = {
    "delivered": MessageRecord.delivered_at,
    "bounced": MessageRecord.bounced_at,
    "complained": MessageRecord.complained_at,
    "opened": MessageRecord.opened_at,
    "clicked": MessageRecord.clicked_at,
}
SENT = "sent"
KEEP_DAYS = 400  # the log answers "what did we send Ada this year?"


def record(
    team_id: str,
    *,
    contact_id: str,
    pipeline_id: str,
    run_id: str,
    step_number: int | None,
    message_id: str,
    sent_at: datetime,
    event: str,
    occurred_at: datetime,
    now: datetime,
) -> bool:
    """Record one SES event of a message; False if that event was recorded before.

    `sent_at` is SES's `mail.timestamp`, the same in every event of a message, so every
    event finds the one item. A `Send` event only makes sure the item exists; any other
    event sets its time on the condition that none is set yet: a redelivered event fails
    the condition (False). So does the SDK's retry of a write whose answer was lost: that
    event is then taken as recorded before and not counted (at most once, never twice).
    """
    item = MessageRecord(team_id, message_sk(contact_id, sent_at, message_id))
    actions = [
        MessageRecord.message_id.set(message_id),
        MessageRecord.contact_id.set(contact_id),
        MessageRecord.pipeline_id.set(pipeline_id),
        MessageRecord.run_id.set(run_id),
        MessageRecord.sent_at.set(sent_at),
        MessageRecord.expires_at.set(now + timedelta(days=KEEP_DAYS)),
    ]
    if step_number is not None:
        actions.append(MessageRecord.step_number.set(step_number))
    if event == SENT:
        item.update(actions=actions)
        return True
    attribute = EVENT_ATTRIBUTES[event]
    try:
        item.update(actions=[*actions, attribute.set(occurred_at)], condition=attribute.does_not_exist())
    except UpdateError as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def list_for_contact(
    team_id: str, contact_id: str, *, limit: int = 50, start_key: dict | None = None
) -> tuple[list[MessageRecord], dict | None]:
    """A contact's emails, newest first, and the key to continue from (None at the end)."""
    page = MessageRecord.query(
        team_id,
        MessageRecord.sk.startswith(message_sk(contact_id)),
        limit=limit,
        last_evaluated_key=start_key,
        scan_index_forward=False,
    )
    return list(page), page.last_evaluated_key


def events_of(item: MessageRecord) -> dict[str, datetime]:
    """The SES events seen for the message (after its acceptance), with their times."""
    return {event: when for event, attribute in EVENT_ATTRIBUTES.items() if (when := getattr(item, attribute.attr_name)) is not None}


def latest_event(item: MessageRecord) -> tuple[str, datetime] | None:
    """The most recent of them, or None."""
    seen = events_of(item)
    if not seen:
        return None
    event = max(seen, key=lambda name: seen[name])
    return event, seen[event]
