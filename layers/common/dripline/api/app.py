"""The API: identity and size checks, then the resolver with every route.

`handle(event, context)` is what functions/api calls. The token check runs before the
resolver so that a request without identity is a 401 whatever its body, and the body
limit runs before any parsing.
"""
from __future__ import annotations

import base64
import binascii
import json
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, Server

from dripline import runtime
from dripline.api import errors
from dripline.api.identity import is_public, team_from_event
from dripline.api.routes import automatic, contacts, health, pipelines, runs, tasks, unsubscribe, webhooks

MAX_BODY_BYTES = 256 * 1024
TITLE = "Dripline"
API_VERSION = "1.0.0"
DESCRIPTION = (
    "Timed contact pipelines (drip sequences). Every route except `/health`, `/openapi.json`, `/docs` "
    "and the signed `/unsubscribe/{token}` link "
    "needs `Authorization: Bearer <JWT>` (a Cognito ID token carrying `custom:team_id`); the team comes "
    "from the token only. Errors are JSON with a `message` naming the offending field: 400 malformed JSON "
    "or pagination token, 401 no/invalid token, 404 unknown id (or another team's), 409 conflict, "
    "413 body over 256 KiB, 422 a well-formed request that fails validation. A rejected request changes nothing."
)


def build_resolver() -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True, response_validation_error_http_code=500)
    app.configure_openapi(
        title=TITLE,
        version=API_VERSION,
        description=DESCRIPTION,
        servers=[Server(url="/")],
        security_schemes={"bearerAuth": HTTPBearer(bearerFormat="JWT")},
    )
    for module in (health, pipelines, automatic, contacts, runs, tasks, unsubscribe, webhooks):
        app.include_router(module.router)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_document():
        return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=openapi_json(app))

    app.enable_swagger(path="/docs", title=TITLE, version=API_VERSION, description=DESCRIPTION)
    errors.register(app)
    return app


def openapi_json(app: APIGatewayHttpResolver | None = None) -> str:
    """The OpenAPI document of the code, as committed in docs/openapi.json."""
    document = json.loads((app or resolver()).get_openapi_json_schema())
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


@lru_cache(maxsize=1)
def resolver() -> APIGatewayHttpResolver:
    return build_resolver()


def body_size(event: dict[str, Any]) -> int:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return len(base64.b64decode(body))
        except (binascii.Error, ValueError):
            return len(body)
    return len(body.encode("utf-8"))


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    runtime.settings()  # bind the tables (once per cold start)
    path = event.get("rawPath") or ((event.get("requestContext") or {}).get("http") or {}).get("path") or "/"
    if not is_public(path) and team_from_event(event) is None:
        return _raw(errors.error_response(401, "Unauthorized"))
    if body_size(event) > MAX_BODY_BYTES:
        return _raw(errors.error_response(413, f"body: larger than {MAX_BODY_BYTES // 1024} KiB", "body"))
    return resolver().resolve(_as_json(event), context)


def _as_json(event: dict[str, Any]) -> dict[str, Any]:
    """Every body is JSON (API.md), whatever Content-Type says: `curl -d` sends a form type.

    A body that is not JSON is then a 400, never a form silently parsed into nothing.
    """
    if not event.get("body"):
        return event
    headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() != "content-type"}
    headers["content-type"] = content_types.APPLICATION_JSON
    return {**event, "headers": headers}


def _raw(response: Response) -> dict[str, Any]:
    """A Response the resolver never saw, in the payload 2.0 result shape."""
    return {
        "statusCode": response.status_code,
        "headers": {k: v for k, v in response.headers.items()},
        "body": response.body,
        "isBase64Encoded": False,
    }
