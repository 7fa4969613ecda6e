"""Domain and storage values as the API's response models."""
from __future__ import annotations

from typing import Any

from dripline.api import schemas
from dripline.clock import iso
from dripline.storage.models import AutomaticPipeline, Contact, MessageRecord, PipelineRun, Suppression, Task
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
