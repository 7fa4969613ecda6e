"""Follow-up tasks created by the create_task action."""
from __future__ import annotations

from pynamodb.exceptions import DoesNotExist, PutError

from dripline.errors import NotFound
from dripline.storage.models import Task
from dripline.storage.util import is_condition_failure


def create_task(task: Task) -> tuple[Task, bool]:
    """Idempotent on task_id: a repeated step finds its task instead of adding one."""
    try:
        task.save(condition=Task.task_id.does_not_exist())
    except PutError as exc:
        if is_condition_failure(exc):
            return Task.get(task.team_id, task.task_id, consistent_read=True), False
        raise
    return task, True


def get_task(team_id: str, task_id: str) -> Task:
    try:
        return Task.get(team_id, task_id, consistent_read=True)
    except DoesNotExist as exc:
        raise NotFound(f"task {task_id} not found") from exc


def list_tasks(
    team_id: str, *, contact_id: str | None = None, status: str | None = None, limit: int = 50, start_key: dict | None = None
) -> tuple[list[Task], dict | None]:
    condition = Task.status == status if status else None
    if contact_id:
        result = Task.contact_index.query(
            f"{team_id}#{contact_id}", filter_condition=condition, limit=limit, last_evaluated_key=start_key
        )
    else:
        result = Task.query(team_id, filter_condition=condition, limit=limit, last_evaluated_key=start_key)
    return list(result), result.last_evaluated_key


def set_status(team_id: str, task_id: str, status: str) -> Task:
    task = get_task(team_id, task_id)
    task.update(actions=[Task.status.set(status)], condition=Task.task_id.exists())
    return task
