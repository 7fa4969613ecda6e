"""A tiny JSON-over-HTTP client for the local stack (stdlib only; used by seed and demo)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class ApiError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"{method} {path} → {status}: {message}")
        self.status = status
        self.body = body


class LocalClient:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 120) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def call(self, method: str, path: str, body: Any = None, expect: int | tuple[int, ...] = (200, 201, 204)) -> Any:
        status, payload = self.request(method, path, body)
        if status not in ((expect,) if isinstance(expect, int) else expect):
            raise ApiError(method, path, status, payload)
        return payload

    def token_for(self, team_id: str) -> str:
        return self.call("POST", "/_local/token", {"team_id": team_id})["token"]

    def as_team(self, team_id: str) -> "LocalClient":
        return LocalClient(self.base_url, self.token_for(team_id), self.timeout)
