"""create_task: a follow-up task about the run's record, a contact or a deal (title, description, assignee, due date)."""
from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from dripline import templating
from dripline.actions import ActionContext, register
from dripline.domain import Step
from dripline.engine import ActionResult
from dripline.errors import ValidationFailed
from dripline.storage import tasks
from dripline.storage.models import Task

MAX_DUE_IN_SECONDS = 366 * 86400
DEFAULT_TITLE = "Follow up"  # when the message renders empty for this contact


class CreateTask:
    name = "create_task"
    # The task id is derived from (run, step): running the step again finds the task.
    idempotent = True

    def validate(self, step: Step) -> None:
        title = step.data.get("title")
        if title is not None and (not isinstance(title, str) or not title.strip()):
            raise ValidationFailed("data.title", "must be a non-empty string")
        if title is None and not step.message.strip():
            raise ValidationFailed("data.title", "create_task needs data.title or a message")
        assignee = step.data.get("assignee")
        if assignee is not None and not isinstance(assignee, str):
            raise ValidationFailed("data.assignee", "must be a string")
        due = step.data.get("due_in_seconds")
        if due is not None and (isinstance(due, bool) or not isinstance(due, int) or not 0 <= due <= MAX_DUE_IN_SECONDS):
            raise ValidationFailed("data.due_in_seconds", f"must be an integer 0..{MAX_DUE_IN_SECONDS}")
        if title is not None:
            templating.check(title, "data.title")
        templating.check(step.message, "message")

    def execute(self, ctx: ActionContext) -> ActionResult:
        fields = self.preview(ctx)
        record = ctx.record
        task_id = uuid.uuid5(uuid.NAMESPACE_URL, f"dripline:task:{ctx.run.run_id}:{ctx.step.step_number}").hex
        task, created = tasks.create_task(
            Task(
                record.team_id,
                task_id,
                contact_key=tasks.record_key(record.team_id, record.type, record.id),
                contact_id=ctx.contact.contact_id if ctx.contact is not None else None,
                pipelineable_type=record.type,
                pipelineable_id=record.id,
                run_id=ctx.run.run_id,
                pipeline_id=ctx.pipeline.pipeline_id,
                step_number=ctx.step.step_number,
                status="open",
                created_at=ctx.now,
                **fields,
            )
        )
        return ActionResult.succeeded(task_id=task.task_id, created=created)

    def preview(self, ctx: ActionContext) -> dict[str, Any]:
        """The task `execute` would create now: title, description, assignee, due_at."""
        context = ctx.template_context()
        description = templating.render_text(ctx.step.message, context).strip()
        title = ctx.step.data.get("title") or (description.splitlines() or [DEFAULT_TITLE])[0]
        due_in = ctx.step.data.get("due_in_seconds")
        return {
            "title": templating.render_text(str(title), context).strip()[:500],
            "description": description or None,
            "assignee": ctx.step.data.get("assignee"),
            "due_at": ctx.now + timedelta(seconds=int(due_in)) if due_in is not None else None,
        }


register(CreateTask())
