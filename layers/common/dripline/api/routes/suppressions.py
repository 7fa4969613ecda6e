"""The team's suppression list. The address travels in the body or the query string,
never in the path: API Gateway's access log records paths, and logs carry no addresses."""
from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from dripline import clock, runtime
from dripline.api import pagination, service, views
from dripline.api.identity import current_team
from dripline.api.routes import AUTH, Limit, NextToken, created, no_content, ok
from dripline.api.schemas import SuppressionIn, SuppressionOut, SuppressionPage
from dripline.storage import suppressions

router = Router()
TAGS = ["suppressions"]
SCOPE = "suppressions"
Address = Annotated[str, Query(min_length=3, max_length=254, description="The address to remove (any case)")]


@router.get(
    "/suppressions", operation_id="list_suppressions", summary="List suppressed addresses",
    description="Addresses never emailed again, whichever contact carries them: added by unsubscribe links, hard "
    "bounces, complaints, or through this API. In address order.",
    tags=TAGS, security=AUTH, responses=ok("A page of suppressions", 200, 400),
)
def list_suppressions(limit: Limit = 50, next_token: NextToken = None) -> SuppressionPage:
    team, secret = current_team(router), runtime.settings().token_secret
    start = pagination.decode(secret, team, SCOPE, next_token)
    items, key = suppressions.list_suppressions(team, limit=limit, start_key=start)
    return SuppressionPage(items=[views.suppression(s) for s in items], next_token=pagination.encode(secret, team, SCOPE, key))


@router.post(
    "/suppressions", operation_id="add_suppression", summary="Suppress an address",
    description="Email steps to it are skipped with reason `suppressed` from now on. Idempotent: an address "
    "already listed keeps its first reason and time (200).",
    tags=TAGS, security=AUTH,
    responses={**ok("Added", 201, 400, 413), 200: {"description": "Already suppressed: the entry as it was"}},
)
def add_suppression(body: SuppressionIn) -> Response[SuppressionOut]:
    entry, added = service.add_suppression(current_team(router), body, clock.now())
    if added:
        return created(views.suppression(entry))
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=views.suppression(entry))


@router.delete(
    "/suppressions", operation_id="remove_suppression", summary="Allow email to an address again",
    description="An explicit act, logged with the team and the entry's reason (not the address). Contacts "
    "unsubscribed by the link stay unsubscribed: re-subscribe them with PATCH.",
    tags=TAGS, security=AUTH, responses=ok("Removed", 204, 404),
)
def remove_suppression(email: Address) -> Response[None]:
    service.remove_suppression(current_team(router), email)
    return no_content()
