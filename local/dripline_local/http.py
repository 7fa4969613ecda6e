"""The local API Gateway: HTTP requests -> HTTP API (payload 2.0) events -> the API handler.

- Requests are matched to the API function's HttpApi routes in infra/template.yaml
  (most specific first, as API Gateway does; no route is 404). Every route except
  those with `Auth: {Authorizer: NONE}` (`/health`, `/openapi.json`, `/docs`,
  `/unsubscribe/{token}`) needs `Authorization: Bearer <JWT>`, verified the way an HTTP API
  JWT authorizer verifies it (signature, issuer, audience, expiry). A missing or
  invalid token is answered 401 `{"message":"Unauthorized"}` without invoking the
  handler; a valid one's claims land in `requestContext.authorizer.jwt.claims`, as
  strings, like API Gateway passes them.
- Bodies over 256 KiB are refused with 413.
- `/_local/*` are the local stack's own routes (API.md "Local stack only").
"""
from __future__ import annotations

import base64
import errno
import json
import re
import secrets
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote

import jwt
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response as WsgiResponse

MAX_BODY_BYTES = 256 * 1024
PUBLIC_PATHS = ("/health", "/openapi.json", "/docs")
PUBLIC_PREFIXES = ("/unsubscribe/",)
TEAM_CLAIM = "custom:team_id"
ACCOUNT_ID = "123456789012"
API_ID = "local"
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript", "application/x-www-form-urlencoded")


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @classmethod
    def json(cls, status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> "Response":
        return cls(status, [("Content-Type", "application/json")] + (headers or []), json.dumps(payload).encode())


class TokenAuthority:
    """Mints and verifies the local stack's JWTs (HS256, a key made per process)."""

    def __init__(self, issuer: str, audience: str = "dripline-local", ttl_seconds: int = 24 * 3600) -> None:
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        self._key = secrets.token_bytes(32)

    def mint(self, team_id: str, *, subject: str | None = None, email: str | None = None, ttl_seconds: int | None = None) -> str:
        now = int(time.time())  # tokens live in real time, like Cognito's
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject or f"local-user-{team_id}",
            "token_use": "id",
            TEAM_CLAIM: team_id,
            "iat": now,
            "exp": now + (self.ttl_seconds if ttl_seconds is None else ttl_seconds),
        }
        if email:
            # As a Cognito user who confirmed the address: a test send may go to it.
            claims["email"] = email
            claims["email_verified"] = True
        return jwt.encode(claims, self._key, algorithm="HS256")

    def verify(self, authorization: str | None) -> dict[str, Any] | None:
        """The verified claims of `Authorization: Bearer <token>`, or None."""
        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            return jwt.decode(
                token.strip(),
                self._key,
                algorithms=["HS256"],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.InvalidTokenError:
            return None


class LocalControl(Protocol):
    """What the /_local routes need from the stack."""

    def now(self) -> datetime: ...

    def fast_forward(self, seconds: float) -> dict[str, Any]: ...

    def tick(self) -> Any: ...

    def emails(self, to: str | None, team: str | None = None, run: str | None = None) -> list[dict[str, Any]]: ...


def _claims_as_strings(claims: dict[str, Any]) -> dict[str, str]:
    """API Gateway hands JWT claims to the handler as strings (arrays as "[a b]")."""
    out: dict[str, str] = {}
    for key, value in claims.items():
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, list):
            out[key] = "[" + " ".join(str(v) for v in value) + "]"
        elif isinstance(value, dict):
            out[key] = json.dumps(value)
        else:
            out[key] = str(value)
    return out


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


@dataclass(frozen=True)
class Route:
    """One HTTP API route (`GET /unsubscribe/{token}`, `ANY /{proxy+}`) and its auth."""

    method: str
    path: str
    public: bool

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.method not in ("ANY", method):
            return None
        pattern = ""
        for part in re.split(r"(\{[^}]+\})", self.path):
            if part.startswith("{") and part.endswith("+}"):
                pattern += f"(?P<{_group(part[1:-2])}>.+)"
            elif part.startswith("{"):
                pattern += f"(?P<{_group(part[1:-1])}>[^/]+)"
            else:
                pattern += re.escape(part)
        found = re.fullmatch(pattern, path)
        if found is None:
            return None
        names = re.findall(r"\{([^}+]+)\+?\}", self.path)
        return {name: found.group(_group(name)) for name in names}

    def specificity(self) -> tuple[bool, int, bool]:
        """API Gateway prefers exact paths, then fewer variables, greedy last; then a method over ANY."""
        return ("+}" in self.path, self.path.count("{"), self.method == "ANY")


