from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from dripline import clock, runtime
from dripline.api import pagination, service, views
from dripline.api.identity import current_team
from dripline.api.routes import AUTH, Limit, NextToken, created, no_content, ok
from dripline.api.schemas import PipelineIn, PipelineOut, PipelinePage, StatsOut
from dripline.storage import pipelines

router = Router()
TAGS = ["pipelines"]


@router.post("/pipelines", operation_id="create_pipeline", summary="Create a pipeline", tags=TAGS, security=AUTH, responses=ok("Created", 201, 400, 413))
def create_pipeline(body: PipelineIn) -> Response[PipelineOut]:
    return created(views.pipeline(service.create_pipeline(current_team(router), body, clock.now())))


@router.get("/pipelines", operation_id="list_pipelines", summary="List pipelines", tags=TAGS, security=AUTH, responses=ok("A page of pipelines", 200, 400))
def list_pipelines(limit: Limit = 50, next_token: NextToken = None) -> PipelinePage:
    team, secret = current_team(router), runtime.settings().token_secret
    start = pagination.decode(secret, team, "pipelines", next_token)
    items, key = pipelines.list_pipelines(team, limit=limit, start_key=start)
    return PipelinePage(items=[views.pipeline(p) for p in items], next_token=pagination.encode(secret, team, "pipelines", key))


@router.get("/pipelines/<pipeline_id>", operation_id="get_pipeline", summary="The latest version of a pipeline", tags=TAGS, security=AUTH, responses=ok("The pipeline", 200, 404))
def get_pipeline(pipeline_id: str) -> PipelineOut:
    return views.pipeline(pipelines.get_pipeline(current_team(router), pipeline_id))


@router.put(
    "/pipelines/<pipeline_id>", operation_id="update_pipeline",
    summary="Replace a pipeline (a new version; enrolled runs keep theirs)",
    tags=TAGS, security=AUTH,
    responses=ok("The new version", 200, 400, 404, 409, 413),
)
def update_pipeline(pipeline_id: str, body: PipelineIn) -> PipelineOut:
    return views.pipeline(service.update_pipeline(current_team(router), pipeline_id, body, clock.now()))


@router.delete(
    "/pipelines/<pipeline_id>", operation_id="archive_pipeline",
    summary="Archive a pipeline",
    description="No new enrollments, no longer automatic. Its active runs finish unless `cancel_runs=true`.",
    tags=TAGS, security=AUTH,
    responses=ok("Archived", 204, 404),
)
def archive_pipeline(
    pipeline_id: str, cancel_runs: Annotated[bool, Query(description="Also cancel its active runs")] = False
) -> Response[None]:
    service.archive_pipeline(current_team(router), pipeline_id, clock.now(), cancel_runs=cancel_runs)
    return no_content()


@router.get(
    "/pipelines/<pipeline_id>/stats", operation_id="pipeline_stats",
    summary="Counters of a pipeline's runs, steps and emails",
    description="Read from counters the engine keeps as runs move (no scans). The `emails` block counts "
    "sends and SES's delivery, bounce, complaint, open and click events.",
    tags=TAGS, security=AUTH,
    responses=ok("Stats", 200, 404),
)
def pipeline_stats(pipeline_id: str) -> StatsOut:
    return StatsOut(**service.pipeline_stats(current_team(router), pipeline_id))


@router.post(
    "/pipelines/<pipeline_id>/stats/reconcile", operation_id="reconcile_pipeline_stats",
    summary="Recount a pipeline's counters from its runs",
    description="Counters lag the runs only when a process died between its run writes and its counter "
    "write; this recounts the run and step counters from the runs (the email event counters are kept) "
    "and answers the stats. Exact when the pipeline's runs are not moving meanwhile.",
    tags=TAGS, security=AUTH,
    responses=ok("Stats after the recount", 200, 404),
)
def reconcile_stats(pipeline_id: str) -> StatsOut:
    return StatsOut(**service.reconcile_stats(current_team(router), pipeline_id))
