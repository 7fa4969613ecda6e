"""Every error the API answers, mapped to one status code in one place.

4xx bodies are `{"message": "<field>: <what is wrong>", "field": "<field>"}`;
request-validation failures also list every problem in `errors`.
"""
from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from pydantic import BaseModel

from dripline import observability
from dripline.errors import AddressTaken, Conflict, NotFound, ValidationFailed
from dripline.observability import logger


class Unauthorized(Exception):
    """No verified identity (no token, or a token without a usable team claim)."""


class BadRequest(Exception):
    """A request the API cannot even interpret (malformed JSON, a forged next_token)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class FieldError(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """The body of every 4xx answer."""

    message: str
    field: str | None = None
    errors: list[FieldError] | None = None
    contact_id: str | None = None  # 409 on a taken email address: the contact that holds it


def error_response(
    status: int, message: str, field: str | None = None, errors: list[dict[str, str]] | None = None, **extra: str
) -> Response:
    body: dict[str, Any] = {"message": message}
    if field is not None:
        body["field"] = field
    if errors:
        body["errors"] = errors
    body.update(extra)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body), headers=headers)


def field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """("body", "steps", 0, "data") -> "steps[0].data"; ("query", "limit") -> "limit"."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        where, parts = parts[0], parts[1:]
        if not parts:
            return where
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _describe(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid"))
    # pydantic prefixes errors raised by validators; the field name says enough.
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    return message


def name_the_route(app) -> None:
    """Put the matched route (its template, not the path) and the ids in its path on the
    request's log lines. Only `*_id` parameters: the unsubscribe link's token is a credential."""
    route = app.context.get("_route")
    if route is not None:
        ids = {k: v for k, v in (app.context.get("_route_args") or {}).items() if k.endswith("_id")}
        observability.add_keys(route=f"{route.method} {route.openapi_path}", **ids)


def register(app) -> None:
    """Install the exception handlers on the resolver."""

    @app.exception_handler(Unauthorized)
    def unauthorized(exc: Unauthorized) -> Response:
        return error_response(401, "Unauthorized")

    @app.exception_handler(BadRequest)
    def bad_request(exc: BadRequest) -> Response:
        return error_response(400, str(exc), exc.field)

    @app.exception_handler(NotFound)
    def not_found(exc: NotFound) -> Response:
        return error_response(404, str(exc) or "Not found")

    @app.exception_handler(NotFoundError)
    def no_route(exc: NotFoundError) -> Response:
        return error_response(404, "Not found")

    @app.exception_handler(Conflict)
    def conflict(exc: Conflict) -> Response:
        if isinstance(exc, AddressTaken):
            return error_response(409, str(exc), "email", contact_id=exc.contact_id)
        return error_response(409, str(exc))

    @app.exception_handler(ValidationFailed)
    def failed(exc: ValidationFailed) -> Response:
        return error_response(422, f"{exc.field}: {exc.message}", exc.field)

    @app.exception_handler(RequestValidationError)
    def invalid(exc: RequestValidationError) -> Response:
        # Request validation runs before any middleware: the route is named here.
        name_the_route(app)
        problems = list(exc.errors())
        if any(p.get("type") == "json_invalid" for p in problems):
            return error_response(400, "body: malformed JSON", "body")
        errors = [{"field": field_name(p.get("loc", ())), "message": _describe(p)} for p in problems]
        first = errors[0] if errors else {"field": "body", "message": "invalid request"}
        return error_response(422, f"{first['field']}: {first['message']}", first["field"], errors)

    @app.exception_handler(Exception)
    def unexpected(exc: Exception) -> Response:
        logger.exception("unhandled error")
        return error_response(500, "Internal Server Error")
