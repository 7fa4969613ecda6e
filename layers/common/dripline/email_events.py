"""SES email events (delivered, bounced, complained, opened, clicked) -> stats and suppression;
Send events -> the delivery record of the email's step (dripline.delivery).

SES publishes each event of a message sent through the configuration set to EventBridge.
The message's `run` tag leads to the run, hence its team, pipeline and contact. Each
(message, event type) is counted once in the pipeline's `emails` stats; a permanent
bounce or a complaint also puts the address on the team's suppression list (whichever
contact carries it later) and unsubscribes the contact, which (through the contacts
stream, like any unsubscribe) cancels its active runs and stops all email to it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import PutError

from dripline import clock, observability
from dripline.errors import NotFound
from dripline.observability import logger
from dripline.storage import contacts, deliveries, runs, stats, suppressions
from dripline.storage.models import EmailEvent, email_event_sk
from dripline.storage.util import is_condition_failure

# SES eventType -> the Stats `emails` counter it adds to.
COUNTERS = {"Delivery": "delivered", "Bounce": "bounced", "Complaint": "complained", "Open": "opened", "Click": "clicked"}
# SES accepted the email (not counted: the processor counts `sent`; see dripline.delivery).
SEND = "Send"
MARKER_DAYS = 30  # SES redelivers within hours; a month of markers is plenty


@dataclass(frozen=True)
class EmailEventReport:
    outcome: str  # counted | duplicate | recorded | ignored | unknown_run
    suppressed: bool = False


def handle(detail: dict[str, Any]) -> EmailEventReport:
    """One SES event record (the EventBridge event's `detail`)."""
    event_type = detail.get("eventType") or detail.get("notificationType")
    mail = detail.get("mail") or {}
    message_id = mail.get("messageId")
    run_ids = (mail.get("tags") or {}).get("run") or []
    if event_type not in COUNTERS and event_type != SEND or not message_id or not run_ids:
        return EmailEventReport("ignored")  # another event type, or not a Dripline email
    try:
        run = runs.get_run_by_id(run_ids[0])
    except NotFound:
        return EmailEventReport("unknown_run")
    observability.add_keys(team_id=run.team_id, pipeline_id=run.pipeline_id, contact_id=run.pipelineable_id)
    if event_type == SEND:
        return _record_send(run, mail, message_id)
    # Suppress first: it is idempotent, so a retry after any failure below still gets
    # there, whereas a marker written first would make the retry a "duplicate".
    suppressed = _suppresses(detail, event_type) and _suppress(run.team_id, run.pipelineable_id, mail, event_type)
    if not _record_once(run, message_id, event_type, _occurred_at(detail, event_type)):
        return EmailEventReport("duplicate", suppressed)
    stats.email_event(run.team_id, run.pipeline_id, COUNTERS[event_type])
    return EmailEventReport("counted", suppressed)


def _record_send(run, mail: dict[str, Any], message_id: str) -> EmailEventReport:
    """SES accepted the email of (run, step): what settles a step whose outcome was lost."""
    steps = (mail.get("tags") or {}).get("step") or []
    if not steps or not str(steps[0]).isdigit():
        return EmailEventReport("ignored")
    deliveries.record_send(run.team_id, run.run_id, int(steps[0]), message_id, clock.now())
    return EmailEventReport("recorded")


def _suppresses(detail: dict[str, Any], event_type: str) -> bool:
    """A hard bounce or a complaint: this address must get no more email from us."""
    if event_type == "Complaint":
        return True
    return event_type == "Bounce" and (detail.get("bounce") or {}).get("bounceType") == "Permanent"


def _suppress(team_id: str, contact_id: str, mail: dict[str, Any], event_type: str) -> bool:
    """The address the email went to joins the suppression list; its contact unsubscribes."""
    reason = "complaint" if event_type == "Complaint" else "bounce"
    for address in mail.get("destination") or []:
        suppressions.suppress(team_id, address, reason, clock.now(), contact_id)
    return _unsubscribe(team_id, contact_id)


def _unsubscribe(team_id: str, contact_id: str) -> bool:
    current = contacts.find_contact(team_id, contact_id)
    if current is None or current.unsubscribed:
        return False
    try:
        contacts.modify_contact(team_id, contact_id, lambda _current: {"unsubscribed": True}, clock.now())
    except NotFound:
        return False
    logger.info("contact suppressed after a bounce or complaint", extra={"team_id": team_id, "contact_id": contact_id})
    return True


def _record_once(run, message_id: str, event_type: str, occurred_at: datetime) -> bool:
    marker = EmailEvent(
        run.team_id,
        email_event_sk(message_id, event_type),
        pipeline_id=run.pipeline_id,
        run_id=run.run_id,
        contact_id=run.pipelineable_id,
        event_type=event_type,
        occurred_at=occurred_at,
        expires_at=clock.now() + timedelta(days=MARKER_DAYS),
    )
    try:
        marker.save(condition=EmailEvent.sk.does_not_exist())
    except PutError as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def _occurred_at(detail: dict[str, Any], event_type: str) -> datetime:
    section = detail.get(event_type.lower()) or {}
    stamp = section.get("timestamp") or (detail.get("mail") or {}).get("timestamp")
    if stamp:
        try:
            return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            pass
    return clock.now()
