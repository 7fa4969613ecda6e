from aws_lambda_powertools.event_handler.api_gateway import Router

from dripline import runtime
from dripline.api import pagination, views
from dripline.api.identity import current_team
from dripline.api.routes import AUTH, Limit, NextToken, ok
from dripline.api.schemas import TaskOut, TaskPage, TaskPatch, TaskStatusName
from dripline.errors import ValidationFailed
from dripline.storage import tasks

router = Router()
TAGS = ["tasks"]


@router.get(
    "/tasks", operation_id="list_tasks",
    summary="List follow-up tasks",
    description="Filter by the record the task is about (`contact_id` or `deal_id`, not both: 422) and/or "
    "`status`. A page may hold fewer than `limit` items while `next_token` is not null.",
    tags=TAGS, security=AUTH,
    responses=ok("A page of tasks", 200, 400),
)
def list_tasks(
    contact_id: str | None = None,
    deal_id: str | None = None,
    status: TaskStatusName | None = None,
    limit: Limit = 50,
    next_token: NextToken = None,
) -> TaskPage:
    team, secret = current_team(router), runtime.settings().token_secret
    if contact_id and deal_id:
        raise ValidationFailed("deal_id", "filter by contact_id or by deal_id, not both")
    record = ("contact", contact_id) if contact_id else ("deal", deal_id) if deal_id else None
    scope = f"tasks:{record[0]}:{record[1]}" if record else "tasks:team"
    start = pagination.decode(secret, team, scope, next_token)
    items, key = pagination.fill_page(
        lambda size, key: tasks.list_tasks(team, record=record, status=status, limit=size, start_key=key), limit, start
    )
    return TaskPage(items=[views.task(t) for t in items], next_token=pagination.encode(secret, team, scope, key))


@router.patch("/tasks/<task_id>", operation_id="patch_task", summary="Mark a task done (or open again)", tags=TAGS, security=AUTH, responses=ok("The task", 200, 400, 404))
def patch_task(task_id: str, body: TaskPatch) -> TaskOut:
    return views.task(tasks.set_status(current_team(router), task_id, body.status))
