"""Signed unsubscribe links: the link in every email is its own credential (RFC 8058)."""
from __future__ import annotations

from dripline import signing

SEPARATOR = "\x1f"
CONTEXT = b"unsubscribe"


def sign(secret: str, team_id: str, contact_id: str) -> str:
    return signing.seal(secret, f"{team_id}{SEPARATOR}{contact_id}".encode(), CONTEXT)


def verify(secret: str, token: str) -> tuple[str, str] | None:
    """(team_id, contact_id) for a genuine token; None for a forged or altered one."""
    payload = signing.unseal(secret, token, CONTEXT)
    if payload is None:
        return None
    team_id, sep, contact_id = payload.decode("utf-8", "replace").partition(SEPARATOR)
    if not sep or not team_id or not contact_id:
        return None
    return team_id, contact_id


def unsubscribe_url(base_url: str, secret: str, team_id: str, contact_id: str) -> str:
    return f"{base_url}/unsubscribe/{sign(secret, team_id, contact_id)}"
