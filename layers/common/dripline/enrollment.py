"""Enrollment: record changes (stream records) become run creations, cancellations and exits.

One function serves every record type's stream (contacts, deals: dripline.records): a
stream record's Keys say its type, and nothing here depends on which it is. Each record
is reconciled against the record's current state, so a record delivered late, twice, or
after a newer one cannot resurrect what a later change undid. Records are handled within
an EnrollmentBatch: pipeline heads and the automatic list are read once per batch, a
record's runs once per stream record, and the stats counters are written once per
pipeline at the end of the batch.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dripline import clock, engine, exits, observability, records
from dripline.domain import ACTIVE_STATUSES, Source
from dripline.errors import Conflict, NotFound
from dripline.observability import MetricUnit, logger, metrics
from dripline.records import Record
from dripline.settings import Settings
from dripline.storage import pipelines, runs, stats
from dripline.storage.models import Contact, PipelineRun

INSERT_KEY = "insert"


def assignment_key(contact_updated_at: datetime) -> str:
    """The cause of a manual assignment made by the record write at `contact_updated_at`.

    The API (assigning synchronously) and the stream (seeing the same write) derive the
    same key, so the two paths create one run between them.
    """
    return f"assign:{clock.iso(contact_updated_at)}"


@dataclass
class EnrollmentReport:
    created: list[str] = field(default_factory=list)
    cancelled: int = 0
    exited: int = 0
    skipped: list[str] = field(default_factory=list)


class EnrollmentBatch:
    """What one stream batch (or one API call) shares: pipeline heads and the automatic
    list, read once; and the stats counter changes, written once per pipeline by
    `flush()` at the end (idempotently: see dripline.storage.stats)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pipelines = pipelines.BatchCache()
        self.tally = stats.Tally()

    def __enter__(self) -> "EnrollmentBatch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()

    def flush(self) -> None:
        self.tally.flush()

    def handle(self, record) -> "EnrollmentReport":
        """One stream record of any record type's table (a Powertools DynamoDBRecord)."""
        return handle_stream_record(record, self)


def on_insert(new: Record, batch: EnrollmentBatch) -> EnrollmentReport:
    """A new record: every automatic pipeline of its team and type plus its manual pipeline_ids."""
    report = EnrollmentReport()
    current = records.load(new.team_id, new.type, new.id)
    if current is None or current.stopped:
        return report  # deleted or unsubscribed since: enrolling now would only be undone
    # The manual set as it is now: one removed since this record was written gets no run.
    manual = [p for p in dict.fromkeys(new.pipeline_ids) if p in set(current.pipeline_ids)]
    automatic = batch.pipelines.automatic_ids(new.team_id, new.type)
    wanted = [(p, Source.MANUAL if p in manual else Source.AUTOMATIC) for p in dict.fromkeys(manual + automatic)]
    results = _enroll_all(current, wanted, INSERT_KEY, batch, report)
    # A record created already meeting a pipeline's exit condition leaves it at once.
    report.exited += end_converted_runs(current.type, current.view, [r.run for r in results if r is not None], batch.tally)
    return report


def on_modify(old: Record, new: Record, batch: EnrollmentBatch) -> EnrollmentReport:
    """Added pipeline_ids get runs, removed ones lose theirs; unsubscribing cancels all.
    A change of fields or attributes ends the runs whose exit condition now holds."""
    report = EnrollmentReport()
    now = clock.now()
    current = records.load(new.team_id, new.type, new.id)
    if current is None:
        return report  # deleted: its REMOVE record cancels the runs
    if current.stopped:
        report.cancelled += runs.cancel_active_runs(new.team_id, new.type, new.id, now, "unsubscribed", tally=batch.tally)
        return report
    before, after, wanted = set(old.pipeline_ids), set(new.pipeline_ids), set(current.pipeline_ids)
    removed = (before - after) - wanted
    if removed:
        report.cancelled += runs.cancel_active_runs(
            new.team_id, new.type, new.id, now, f"removed_from_{new.type}", pipeline_ids=removed, tally=batch.tally
        )
    added = [(p, Source.MANUAL) for p in new.pipeline_ids if p not in before and p in wanted]
    results = _enroll_all(current, added, assignment_key(new.updated_at), batch, report)
    if any(r is not None for r in results) or _conditioned(old) != _conditioned(new):  # else no condition can have changed: no runs query
        candidates = runs.runs_of(new.team_id, new.type, new.id)
        report.exited += end_converted_runs(current.type, current.view, candidates, batch.tally)
    return report


def _conditioned(record: Record) -> dict[str, Any]:
    """What an exit condition can see of the record."""
    return exits.record_of(record.type, record.view)


