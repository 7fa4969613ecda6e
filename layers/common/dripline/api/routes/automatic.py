from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from dripline import clock
from dripline.api import service, views
from dripline.api.identity import current_team
from dripline.api.routes import AUTH, no_content, ok
from dripline.api.schemas import AutomaticList, AutomaticOut
from dripline.storage import pipelines

router = Router()
TAGS = ["automatic pipelines"]


@router.get("/automatic-pipelines", operation_id="list_automatic", summary="The team's automatic pipelines", tags=TAGS, security=AUTH, responses=ok("All of them"))
def list_automatic() -> AutomaticList:
    return AutomaticList(items=[views.automatic(a) for a in pipelines.list_automatic(current_team(router))])


@router.put(
    "/automatic-pipelines/<pipeline_id>", operation_id="put_automatic",
    summary="Enroll every new contact in this pipeline (idempotent)",
    tags=TAGS, security=AUTH,
    responses=ok("Set", 200, 404, 409),
)
def put_automatic(pipeline_id: str) -> AutomaticOut:
    return views.automatic(service.set_automatic(current_team(router), pipeline_id, clock.now()))


@router.delete(
    "/automatic-pipelines/<pipeline_id>", operation_id="delete_automatic",
    summary="Stop enrolling new contacts in this pipeline",
    tags=TAGS, security=AUTH,
    responses=ok("Unset", 204, 404),
)
def delete_automatic(pipeline_id: str) -> Response[None]:
    service.unset_automatic(current_team(router), pipeline_id)
    return no_content()
