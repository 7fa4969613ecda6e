"""The API: identity, size and body checks, then the resolver with every route.

`handle(event, context)` is what functions/api calls. It logs one line per request
(`request`: route, status, latency, team, the ids the route names, and the API Gateway
request id as the correlation id). The token check runs before the
resolver so that a request without identity is a 401 whatever its body; the body limit
and the body checks (`_body_text`) run before Powertools parses anything, so no body
can make the parsing itself fail with a 500.
"""
from __future__ import annotations

import base64
import binascii
import json
import time
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, OpenAPI, Server

from dripline import actions, observability, runtime
from dripline.api import errors, openapi
from dripline.api.identity import PUBLIC_PREFIXES, is_public, team_from_event
from dripline.api.routes import (
    automatic, contacts, deals, health, pipelines, runs, stats, suppressions, tasks, unsubscribe, webhooks,
)

MAX_BODY_BYTES = 256 * 1024
# Nesting allowed in a JSON body (a step's data nests a few levels; nobody needs 64).
MAX_DEPTH = 64
# Longer than any id we issue, and well inside DynamoDB's key size limits.
MAX_ID = 200
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


class Resolver(APIGatewayHttpResolver):
    """Powertools' resolver whose OpenAPI document (served and in Swagger UI) is finished by `openapi.finish`."""

    def get_openapi_schema(self, **kwargs: Any) -> OpenAPI:
        generated = super().get_openapi_schema(**kwargs).model_dump(mode="json", by_alias=True, exclude_none=True)
        return OpenAPI.model_validate(openapi.finish(generated, actions.names()))


def build_resolver() -> APIGatewayHttpResolver:
    # A response that does not match its model is our bug: logged and answered 500 (errors.unexpected).
    app = Resolver(enable_validation=True, response_validation_error_http_code=500)
    app.configure_openapi(
        title=TITLE,
        version=API_VERSION,
        description=DESCRIPTION,
        servers=[Server(url="/")],
        security_schemes={"bearerAuth": HTTPBearer(bearerFormat="JWT")},
    )
    for module in (health, pipelines, automatic, contacts, suppressions, deals, runs, tasks, stats, unsubscribe, webhooks):
        app.include_router(module.router)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_document():
        return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=openapi_json(app))

    app.enable_swagger(path="/docs", title=TITLE, version=API_VERSION, description=DESCRIPTION)
    errors.register(app)
    app.use(middlewares=[_name_the_route])
    return app


def _name_the_route(app: APIGatewayHttpResolver, next_middleware):
    errors.name_the_route(app)
    return next_middleware(app)


def openapi_json(app: APIGatewayHttpResolver | None = None) -> str:
    """The OpenAPI document of the code, as committed in docs/openapi.json."""
    document = json.loads((app or resolver()).get_openapi_json_schema())
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


@lru_cache(maxsize=1)
def resolver() -> APIGatewayHttpResolver:
    return build_resolver()


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answer one request and log it (one `request` line, whatever the answer)."""
    started = time.monotonic()
    request = event.get("requestContext") or {}
    status = 500  # what API Gateway answers when the handler raises
    with observability.scope(correlation_id=request.get("requestId"), team_id=team_from_event(event)):
        try:
            response = _answer(event, context)
            status = response.get("statusCode", 200)
            return response
        finally:
            observability.logger.info(
                "request",
                extra={
                    "method": (request.get("http") or {}).get("method"),
                    "status": status,
                    "latency_ms": round((time.monotonic() - started) * 1000, 1),
                },
            )


def _answer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    runtime.settings()  # bind the tables (once per cold start)
    path = event.get("rawPath") or ((event.get("requestContext") or {}).get("http") or {}).get("path") or "/"
    if not is_public(path) and team_from_event(event) is None:
        return _raw(errors.error_response(401, "Unauthorized"))
    if path.startswith(PUBLIC_PREFIXES):
        # The unsubscribe link takes no body; a one-click POST sends a form (RFC 8058).
        return _raw(_too_large()) if body_size(event) > MAX_BODY_BYTES else resolver().resolve(event, context)
    if any(len(segment) > MAX_ID for segment in path.split("/")):
        return _raw(errors.error_response(404, "Not found"))  # no id we issue is that long (nor may a key be)
    body = _body_text(event)
    if isinstance(body, Response):
        return _raw(body)
    return resolver().resolve(_as_json(event, body), context)


def body_size(event: dict[str, Any]) -> int:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return len(body) * 3 // 4
    return len(body.encode("utf-8", "surrogatepass"))


def _too_large() -> Response:
    return errors.error_response(413, f"body: larger than {MAX_BODY_BYTES // 1024} KiB", "body")


def _body_text(event: dict[str, Any]) -> str | None | Response:
    """The body as text that Powertools can parse without failing: or the 4xx it deserves.

    Checked here, before the resolver, so that no body can make its JSON parsing raise
    (non-UTF-8 bytes, nesting deep enough for a RecursionError, an integer past Python's
    4,300-digit limit): each is a 400, never a 500. A body that parses but nests deeper
    than MAX_DEPTH is a 422 naming where.
    """
    raw = event.get("body")
    if not raw:
        return None
    if body_size(event) > MAX_BODY_BYTES:
        return _too_large()
    if event.get("isBase64Encoded"):
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return errors.error_response(400, "body: not valid base64", "body")
    else:
        data = raw.encode("utf-8", "surrogatepass")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return errors.error_response(400, "body: not UTF-8 text", "body")
    try:
        document = json.loads(text)
    except RecursionError:
        return errors.error_response(400, "body: malformed JSON (nested too deeply)", "body")
    except ValueError as exc:  # JSONDecodeError, or an integer over 4,300 digits
        detail = "" if isinstance(exc, json.JSONDecodeError) else f" ({exc})"
        return errors.error_response(400, f"body: malformed JSON{detail}", "body")
    too_deep = _deeper_than(document, MAX_DEPTH)
    if too_deep is not None:
        return errors.error_response(422, f"{too_deep}: nested more than {MAX_DEPTH} levels deep", too_deep)
    return text


def _deeper_than(document: Any, limit: int) -> str | None:
    """The field of the first value nested deeper than `limit`, or None (iterative: no recursion)."""
    pending: list[tuple[Any, int, tuple[Any, ...]]] = [(document, 0, ())]
    while pending:
        node, depth, where = pending.pop()
        if depth > limit:
            return errors.field_name(("body", *where[:4])) + ("..." if len(where) > 4 else "")
        if isinstance(node, dict):
            pending.extend((child, depth + 1, (*where, key)) for key, child in node.items())
        elif isinstance(node, list):
            pending.extend((child, depth + 1, (*where, index)) for index, child in enumerate(node))
    return None


def _as_json(event: dict[str, Any], body: str | None) -> dict[str, Any]:
    """Every body is JSON (API.md), whatever Content-Type says: `curl -d` sends a form type.

    A body that is not JSON is then a 400, never a form silently parsed into nothing.
    The body is handed on as the text checked above (decoded from base64 if it was).
    """
    if body is None:
        return event
    headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() != "content-type"}
    headers["content-type"] = content_types.APPLICATION_JSON
    return {**event, "headers": headers, "body": body, "isBase64Encoded": False}


def _raw(response: Response) -> dict[str, Any]:
    """A Response the resolver never saw, in the payload 2.0 result shape."""
    return {
        "statusCode": response.status_code,
        "headers": {k: v for k, v in response.headers.items()},
        "body": response.body,
        "isBase64Encoded": False,
    }
