from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from dripline import clock, runtime
from dripline.api import pagination, service, views
from dripline.api.identity import current_team
from dripline.api.routes import AUTH, Limit, NextToken, created, no_content, ok
from dripline.api.schemas import DealIn, DealOut, DealPage, DealPatch, RunList
from dripline.storage import deals

router = Router()
TAGS = ["deals"]


@router.post(
    "/deals", operation_id="create_deal",
    summary="Create a deal",
    description="The deal is enrolled, shortly and asynchronously, in every automatic pipeline of the team whose "
    "`model_type` is `deal`. `contact_ids` must name contacts of the team (422 otherwise).",
    tags=TAGS, security=AUTH,
    responses=ok("Created", 201, 400, 413),
)
def create_deal(body: DealIn) -> Response[DealOut]:
    return created(views.deal(service.create_deal(current_team(router), body, clock.now())))


@router.get("/deals", operation_id="list_deals", summary="List deals", tags=TAGS, security=AUTH, responses=ok("A page of deals", 200, 400))
def list_deals(limit: Limit = 50, next_token: NextToken = None) -> DealPage:
    team, secret = current_team(router), runtime.settings().token_secret
    start = pagination.decode(secret, team, "deals", next_token)
    items, key = deals.list_deals(team, limit=limit, start_key=start)
    return DealPage(items=[views.deal(d) for d in items], next_token=pagination.encode(secret, team, "deals", key))


@router.get("/deals/<deal_id>", operation_id="get_deal", summary="A deal", tags=TAGS, security=AUTH, responses=ok("The deal", 200, 404))
def get_deal(deal_id: str) -> DealOut:
    return views.deal(deals.get_deal(current_team(router), deal_id))


@router.patch(
    "/deals/<deal_id>", operation_id="patch_deal",
    summary="Change any subset of a deal's fields",
    description="`contact_ids` and `attributes` replace the whole list or map; `null` clears value, stage and owner_email.",
    tags=TAGS, security=AUTH,
    responses=ok("The deal", 200, 400, 404, 409, 413),
)
def patch_deal(deal_id: str, body: DealPatch) -> DealOut:
    return views.deal(service.patch_deal(current_team(router), deal_id, body, clock.now()))


@router.delete(
    "/deals/<deal_id>", operation_id="delete_deal", summary="Delete a deal (its active runs are cancelled)", tags=TAGS, security=AUTH, responses=ok("Deleted", 204, 404)
)
def delete_deal(deal_id: str) -> Response[None]:
    service.delete_deal(current_team(router), deal_id)
    return no_content()


@router.get("/deals/<deal_id>/runs", operation_id="deal_runs", summary="Every run of a deal", tags=TAGS, security=AUTH, responses=ok("Its runs, oldest first", 200, 404))
def deal_runs(deal_id: str) -> RunList:
    return RunList(items=[views.run(r) for r in service.deal_runs(current_team(router), deal_id)])
