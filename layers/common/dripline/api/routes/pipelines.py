from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from dripline import clock, runtime
from dripline.api import pagination, service, views
from dripline.api.identity import caller_email, current_team, request_settings
from dripline.api.routes import AUTH, Limit, NextToken, created, no_content, ok
from dripline.api.schemas import (
    PipelineIn, PipelineOut, PipelinePage, PreviewIn, PreviewOut, SimulateIn, SimulationOut, StatsOut, TestSendIn,
    TestSendOut,
)
from dripline.processor import Clients
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


@router.post(
    "/pipelines/<pipeline_id>/preview", operation_id="preview_pipeline",
    summary="Every step rendered for one contact, with its planned time (nothing is sent or written)",
    description="Takes `contact_id` (one of the team's contacts) or `contact` (an inline sample). Each step of the "
    "latest version is rendered by the processor's own code at the tick that would run it, for a run enrolled now: "
    "an email's subject and its exact text and HTML parts, a task's title, a webhook's payload. A step whose "
    "template fails or renders an empty email shows the outcome the processor would record (`failed`, "
    "`empty_message`).",
    tags=TAGS, security=AUTH,
    responses=ok("The rendered steps", 200, 400, 404, 413),
)
def preview_pipeline(pipeline_id: str, body: PreviewIn) -> PreviewOut:
    now = clock.now()
    spec, steps = service.preview(current_team(router), pipeline_id, body, now, request_settings(router, runtime.settings()))
    return views.preview(spec, now, steps)


@router.post(
    "/pipelines/<pipeline_id>/simulate", operation_id="simulate_pipeline",
    summary="The whole timeline of a run enrolled now, on a virtual clock (nothing is sent or written)",
    description="The step engine's own rules (plans, send windows, wait-until, retry backoff, max attempts) run on a "
    "virtual clock that ticks every minute like the processor. `failures` injects outcomes: `{\"step_number\": 2, "
    "\"times\": 2}` makes step 2's first two attempts fail as an SES throttle would (retried), `retryable: false` "
    "as a permanent error. Every attempt is listed with its time, outcome and backoff, then the final status.",
    tags=TAGS, security=AUTH,
    responses=ok("The timeline", 200, 400, 404, 413),
)
def simulate_pipeline(pipeline_id: str, body: SimulateIn) -> SimulationOut:
    spec, timeline = service.simulate(
        current_team(router), pipeline_id, body, clock.now(), request_settings(router, runtime.settings())
    )
    return views.simulation(spec, timeline)


@router.post(
    "/pipelines/<pipeline_id>/steps/<step_number>/test", operation_id="test_send_step",
    summary="Send one email step to your own address, `[TEST]` in its subject",
    description="`to` must be the caller's own verified address (the token's `email` claim with `email_verified`): "
    "a test never reaches a contact or a stranger. Rendered as the processor renders it, for `contact_id` or a sample "
    "`contact` (default: one with only `to` as its email), with an inert unsubscribe link. No run is created and the "
    "email counts in no stats.",
    tags=TAGS, security=AUTH,
    responses=ok("Sent", 200, 400, 404, 413),
)
def test_send_step(pipeline_id: str, step_number: int, body: TestSendIn) -> TestSendOut:
    settings = request_settings(router, runtime.settings())
    answer, subject = service.test_send(
        current_team(router), pipeline_id, step_number, body, caller_email(router), clock.now(), settings,
        Clients(settings).sesv2,  # the processor's SES client (no SDK retries: a retry may send twice)
    )
    return TestSendOut(message_id=answer["MessageId"], to=body.to, subject=subject)
