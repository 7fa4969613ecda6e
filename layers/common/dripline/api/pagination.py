"""Opaque, signed page tokens.

next_token = base64url(JSON {"s": scope, "k": LastEvaluatedKey}) "." base64url(HMAC-SHA256)

The MAC covers the team and the scope (which listing, which index), so a token cannot
be replayed by another team or on another listing; on top of that, every key attribute
that names a team must name the caller's. Anything else is a 400 naming next_token.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from dripline import signing
from dripline.api.errors import BadRequest

T = TypeVar("T")

# Key attributes that carry the team: exactly (team_id) or as a "<team>#..." prefix.
_TEAM_EXACT = ("team_id",)
_TEAM_PREFIXED = ("owner", "pipeline_key", "contact_key")
MAX_FILL_ROUNDS = 10


def encode(secret: str, team_id: str, scope: str, key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    payload = json.dumps({"s": scope, "k": key}, separators=(",", ":"), sort_keys=True).encode()
    return signing.seal(secret, payload, team_id.encode())


def decode(secret: str, team_id: str, scope: str, token: str | None) -> dict[str, Any] | None:
    if token is None or token == "":
        return None
    invalid = BadRequest("next_token", "invalid or tampered pagination token")
    payload = signing.unseal(secret, token, team_id.encode())
    if payload is None:
        raise invalid
    try:
        document = json.loads(payload)
    except ValueError:
        raise invalid from None
    key = document.get("k") if isinstance(document, dict) else None
    if document.get("s") != scope or not _belongs_to(key, team_id):
        raise invalid
    return key


def _belongs_to(key: Any, team_id: str) -> bool:
    if not isinstance(key, dict) or not key:
        return False
    team_bearing = 0
    for name, typed in key.items():
        if not isinstance(typed, dict) or len(typed) != 1:
            return False
        ((kind, value),) = typed.items()
        if kind not in ("S", "N") or not isinstance(value, str):
            return False
        if name in _TEAM_EXACT:
            if value != team_id:
                return False
            team_bearing += 1
        elif name in _TEAM_PREFIXED:
            if not value.startswith(f"{team_id}#"):
                return False
            team_bearing += 1
    return team_bearing > 0


def fill_page(
    fetch: Callable[[int, dict | None], tuple[list[T], dict | None]], limit: int, start_key: dict | None
) -> tuple[list[T], dict | None]:
    """Up to `limit` items, reading on while a filtered query returns short pages.

    DynamoDB applies `Limit` before a filter, so a filtered page can be short (or empty)
    although more matches follow. Bounded: a page may still come back short, with a token.
    """
    items: list[T] = []
    key = start_key
    for _ in range(MAX_FILL_ROUNDS):
        page, key = fetch(limit - len(items), key)
        items.extend(page)
        if key is None or len(items) >= limit:
            break
    return items, key
