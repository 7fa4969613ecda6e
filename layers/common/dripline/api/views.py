"""Domain and storage values as the API's response models."""
from __future__ import annotations

from typing import Any

from dripline.api import schemas
from dripline.clock import iso
from dripline.storage.models import AutomaticPipeline, Contact, Deal, MessageRecord, PipelineRun, Suppression, Task
from dripline.storage import messages, runs
from dripline.storage.pipelines import Pipeline
from dripline.storage.util import plain


def pipeline(p: Pipeline) -> schemas.PipelineOut:
    return schemas.PipelineOut(
        pipeline_id=p.pipeline_id,
        name=p.spec.name,
        model_type=p.spec.model_type,
        version=p.spec.version,
        automatic=p.automatic,
        status=p.status,
        steps=[schemas.StepOut(**s.to_dict()) for s in p.spec.steps],
        exit_when=p.spec.exit_when.to_dict() if p.spec.exit_when is not None else None,
        created_at=iso(p.created_at),
        updated_at=iso(p.updated_at),
    )


def automatic(item: AutomaticPipeline) -> schemas.AutomaticOut:
    return schemas.AutomaticOut(pipeline_id=item.pipeline_id, model_type=item.model_type, created_at=iso(item.created_at))


def contact(c: Contact) -> schemas.ContactOut:
    return schemas.ContactOut(
        contact_id=c.contact_id,
        email=c.email,
        first_name=c.first_name,
        last_name=c.last_name,
        timezone=c.timezone,
        attributes=plain(c.attributes) or {},
        pipeline_ids=list(c.pipeline_ids or []),
        unsubscribed=bool(c.unsubscribed),
        created_at=iso(c.created_at),
        updated_at=iso(c.updated_at),
    )


def deal(d: Deal) -> schemas.DealOut:
    return schemas.DealOut(
        deal_id=d.deal_id,
        name=d.name,
        value=d.value,
        stage=d.stage,
        owner_email=d.owner_email,
        contact_ids=list(d.contact_ids or []),
        attributes=plain(d.attributes) or {},
        created_at=iso(d.created_at),
        updated_at=iso(d.updated_at),
    )


def suppression(s: Suppression) -> schemas.SuppressionOut:
    return schemas.SuppressionOut(email=s.email, reason=s.reason, created_at=iso(s.created_at), contact_id=s.contact_id)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def run(r: PipelineRun) -> schemas.RunOut:
    return schemas.RunOut(
        run_id=r.run_id,
        pipeline_id=r.pipeline_id,
        pipeline_version=int(r.pipeline_version),
        pipelineable_type=r.pipelineable_type,
        pipelineable_id=r.pipelineable_id,
        source=r.source,
        status=r.status,
        current_step=_int(r.current_step),
        next_step_number=_int(r.next_step_number),
        next_step_at=iso(r.next_step_at),
        created_at=iso(r.created_at),
        updated_at=iso(r.updated_at),
        completed_at=iso(r.completed_at),
        last_error=r.last_error,
        exit_match=_exit_match(r),
        history=[
            schemas.HistoryOut(
                step_number=int(h.step_number),
                action_type=h.action_type,
                outcome=h.outcome,
                scheduled_at=iso(h.scheduled_at),
                executed_at=iso(h.executed_at),
                attempt=int(h.attempt or 1),
                detail=h.detail,
                error=h.error,
            )
            for h in runs.history_of(r)
        ],
    )


def _exit_match(r: PipelineRun) -> schemas.ExitMatchOut | None:
    if not r.exit_match:
        return None
    return schemas.ExitMatchOut(path=r.exit_match, condition=runs.exit_condition_of(r))


def task(t: Task) -> schemas.TaskOut:
    return schemas.TaskOut(
        task_id=t.task_id,
        contact_id=t.contact_id,
        # Tasks written before deals existed name only their contact.
        pipelineable_type=t.pipelineable_type or "contact",
        pipelineable_id=t.pipelineable_id or t.contact_id,
        run_id=t.run_id,
        pipeline_id=t.pipeline_id,
        step_number=int(t.step_number),
        title=t.title,
        description=t.description,
        assignee=t.assignee,
        due_at=iso(t.due_at),
        status=t.status,
        created_at=iso(t.created_at),
    )


def _at(value) -> str | None:
    return iso(value) if value is not None else None


def _plain_rendered(rendered: dict[str, Any] | None) -> dict[str, Any] | None:
    """A preview's values as JSON (a task's due_at is a datetime)."""
    if rendered is None:
        return None
    return {k: iso(v) if hasattr(v, "tzinfo") and hasattr(v, "isoformat") else v for k, v in rendered.items()}


def preview(spec, start, steps) -> schemas.PreviewOut:
    return schemas.PreviewOut(
        pipeline_id=spec.pipeline_id,
        version=spec.version,
        start=iso(start),
        steps=[
            schemas.StepPreviewOut(
                step_number=s.step_number, action_type=s.action_type, scheduled_at=_at(s.scheduled_at),
                runs_at=_at(s.runs_at), outcome=s.outcome, error=s.error, rendered=_plain_rendered(s.rendered),
            )
            for s in steps
        ],
    )


def simulation(spec, timeline) -> schemas.SimulationOut:
    return schemas.SimulationOut(
        pipeline_id=spec.pipeline_id,
        version=spec.version,
        start=iso(timeline.start),
        status=timeline.status,
        ended_at=_at(timeline.ended_at),
        attempts=[
            schemas.AttemptOut(
                step_number=a.step_number, action_type=a.action_type, attempt=a.attempt, scheduled_at=iso(a.scheduled_at),
                executed_at=iso(a.executed_at), outcome=a.outcome, error=a.error, retry_in_seconds=a.retry_in_seconds,
                next_at=_at(a.next_at),
            )
            for a in timeline.attempts
        ],
        passed_over=list(timeline.passed_over),
        not_reached=list(timeline.not_reached),
    )


def message(m: MessageRecord) -> schemas.MessageOut:
    latest = messages.latest_event(m)
    return schemas.MessageOut(
        message_id=m.message_id,
        run_id=m.run_id,
        pipeline_id=m.pipeline_id,
        step_number=_int(m.step_number),
        sent_at=iso(m.sent_at),
        latest_event=schemas.EmailEventAt(type=latest[0], at=iso(latest[1])) if latest else None,
        events={event: iso(when) for event, when in messages.events_of(m).items()},
    )