def _group(name: str) -> str:
    return "p_" + re.sub(r"\W", "_", name)


def routes_from_template(template: dict[str, Any], function_id: str = "ApiFunction") -> list[Route]:
    """The API function's HttpApi routes; `Auth: {Authorizer: NONE}` ones are public."""
    function = template.get("Resources", {}).get(function_id, {})
    routes = []
    for event in function.get("Properties", {}).get("Events", {}).values():
        if event.get("Type") != "HttpApi":
            continue
        props = event.get("Properties", {})
        authorizer = (props.get("Auth") or {}).get("Authorizer")
        routes.append(Route(str(props.get("Method", "ANY")).upper().replace("X-AMAZON-APIGATEWAY-ANY-METHOD", "ANY"), props.get("Path", "/{proxy+}"), authorizer == "NONE"))
    return routes


def select_route(routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    matches = [(route, params) for route in routes if (params := route.match(method, path)) is not None]
    if not matches:
        return None
    return min(matches, key=lambda m: m[0].specificity())


class LocalHttpApp:
    """Turns one HTTP request into a Response; no sockets here (unit-testable)."""

    def __init__(
        self,
        *,
        api: Callable[[dict[str, Any]], Any],
        auth: TokenAuthority,
        control: LocalControl,
        domain: str = "127.0.0.1",
        log: Callable[[str], None] | None = None,
        max_body: int = MAX_BODY_BYTES,
        routes: list[Route] | None = None,
    ) -> None:
        # Without routes (no HttpApi events in the template): one $default route behind
        # the authorizer, except the public paths of API.md.
        self.routes = routes or None
        self.api = api
        self.auth = auth
        self.control = control
        self.domain = domain
        self.log = log or (lambda message: None)
        self.max_body = max_body

    def handle(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, source_ip: str = "127.0.0.1") -> Response:
        raw_path, _, raw_query = target.partition("?")
        path = unquote(raw_path) or "/"
        if len(body) > self.max_body:
            return Response.json(413, {"message": f"Request body is larger than {self.max_body // 1024} KiB"})
        if path == "/_local" or path.startswith("/_local/"):
            return self._local(method, path, raw_query, body)
        if self.routes is None:
            route_key, public, path_parameters = "$default", is_public(path), None
        else:
            selected = select_route(self.routes, method, path)
            if selected is None:
                return Response.json(404, {"message": "Not Found"})
            route, path_parameters = selected
            route_key, public = route.key, route.public
        claims = None
        if not public:
            claims = self.auth.verify(_header(headers, "authorization"))
            if claims is None:
                return Response.json(401, {"message": "Unauthorized"}, [("WWW-Authenticate", "Bearer")])
        event = self._event(method, raw_path, raw_query, headers, body, source_ip, claims, route_key, path_parameters)
        try:
            result = self.api(event)
        except Exception as exc:
            if type(exc).__name__ == "HandlerMissing":
                self.log(f"api handler missing: {exc}")
                return Response.json(502, {"message": f"The API handler is not available: {exc}"})
            self.log(f"api handler failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            return Response.json(500, {"message": "Internal Server Error"})
        return self._response(result, event["requestContext"]["requestId"])

    # --- API Gateway HTTP API, payload format 2.0 ----------------------------------------
    def _event(
        self,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
        claims: dict[str, Any] | None,
        route_key: str = "$default",
        path_parameters: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        merged: dict[str, str] = {}
        cookies: list[str] = []
        for name, value in headers:
            key = name.lower()
            if key == "cookie":
                cookies += [c.strip() for c in value.split(";") if c.strip()]
                continue
            merged[key] = f"{merged[key]},{value}" if key in merged else value
        query: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        now = datetime.now(timezone.utc)
        request_id = base64.b32encode(uuid.uuid4().bytes[:10]).decode().rstrip("=")
        context: dict[str, Any] = {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": self.domain,
            "domainPrefix": self.domain.split(".")[0],
            "http": {
                "method": method,
                "path": unquote(raw_path),
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        }
        if claims is not None:
            context["authorizer"] = {"jwt": {"claims": _claims_as_strings(claims), "scopes": None}}
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": raw_path,
            "rawQueryString": raw_query,
            "headers": merged,
            "requestContext": context,
            "isBase64Encoded": False,
        }
        if cookies:
            event["cookies"] = cookies
        if query:
            event["queryStringParameters"] = query
        if path_parameters:
            event["pathParameters"] = path_parameters
        if body:
            content_type = merged.get("content-type", "application/json").lower()
            text = _as_text(body) if content_type.startswith(TEXT_TYPES) or not content_type else None
            if text is None:
                event["body"] = base64.b64encode(body).decode()
                event["isBase64Encoded"] = True
            else:
                event["body"] = text
        return event

    def _response(self, result: Any, request_id: str) -> Response:
        extra = [("Apigw-Requestid", request_id)]
        if not (isinstance(result, dict) and "statusCode" in result):
            # Payload 2.0 without statusCode: API Gateway assumes 200 and JSON.
            body = result if isinstance(result, str) else json.dumps(result)
            return Response(200, [("Content-Type", "application/json")] + extra, body.encode())
        headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers += [(str(name), str(v)) for v in values]
        headers += [("Set-Cookie", str(c)) for c in result.get("cookies") or []]
        body = result.get("body")
        if body is None:
            payload = b""
        elif result.get("isBase64Encoded"):
            payload = base64.b64decode(body)
        elif isinstance(body, str):
            payload = body.encode()
        else:
            payload = json.dumps(body).encode()
        return Response(int(result["statusCode"]), headers + extra, payload)

    # --- /_local ----------------------------------------------------------------------
    def _local(self, method: str, path: str, raw_query: str, body: bytes) -> Response:
        routes: dict[str, dict[str, Callable[[], Response]]] = {
            "/_local/token": {"POST": lambda: self._token(body)},
            "/_local/clock": {"GET": self._clock_now, "POST": lambda: self._clock_advance(body)},
            "/_local/tick": {"POST": self._tick},
            "/_local/emails": {"GET": lambda: self._emails(raw_query)},
            "/_local/dashboard": {"GET": lambda: self._dashboard(raw_query)},
        }
        methods = routes.get(path.rstrip("/"))
        if methods is None:
            return Response.json(404, {"message": "Not Found"})
        action = methods.get(method)
        if action is None:
            return Response.json(405, {"message": f"{method} is not allowed on {path}"}, [("Allow", ", ".join(methods))])
        return action()

    def _token(self, body: bytes) -> Response:
        data = _json_body(body)
        if isinstance(data, Response):
            return data
        team_id = data.get("team_id")
        if not isinstance(team_id, str) or not team_id.strip() or len(team_id) > 200:
            return Response.json(422, {"message": "team_id: a non-empty string of at most 200 characters is required"})
        ttl = data.get("expires_in_seconds")
        if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool)):
            return Response.json(422, {"message": "expires_in_seconds: an integer is required"})
        email = data.get("email") if isinstance(data.get("email"), str) else None
        subject = data.get("sub") if isinstance(data.get("sub"), str) else None
        token = self.auth.mint(team_id.strip(), subject=subject, email=email, ttl_seconds=ttl)
        return Response.json(200, {"token": token})

    def _clock_now(self) -> Response:
        return Response.json(200, {"now": _iso(self.control.now())})

    def _clock_advance(self, body: bytes) -> Response:
        data = _json_body(body)
        if isinstance(data, Response):
            return data
        seconds = data.get("advance_seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 10 * 366 * 86400:
            return Response.json(422, {"message": "advance_seconds: a number of seconds from 0 to 10 years is required"})
        return Response.json(200, self.control.fast_forward(float(seconds)))

    def _tick(self) -> Response:
        result = self.control.tick()
        return Response.json(200, {"now": _iso(self.control.now()), "result": _jsonable(result)})

    def _emails(self, raw_query: str) -> Response:
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        return Response.json(200, {"items": self.control.emails(query.get("to") or None, query.get("team") or None, query.get("run") or None)})


    def _dashboard(self, raw_query: str) -> Response:
        """The team's pipelines as an HTML page, read through the API handler like any
        client would (with a token minted for the team), so it shows what the API says."""
        from dripline_local import dashboard

        team = dict(parse_qsl(raw_query)).get("team") or "demo"
        headers = [("Authorization", f"Bearer {self.auth.mint(team)}")]

        def get(path: str) -> dict[str, Any]:
            reply = self.handle("GET", path, headers, b"")
            if reply.status != 200:
                raise RuntimeError(f"GET {path} answered {reply.status}: {reply.body[:300]!r}")
            return json.loads(reply.body)

        try:
            rows = dashboard.collect(get)
        except RuntimeError as exc:
            return Response.json(502, {"message": str(exc)})
        page = dashboard.render_html(rows, team=team, now=self.control.now())
        return Response(200, [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store"),
                              ("Content-Security-Policy", dashboard.CONTENT_SECURITY_POLICY)], page.encode())


def _json_body(body: bytes) -> dict[str, Any] | Response:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return Response.json(400, {"message": f"body: malformed JSON ({exc})"})
    if not isinstance(data, dict):
        return Response.json(400, {"message": "body: a JSON object is required"})
    return data


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return json.loads(json.dumps(value, default=str))


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _as_text(body: bytes) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- the socket side: werkzeug's WSGI server ----------------------------------------------


class PortInUse(OSError):
    """The API's port is taken (the message names it and suggests --port 0)."""


class _Quiet(WSGIRequestHandler):
    """werkzeug's request handler, logging through the stack (one line per request is
    written by LocalHttpServer) instead of the `werkzeug` logger."""

    server_version = "dripline-local"
    request_log: Callable[[str], None] = staticmethod(lambda message: None)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        self.request_log(f"http: {format % args}")


class LocalHttpServer:
    """werkzeug's threaded WSGI server in front of a LocalHttpApp, bound at construction
    (so port 0 resolves early). werkzeug parses the request, including chunked bodies,
    and closes each connection after its response."""

    def __init__(self, host: str, port: int, log: Callable[[str], None]) -> None:
        self.log = log
        self.app: LocalHttpApp | None = None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(128)
        except OSError as exc:
            listener.close()
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(f"port {port} on {host} is already in use; stop what holds it, or start with --port 0 (any free port)") from exc
            raise
        handler = type("Handler", (_Quiet,), {"request_log": staticmethod(log)})
        # werkzeug takes the bound socket by descriptor (a bind error of its own would
        # exit the process); it works on a duplicate, so ours is closed.
        self.server = make_server(host, port, self._wsgi, threaded=True, request_handler=handler, fd=listener.fileno())
        listener.close()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def serve(self, app: LocalHttpApp) -> None:
        self.app = app
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, name="http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.server.server_close()

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        assert self.app is not None, "serve() first"
        started = time.monotonic()
        request = Request(environ)
        target = environ.get("RAW_URI") or request.full_path
        response = self._read_and_handle(request, target)
        self.log(f"{request.method:<7} {target} → {response.status} ({(time.monotonic() - started) * 1000:.0f} ms)")
        headers = [(k, v) for k, v in response.headers if k.lower() not in ("content-length", "connection", "transfer-encoding")]
        return WsgiResponse(response.body, status=response.status, headers=headers)(environ, start_response)

    def _read_and_handle(self, request: Request, target: str) -> Response:
        assert self.app is not None
        limit = self.app.max_body
        declared = request.environ.get("CONTENT_LENGTH")
        if declared and not declared.strip().isdigit():
            return Response.json(400, {"message": "Content-Length: not a non-negative integer"})
        # One byte over the limit is enough to know (werkzeug stops reading there; the
        # app answers 413 on the length); a declared Content-Length over it raises.
        request.max_content_length = limit + 1
        try:
            body = request.get_data(cache=False)
        except RequestEntityTooLarge:
            return Response.json(413, {"message": f"Request body is larger than {limit // 1024} KiB"})
        except ClientDisconnected as exc:  # werkzeug's dechunker: a malformed chunk size or terminator
            cause = exc.__context__ or exc
            return Response.json(400, {"message": f"Transfer-Encoding: malformed chunked body ({cause})"})
        try:
            return self.app.handle(request.method, target, list(request.headers.items()), body, request.remote_addr or "127.0.0.1")
        except Exception as exc:  # never leave the client hanging
            self.log(f"local server error: {exc!r}\n{traceback.format_exc()}")
            return Response.json(500, {"message": "Internal Server Error"})
