"""Routes by resource; each module exposes a Powertools `router`."""
from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel

from dripline import observability
from dripline.api.errors import ErrorBody

AUTH = [{"bearerAuth": []}]
Limit = Annotated[int, Query(ge=1, le=100, description="Page size, 1-100")]
NextToken = Annotated[str | None, Query(
    max_length=4096,
    description="The `next_token` of the previous page: opaque and signed for this team and listing (400 otherwise)",
)]

EmailQuery = Annotated[str | None, Query(
    max_length=254, description="An email address, matched trimmed and lowercased (not logged: query strings never are)",
)]

_DESCRIPTIONS = {
    400: "Malformed JSON, or a next_token that is not genuine",
    401: "No or invalid token",
    404: "Unknown id (or another team's)",
    409: "Conflicts with the current state",
    413: "Body over 256 KiB",
    422: "Well-formed but invalid: `message` names the field",
}


def errors(*codes: int) -> dict[int, dict[str, Any]]:
    """OpenAPI `responses` entries for the error codes a route may answer."""
    return {
        code: {"description": _DESCRIPTIONS[code], "content": {content_types.APPLICATION_JSON: {"model": ErrorBody}}}
        for code in codes
    }


def ok(description: str, status: int = 200, *more: int) -> dict[int, dict[str, Any]]:
    return {status: {"description": description}, **errors(401, 422, *more)}


def created(model: BaseModel) -> Response:
    # The request's log line names what it created (contact_id, run_id ...): ids only.
    observability.add_keys(**{k: v for k, v in vars(model).items() if k.endswith("_id") and isinstance(v, str)})
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=model)


def no_content() -> Response:
    return Response(status_code=204)
