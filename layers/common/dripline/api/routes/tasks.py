from aws_lambda_powertools.event_handler.api_gateway import Router

from dripline import runtime
from dripline.api import pagination, views
from dripline.api.identity import current_team
from dripline.api.routes import AUTH, Limit, NextToken, ok
from dripline.api.schemas import TaskOut, TaskPage, TaskPatch, TaskStatusName
from dripline.storage import tasks

router = Router()
TAGS = ["tasks"]


@router.get(
    "/tasks", operation_id="list_tasks",
    summary="List follow-up tasks",
    description="Filter by `contact_id` and/or `status`. A page may hold fewer than `limit` items while "
    "`next_token` is not null.",
    tags=TAGS, security=AUTH,
    responses=ok("A page of tasks", 200, 400),
)
def list_tasks(
    contact_id: str | None = None, status: TaskStatusName | None = None, limit: Limit = 50, next_token: NextToken = None
) -> TaskPage:
    team, secret = current_team(router), runtime.settings().token_secret
    scope = f"tasks:contact:{contact_id}" if contact_id else "tasks:team"
    start = pagination.decode(secret, team, scope, next_token)
    items, key = pagination.fill_page(
        lambda size, key: tasks.list_tasks(team, contact_id=contact_id, status=status, limit=size, start_key=key), limit, start
    )
    return TaskPage(items=[views.task(t) for t in items], next_token=pagination.encode(secret, team, scope, key))


@router.patch("/tasks/<task_id>", operation_id="patch_task", summary="Mark a task done (or open again)", tags=TAGS, security=AUTH, responses=ok("The task", 200, 400, 404))
def patch_task(task_id: str, body: TaskPatch) -> TaskOut:
    return views.task(tasks.set_status(current_team(router), task_id, body.status))
