from aws_lambda_powertools.event_handler.api_gateway import Router

from dripline import runtime
from dripline.api import pagination, views
from dripline.api.identity import current_team
from dripline.api.routes import AUTH, Limit, NextToken, ok
from dripline.api.schemas import RunOut, RunPage, RunStatusName
from dripline.storage import runs

router = Router()
TAGS = ["runs"]


@router.get("/runs/<run_id>", operation_id="get_run", summary="A run, with its step history", tags=TAGS, security=AUTH, responses=ok("The run", 200, 404))
def get_run(run_id: str) -> RunOut:
    return views.run(runs.get_run(current_team(router), run_id))


@router.get(
    "/runs", operation_id="list_runs",
    summary="List runs, newest first",
    description="Filter by `status` and/or `pipeline_id`. A page may hold fewer than `limit` items while "
    "`next_token` is not null.",
    tags=TAGS, security=AUTH,
    responses=ok("A page of runs", 200, 400),
)
def list_runs(
    status: RunStatusName | None = None, pipeline_id: str | None = None, limit: Limit = 50, next_token: NextToken = None
) -> RunPage:
    team, secret = current_team(router), runtime.settings().token_secret
    scope = f"runs:pipeline:{pipeline_id}" if pipeline_id else "runs:team"
    start = pagination.decode(secret, team, scope, next_token)
    items, key = pagination.fill_page(
        lambda size, key: runs.list_runs(team, status=status, pipeline_id=pipeline_id, limit=size, start_key=key), limit, start
    )
    return RunPage(items=[views.run(r) for r in items], next_token=pagination.encode(secret, team, scope, key))
