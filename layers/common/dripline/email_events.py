"""SES email events (delivered, bounced, complained, opened, clicked) -> the contact's
delivery log, stats and suppression; Send events -> the delivery log and the delivery
record of the email's step (dripline.delivery).

SES publishes each event of a message sent through the configuration set to EventBridge.
The message's `run` tag leads to the run, hence its team, pipeline and contact. Each
(message, event type) is recorded once in the contact's delivery log (storage.messages)
and, when new, counted in the pipeline's `emails` stats; a permanent bounce or a
complaint also puts the address on the team's suppression list (whichever contact
carries it later) and unsubscribes the contact, which (through the contacts stream,
like any unsubscribe) cancels its active runs and stops all email to it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dripline import clock, observability
from dripline.email_tags import team_of
from dripline.errors import NotFound
from dripline.observability import logger
from dripline import records
from dripline.storage import contacts, deliveries, messages, runs, stats, suppressions

# SES eventType -> the Stats `emails` counter it adds to.
COUNTERS = {"Delivery": "delivered", "Bounce": "bounced", "Complaint": "complained", "Open": "opened", "Click": "clicked"}
# SES accepted the email (not counted: the processor counts `sent`; see dripline.delivery).
SEND = "Send"


@dataclass(frozen=True)
class EmailEventReport:
    outcome: str  # counted | duplicate | recorded | ignored | unknown_run
    suppressed: bool = False


def handle(detail: dict[str, Any]) -> EmailEventReport:
    """One SES event record (the EventBridge event's `detail`)."""
    event_type = detail.get("eventType") or detail.get("notificationType")
    mail = detail.get("mail") or {}
    message_id = mail.get("messageId")
    tags = mail.get("tags") or {}
    run_ids = tags.get("run") or []
    team_id = team_of(tags)
    if event_type not in COUNTERS and event_type != SEND or not message_id or not run_ids or not team_id:
        return EmailEventReport("ignored")  # another event type, or not a Dripline email
    try:
        run = runs.get_run(team_id, run_ids[0])
    except NotFound:
        return EmailEventReport("unknown_run")
    observability.add_keys(team_id=run.team_id, pipeline_id=run.pipeline_id, contact_id=run.pipelineable_id)
    steps = (mail.get("tags") or {}).get("step") or []
    step_number = int(steps[0]) if steps and str(steps[0]).isdigit() else None
    if event_type == SEND:
        return _record_send(run, mail, message_id, step_number)
    # Suppress first: it is idempotent, so a retry after any failure below still gets
    # there, whereas an event recorded first would make the retry a "duplicate".
    suppressed = _suppresses(detail, event_type) and _suppress(run.team_id, _contact_of(run, mail), mail, event_type)
    if not _log(run, mail, message_id, step_number, COUNTERS[event_type], _occurred_at(detail, event_type)):
        return EmailEventReport("duplicate", suppressed)
    stats.email_event(run.team_id, run.pipeline_id, COUNTERS[event_type])
    return EmailEventReport("counted", suppressed)


def _record_send(run, mail: dict[str, Any], message_id: str, step_number: int | None) -> EmailEventReport:
    """SES accepted the email of (run, step): the contact's delivery log gains it, and it
    settles a step whose outcome was lost (a second write, off the step path)."""
    if step_number is None:
        return EmailEventReport("ignored")
    deliveries.record_send(run.team_id, run.run_id, step_number, message_id, clock.now())
    _log(run, mail, message_id, step_number, messages.SENT, _sent_at(mail))
    return EmailEventReport("recorded")


def _contact_of(run, mail: dict[str, Any]) -> str | None:
    """The contact the email went to: its `contact` tag (a deal's contacts), else the run's
    contact; None for an email to no contact (a deal's owner)."""
    tagged = (mail.get("tags") or {}).get("contact") or []
    if tagged:
        return str(tagged[0])
    return run.pipelineable_id if run.pipelineable_type == records.CONTACT.name else None


def _log(run, mail: dict[str, Any], message_id: str, step_number: int | None, event: str, occurred_at: datetime) -> bool:
    """Record the event in the recipient contact's delivery log; False if it was recorded before.

    An email to no contact (a deal's owner) is logged under `<type>#<id>` of the run's
    record: it still needs the log item that makes a redelivered event count once."""
    return messages.record(
        run.team_id,
        contact_id=_contact_of(run, mail) or f"{run.pipelineable_type}#{run.pipelineable_id}",
        pipeline_id=run.pipeline_id,
        run_id=run.run_id,
        step_number=step_number,
        message_id=message_id,
        sent_at=_sent_at(mail),
        event=event,
        occurred_at=occurred_at,
        now=clock.now(),
    )


def _suppresses(detail: dict[str, Any], event_type: str) -> bool:
    """A hard bounce or a complaint: this address must get no more email from us."""
    if event_type == "Complaint":
        return True
    return event_type == "Bounce" and (detail.get("bounce") or {}).get("bounceType") == "Permanent"


def _suppress(team_id: str, contact_id: str | None, mail: dict[str, Any], event_type: str) -> bool:
    """The address the email went to joins the suppression list; its contact (if it went to
    one: not a deal's owner) unsubscribes. Whether a contact was unsubscribed now."""
    reason = "complaint" if event_type == "Complaint" else "bounce"
    for address in mail.get("destination") or []:
        suppressions.suppress(team_id, address, reason, clock.now(), contact_id)
    return contact_id is not None and _unsubscribe(team_id, contact_id)


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


def _occurred_at(detail: dict[str, Any], event_type: str) -> datetime:
    section = detail.get(event_type.lower()) or {}
    return _parsed(section.get("timestamp")) or _sent_at(detail.get("mail") or {})


def _sent_at(mail: dict[str, Any]) -> datetime:
    """When SES accepted the message: `mail.timestamp`, the same in every event of it."""
    return _parsed(mail.get("timestamp")) or clock.now()


def _parsed(stamp: Any) -> datetime | None:
    if not isinstance(stamp, str):
        return None
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
