from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from dripline import clock, runtime
from dripline.api import pagination, service
from dripline.api.identity import current_team
from dripline.api.routes import AUTH, Limit, NextToken, ok
from dripline.api.schemas import ErrorPattern, ErrorPatternList, PipelineComparison, PipelineComparisonPage

router = Router()
TAGS = ["stats"]
SCOPE = "pipeline_stats"  # its next_token pages through the pipelines listing, for this route only


@router.get(
    "/stats/pipelines", operation_id="compare_pipelines",
    summary="The team's pipelines side by side",
    description="Per pipeline: enrolled, active, completion and step success rates, open and click rates, "
    "average and p99 step lateness (from a lateness histogram), with its Stats. Read from counters the "
    "engine keeps as runs move, never from a scan of runs.",
    tags=TAGS, security=AUTH,
    responses=ok("A page of pipelines with their figures", 200, 400),
)
def compare_pipelines(limit: Limit = 50, next_token: NextToken = None) -> PipelineComparisonPage:
    team, secret = current_team(router), runtime.settings().token_secret
    start = pagination.decode(secret, team, SCOPE, next_token)
    rows, key = service.compare_pipelines(team, limit=limit, start_key=start)
    return PipelineComparisonPage(items=[PipelineComparison(**row) for row in rows],
                                  next_token=pagination.encode(secret, team, SCOPE, key))


@router.get(
    "/stats/errors", operation_id="error_patterns",
    summary="Failed and retried steps by error code and action type",
    description="Counts of steps that failed for good, failed attempts that were retried, and steps that "
    "succeeded after failing, grouped by error code and action type, with first and last seen and an example "
    "run. Kept as hourly counters as runs move: counts start at the hour of `since`.",
    tags=TAGS, security=AUTH,
    responses=ok("Error patterns", 200),
)
def error_patterns(
    since: Annotated[str | None, Query(max_length=64, description="ISO 8601 time with a zone (default: 24 hours ago)")] = None,
) -> ErrorPatternList:
    hour, rows = service.error_patterns(current_team(router), since, clock.now())
    return ErrorPatternList(since=clock.iso(hour), items=[ErrorPattern(**row) for row in rows])
