"""Unit tests of the local API Gateway: the authorizer, the payload 2.0 event, responses,
body limits and the /_local routes. No sockets: LocalHttpApp.handle directly."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest

from dripline_local.http import LocalHttpApp, TokenAuthority
from dripline_local.lambdas import HandlerMissing

ISSUER = "http://127.0.0.1:3000"


class FakeApi:
    def __init__(self, response=None, error=None):
        self.events = []
        self.response = response if response is not None else {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": "{}", "isBase64Encoded": False}
        self.error = error

    def __call__(self, event):
        self.events.append(event)
        if self.error:
            raise self.error
        return self.response


class FakeControl:
    def __init__(self):
        self.clock = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
        self.ticks = 0

    def now(self):
        return self.clock

    def fast_forward(self, seconds):
        self.clock += timedelta(seconds=seconds)
        return {"now": self.clock.isoformat(), "ticks": 1}

    def tick(self):
        self.ticks += 1
        return {"claimed": 2}

    def emails(self, to, team=None, run=None):
        return [{"to": [to]}] if to else []


@pytest.fixture
def auth():
    return TokenAuthority(issuer=ISSUER)


def app_with(auth, api=None, control=None):
    return LocalHttpApp(api=api or FakeApi(), auth=auth, control=control or FakeControl())


def bearer(token):
    return [("Authorization", f"Bearer {token}")]


@pytest.mark.parametrize(
    "headers",
    [[], [("Authorization", "Bearer")], [("Authorization", "Bearer not-a-jwt")], [("Authorization", "Basic dXNlcjpwdw==")]],
)
def test_missing_or_invalid_tokens_are_401_without_calling_the_handler(auth, headers):
    api = FakeApi()
    response = app_with(auth, api).handle("GET", "/pipelines", headers, b"")
    assert response.status == 401 and json.loads(response.body) == {"message": "Unauthorized"}
    assert api.events == []


def test_tokens_of_another_key_or_expired_are_401(auth):
    api = FakeApi()
    app = app_with(auth, api)
    other = TokenAuthority(issuer=ISSUER).mint("acme")
    expired = auth.mint("acme", ttl_seconds=-10)
    assert app.handle("GET", "/pipelines", bearer(other), b"").status == 401
    assert app.handle("GET", "/pipelines", bearer(expired), b"").status == 401
    assert api.events == []


def test_a_valid_token_puts_its_claims_in_the_event_as_strings(auth):
    api = FakeApi()
    token = auth.mint("acme")
    response = app_with(auth, api).handle(
        "POST",
        "/contacts?x=1&x=2&y=",
        bearer(token) + [("Content-Type", "application/json"), ("Cookie", "a=1; b=2"), ("X-Multi", "1"), ("X-Multi", "2")],
        b'{"email": "ada@example.com"}',
        "10.0.0.1",
    )
    assert response.status == 200
    (event,) = api.events
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    assert claims["custom:team_id"] == "acme"
    assert all(isinstance(v, str) for v in claims.values())
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/contacts" and event["rawQueryString"] == "x=1&x=2&y="
    assert event["queryStringParameters"] == {"x": "1,2", "y": ""}
    assert event["requestContext"]["http"] == {"method": "POST", "path": "/contacts", "protocol": "HTTP/1.1", "sourceIp": "10.0.0.1", "userAgent": ""}
    assert event["headers"]["x-multi"] == "1,2" and "cookie" not in event["headers"]
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["body"] == '{"email": "ada@example.com"}' and event["isBase64Encoded"] is False
    json.dumps(event)


def test_public_routes_have_no_authorizer_block(auth):
    api = FakeApi()
    app = app_with(auth, api)
    for path in ("/health", "/openapi.json", "/docs", "/unsubscribe/abc.def"):
        assert app.handle("GET", path, [], b"").status == 200
    assert all("authorizer" not in e["requestContext"] for e in api.events)
    assert "body" not in api.events[0] and "queryStringParameters" not in api.events[0]


def test_binary_bodies_are_base64_encoded(auth):
    api = FakeApi()
    app_with(auth, api).handle("POST", "/contacts", bearer(auth.mint("a")) + [("Content-Type", "application/octet-stream")], b"\xff\x00")
    assert api.events[0]["isBase64Encoded"] is True and base64.b64decode(api.events[0]["body"]) == b"\xff\x00"


def test_bodies_over_256_kib_are_413_before_auth_or_handler(auth):
    api = FakeApi()
    response = app_with(auth, api).handle("POST", "/contacts", bearer(auth.mint("a")), b"x" * (256 * 1024 + 1))
    assert response.status == 413 and "message" in json.loads(response.body)
    assert api.events == []
    assert app_with(auth, api).handle("POST", "/contacts", bearer(auth.mint("a")), b"x" * (256 * 1024)).status == 200


def test_handler_responses_are_translated(auth):
    token = bearer(auth.mint("a"))
    binary = FakeApi({"statusCode": 201, "headers": {"X-A": "1"}, "cookies": ["s=1"], "body": base64.b64encode(b"\x01").decode(), "isBase64Encoded": True})
    response = app_with(auth, binary).handle("GET", "/x", token, b"")
    assert response.status == 201 and response.body == b"\x01"
    assert ("X-A", "1") in response.headers and ("Set-Cookie", "s=1") in response.headers
    assert any(name == "Apigw-Requestid" for name, _ in response.headers)

    bare = FakeApi({"items": []})  # payload 2.0 without statusCode: 200 JSON
    response = app_with(auth, bare).handle("GET", "/x", token, b"")
    assert response.status == 200 and json.loads(response.body) == {"items": []}

    no_body = FakeApi({"statusCode": 204})
    assert app_with(auth, no_body).handle("DELETE", "/x", token, b"").body == b""


def test_handler_errors_are_500_and_a_missing_handler_502(auth):
    token = bearer(auth.mint("a"))
    response = app_with(auth, FakeApi(error=RuntimeError("boom"))).handle("GET", "/x", token, b"")
    assert response.status == 500 and json.loads(response.body) == {"message": "Internal Server Error"}
    response = app_with(auth, FakeApi(error=HandlerMissing("functions/api/app.py"))).handle("GET", "/x", token, b"")
    assert response.status == 502


def test_local_token_route(auth):
    app = app_with(auth)
    response = app.handle("POST", "/_local/token", [], b'{"team_id": "acme"}')
    token = json.loads(response.body)["token"]
    assert auth.verify(f"Bearer {token}")["custom:team_id"] == "acme"
    assert app.handle("POST", "/_local/token", [], b'{"team_id": ""}').status == 422
    assert app.handle("POST", "/_local/token", [], b"{nope").status == 400
    assert app.handle("GET", "/_local/token", [], b"").status == 405


def test_local_clock_tick_and_emails_routes(auth):
    control = FakeControl()
    app = app_with(auth, control=control)
    assert json.loads(app.handle("GET", "/_local/clock", [], b"").body) == {"now": "2026-03-02T09:00:00.000Z"}
    response = app.handle("POST", "/_local/clock", [], b'{"advance_seconds": 86400}')
    assert json.loads(response.body) == {"now": "2026-03-03T09:00:00+00:00", "ticks": 1}
    for bad in (b'{"advance_seconds": -1}', b'{"advance_seconds": "1"}', b"{}", b'{"advance_seconds": true}'):
        assert app.handle("POST", "/_local/clock", [], bad).status == 422
    assert json.loads(app.handle("POST", "/_local/tick", [], b"").body)["result"] == {"claimed": 2}
    assert control.ticks == 1
    assert json.loads(app.handle("GET", "/_local/emails?to=a%40b.c", [], b"").body) == {"items": [{"to": ["a@b.c"]}]}
    assert app.handle("GET", "/_local/nope", [], b"").status == 404


def test_routes_come_from_the_template_and_public_ones_skip_the_authorizer(auth):
    from dripline_local.http import routes_from_template
    from dripline_local.template import load_template

    api = FakeApi()
    app = LocalHttpApp(api=api, auth=auth, control=FakeControl(), routes=routes_from_template(load_template()))
    assert app.handle("GET", "/health", [], b"").status == 200
    assert api.events[-1]["routeKey"] == "GET /health" and "authorizer" not in api.events[-1]["requestContext"]
    assert app.handle("POST", "/unsubscribe/abc.def", [], b"").status == 200
    assert api.events[-1]["pathParameters"] == {"token": "abc.def"}
    # Another method on a public path falls to the authorized catch-all route.
    assert app.handle("DELETE", "/health", [], b"").status == 401
    assert app.handle("GET", "/contacts/c1/runs", bearer(auth.mint("acme")), b"").status == 200
    assert api.events[-1]["routeKey"] == "ANY /{proxy+}" and api.events[-1]["pathParameters"] == {"proxy": "contacts/c1/runs"}
    assert app.handle("GET", "/", [], b"").status == 404  # no route