def end_converted_runs(pipelineable_type: str, view: Any, candidates: Iterable[PipelineRun], tally: stats.Tally) -> int:
    """End as `exited` each active run among `candidates` whose pipeline version's
    exit_when holds for the record `view` (read just now). Returns how many ended.

    Each end is a conditional write on the status read (dripline.storage.runs.exit_run),
    so a redelivered record, or a run the processor claimed meanwhile, is safe.
    """
    record = exits.record_of(pipelineable_type, view)
    now = clock.now()
    ended = 0
    for run in candidates:
        if run.status not in ACTIVE_STATUSES:
            continue
        try:
            spec = pipelines.get_version(run.team_id, run.pipeline_id, int(run.pipeline_version))
        except NotFound:
            logger.warning("run without its pipeline version", extra={"run_id": run.run_id})
            continue
        decided = engine.exit_check(spec, record)
        if decided is not None and runs.exit_run(run, now, decided.exit_match, tally):
            ended += 1
            metrics.add_metric(name="RunsExited", unit=MetricUnit.Count, value=1)
    return ended


def on_remove(old: Record, batch: EnrollmentBatch) -> EnrollmentReport:
    cancelled = runs.cancel_active_runs(old.team_id, old.type, old.id, clock.now(), f"{old.type}_deleted", tally=batch.tally)
    return EnrollmentReport(cancelled=cancelled)


def assign(contact: Contact, pipeline_id: str, settings: Settings) -> PipelineRun:
    """Manual assignment through the API, answered with the run (Conflict if one is active).

    `contact` is the contact as written by the assignment (its updated_at names the cause).
    """
    report = EnrollmentReport()
    with EnrollmentBatch(settings) as batch:
        record = records.CONTACT.wrap(contact)
        (result,) = _enroll_all(record, [(pipeline_id, Source.MANUAL)], assignment_key(contact.updated_at), batch, report)
    if result is None:
        raise NotFound(f"pipeline {pipeline_id} not found")
    if not result.created and result.reason == "active":
        raise Conflict(f"contact already has an active run of pipeline {pipeline_id}")
    return result.run


def _enroll_all(
    record: Record, wanted: list[tuple[str, Source]], key: str, batch: EnrollmentBatch, report: EnrollmentReport
) -> list[runs.EnrollResult | None]:
    """Enroll the record in each wanted pipeline (of its type), reading its runs once for all of them."""
    existing: list[PipelineRun] | None = None
    results: list[runs.EnrollResult | None] = []
    for pipeline_id, source in wanted:
        spec = batch.pipelines.active_pipeline(record.team_id, pipeline_id)
        if spec is None or spec.model_type != record.type:
            logger.warning("pipeline not enrollable", extra={"pipeline_id": pipeline_id, "pipelineable_type": record.type, "pipelineable_id": record.id})
            report.skipped.append(pipeline_id)
            results.append(None)
            continue
        if existing is None:
            existing = runs.runs_of(record.team_id, record.type, record.id)
        now = clock.now()
        result = runs.create_run(
            pipeline=spec,
            pipelineable_type=record.type,
            pipelineable_id=record.id,
            source=source,
            enrollment_key=key,
            schedule=engine.enroll(spec, now, engine.Recipient.of(record)),
            now=now,
            due_shards=batch.settings.due_shards,
            tally=batch.tally,
            existing=existing,
        )
        if result.created:
            existing.append(result.run)
            report.created.append(result.run.run_id)
            metrics.add_metric(name="RunsEnrolled", unit=MetricUnit.Count, value=1)
            logger.info("run enrolled", extra={"run_id": result.run.run_id, "pipeline_id": pipeline_id, "source": source.value})
        else:
            report.skipped.append(pipeline_id)
            metrics.add_metric(name="EnrollmentsDeduplicated", unit=MetricUnit.Count, value=1)
        results.append(result)
    return results


def handle_stream_record(record, batch: EnrollmentBatch) -> EnrollmentReport:
    """One stream record (a Powertools DynamoDBRecord) of any record type's table."""
    change = record.dynamodb
    name = record.event_name.name if record.event_name else None
    if name not in ("INSERT", "MODIFY", "REMOVE"):
        raise ValueError(f"unexpected stream event {record.event_name!r}")
    kind = records.type_of_keys(change.raw_event.get("Keys") or {})
    new = records.from_stream_image(kind, change.raw_event["NewImage"]) if name != "REMOVE" else None
    old = records.from_stream_image(kind, change.raw_event["OldImage"]) if name != "INSERT" else None
    subject = new or old
    # The cause: the request that wrote this version of the record; a deletion stores none
    # (a DeleteItem writes no attribute), so its record's own id stands in.
    cause = (new.correlation_id if new is not None else None) or record.event_id
    with observability.scope(correlation_id=cause, team_id=subject.team_id, **{f"{kind.name}_id": subject.id}):
        if new is not None and old is None:
            report = on_insert(new, batch)
        elif new is not None:
            report = on_modify(old, new, batch)
        else:
            report = on_remove(old, batch)
        logger.info(
            "enrollment record processed",
            # Not "created": that name is reserved by logging.LogRecord.
            extra={
                "event": name,
                "pipelineable_type": kind.name,
                "run_ids": report.created,
                "runs_cancelled": report.cancelled,
                "runs_exited": report.exited,
                "skipped": report.skipped,
            },
        )
    return report
