"""The API handler as a WSGI app, for clients that speak HTTP: schemathesis, a browser.

Each request becomes the API Gateway HTTP API (payload 2.0) event the handler gets in
AWS. `Authorization: Bearer <team>` stands for a token the JWT authorizer verified with
that `custom:team_id` claim (no header: no claims, as on the public routes).
"""
from __future__ import annotations

import base64
from collections import Counter
from typing import Any
from urllib.parse import parse_qs

from functions.api import app as api_app
from tests.support import FakeContext


class Stats:
    """What the adapter served: calls by method and path, answers by status."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()


def wsgi_app(api, stats: Stats | None = None):
    """`api` is the tests' event builder (tests/api/conftest.py Api)."""
    stats = stats or Stats()

    def app(environ: dict[str, Any], start_response) -> list[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO") or "/"
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        team = authorization.removeprefix("Bearer ").strip() if authorization.startswith("Bearer ") else ""
        event = api.event(method, path, team=team or None)
        event["rawQueryString"] = environ.get("QUERY_STRING", "")
        query = parse_qs(event["rawQueryString"], keep_blank_values=True)
        event.pop("queryStringParameters", None)
        if query:  # API Gateway joins repeated parameters with commas
            event["queryStringParameters"] = {k: ",".join(v) for k, v in query.items()}
        event["headers"] = {k: v for k, v in event["headers"].items() if k in ("authorization",) and team}
        for key, value in environ.items():
            if key.startswith("HTTP_") and key != "HTTP_AUTHORIZATION":
                event["headers"][key[5:].replace("_", "-").lower()] = value
        if environ.get("CONTENT_TYPE"):
            event["headers"]["content-type"] = environ["CONTENT_TYPE"]
        if body:
            try:
                event["body"], event["isBase64Encoded"] = body.decode("utf-8"), False
            except UnicodeDecodeError:  # API Gateway base64-encodes what is not text
                event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
        result = api_app.lambda_handler(event, FakeContext())
        status = result["statusCode"]
        stats.calls[f"{method} {path}"] += 1
        stats.statuses[status] += 1
        start_response(f"{status} {'OK' if status < 400 else 'Error'}", list((result.get("headers") or {}).items()))
        return [(result.get("body") or "").encode()]

    return app
