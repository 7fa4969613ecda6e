"""Enrollment: contact changes (stream records) become run creations and cancellations.

Each record is reconciled against the contact's current state, so a record delivered
late, twice, or after a newer one cannot resurrect what a later change undid.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from dripline import clock, engine
from dripline.domain import Source
from dripline.errors import Conflict, NotFound
from dripline.observability import MetricUnit, logger, metrics
from dripline.settings import Settings
from dripline.storage import contacts, pipelines, runs
from dripline.storage.models import Contact, PipelineRun

CONTACT = "contact"
INSERT_KEY = "insert"


def assignment_key(contact_updated_at: datetime) -> str:
    """The cause of a manual assignment made by the contact write at `contact_updated_at`.

    The API (assigning synchronously) and the stream (seeing the same write) derive the
    same key, so the two paths create one run between them.
    """
    return f"assign:{clock.iso(contact_updated_at)}"


@dataclass
class EnrollmentReport:
    created: list[str] = field(default_factory=list)
    cancelled: int = 0
    skipped: list[str] = field(default_factory=list)


def on_insert(new: Contact, settings: Settings) -> EnrollmentReport:
    """A new contact: every automatic pipeline of its team plus its manual pipeline_ids."""
    report = EnrollmentReport()
    current = contacts.find_contact(new.team_id, new.contact_id)
    if current is None or current.unsubscribed:
        return report  # deleted or unsubscribed since: enrolling now would only be undone
    # The manual set as it is now: one removed since this record was written gets no run.
    manual = [p for p in dict.fromkeys(new.pipeline_ids or []) if p in set(current.pipeline_ids or [])]
    automatic = [a.pipeline_id for a in pipelines.list_automatic(new.team_id, CONTACT)]
    for pipeline_id in dict.fromkeys(manual + automatic):
        source = Source.MANUAL if pipeline_id in manual else Source.AUTOMATIC
        _enroll(new, pipeline_id, source, INSERT_KEY, settings, report)
    return report


def on_modify(old: Contact, new: Contact, settings: Settings) -> EnrollmentReport:
    """Added pipeline_ids get runs, removed ones lose theirs; unsubscribing cancels all."""
    report = EnrollmentReport()
    now = clock.now()
    current = contacts.find_contact(new.team_id, new.contact_id)
    if current is None:
        return report  # deleted: its REMOVE record cancels the runs
    if current.unsubscribed:
        report.cancelled += runs.cancel_active_runs(new.team_id, CONTACT, new.contact_id, now, "unsubscribed")
        return report
    before, after, wanted = set(old.pipeline_ids or []), set(new.pipeline_ids or []), set(current.pipeline_ids or [])
    removed = (before - after) - wanted
    if removed:
        report.cancelled += runs.cancel_active_runs(
            new.team_id, CONTACT, new.contact_id, now, "removed_from_contact", pipeline_ids=removed
        )
    for pipeline_id in [p for p in (new.pipeline_ids or []) if p not in before and p in wanted]:
        _enroll(new, pipeline_id, Source.MANUAL, assignment_key(new.updated_at), settings, report)
    return report


def on_remove(old: Contact) -> EnrollmentReport:
    cancelled = runs.cancel_active_runs(old.team_id, CONTACT, old.contact_id, clock.now(), "contact_deleted")
    return EnrollmentReport(cancelled=cancelled)


def assign(contact: Contact, pipeline_id: str, settings: Settings) -> PipelineRun:
    """Manual assignment through the API, answered with the run (Conflict if one is active).

    `contact` is the contact as written by the assignment (its updated_at names the cause).
    """
    report = EnrollmentReport()
    result = _enroll(contact, pipeline_id, Source.MANUAL, assignment_key(contact.updated_at), settings, report)
    if result is None:
        raise NotFound(f"pipeline {pipeline_id} not found")
    if not result.created and result.reason == "active":
        raise Conflict(f"contact already has an active run of pipeline {pipeline_id}")
    return result.run


def _enroll(
    contact: Contact, pipeline_id: str, source: Source, key: str, settings: Settings, report: EnrollmentReport
) -> runs.EnrollResult | None:
    spec = pipelines.active_pipeline(contact.team_id, pipeline_id)
    if spec is None or spec.model_type != CONTACT:
        logger.warning("pipeline not enrollable", extra={"pipeline_id": pipeline_id, "contact_id": contact.contact_id})
        report.skipped.append(pipeline_id)
        return None
    now = clock.now()
    result = runs.create_run(
        pipeline=spec,
        pipelineable_type=CONTACT,
        pipelineable_id=contact.contact_id,
        source=source,
        enrollment_key=key,
        schedule=engine.enroll(spec, now),
        now=now,
        due_shards=settings.due_shards,
    )
    if result.created:
        report.created.append(result.run.run_id)
        metrics.add_metric(name="RunsEnrolled", unit=MetricUnit.Count, value=1)
    else:
        report.skipped.append(pipeline_id)
        metrics.add_metric(name="EnrollmentsDeduplicated", unit=MetricUnit.Count, value=1)
    return result


def handle_stream_record(record, settings: Settings) -> EnrollmentReport:
    """One contacts-table stream record (a Powertools DynamoDBRecord)."""
    change = record.dynamodb
    name = record.event_name.name if record.event_name else None
    if name == "INSERT":
        report = on_insert(contacts.contact_from_stream_image(change.raw_event["NewImage"]), settings)
    elif name == "MODIFY":
        report = on_modify(
            contacts.contact_from_stream_image(change.raw_event["OldImage"]),
            contacts.contact_from_stream_image(change.raw_event["NewImage"]),
            settings,
        )
    elif name == "REMOVE":
        report = on_remove(contacts.contact_from_stream_image(change.raw_event["OldImage"]))
    else:
        raise ValueError(f"unexpected stream event {record.event_name!r}")
    logger.info(
        "enrollment record processed",
        # Not "created": that name is reserved by logging.LogRecord.
        extra={"event": name, "runs_created": len(report.created), "runs_cancelled": report.cancelled, "skipped": report.skipped},
    )
    return report
