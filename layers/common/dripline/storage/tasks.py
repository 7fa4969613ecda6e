"""Follow-up tasks created by the create_task action."""
from __future__ import annotations

from pynamodb.exceptions import DoesNotExist, PutError

from dripline.errors import NotFound
from dripline.storage.models import Task
from dripline.storage.util import is_condition_failure


def record_key(team_id: str, pipelineable_type: str, pipelineable_id: str) -> str:
    """The tasks index key of one record: <team>#<contact_id> for a contact (as since the
    start), <team>#<type>#<id> for another type (ids never hold "#", so they cannot collide)."""
    if pipelineable_type == "contact":
        return f"{team_id}#{pipelineable_id}"
    return f"{team_id}#{pipelineable_type}#{pipelineable_id}"


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
    team_id: str,
    *,
    record: tuple[str, str] | None = None,
    status: str | None = None,
    limit: int = 50,
    start_key: dict | None = None,
) -> tuple[list[Task], dict | None]:
    """A page of the team's tasks, or of one record's (`record`: (pipelineable_type, id))."""
    condition = Task.status == status if status else None
    if record:
        result = Task.contact_index.query(
            record_key(team_id, *record), filter_condition=condition, limit=limit, last_evaluated_key=start_key
        )
    else:
        result = Task.query(team_id, filter_condition=condition, limit=limit, last_evaluated_key=start_key)
    return list(result), result.last_evaluated_key


def set_status(team_id: str, task_id: str, status: str) -> Task:
    task = get_task(team_id, task_id)
    task.update(actions=[Task.status.set(status)], condition=Task.task_id.exists())
    return task
