"""Signed unsubscribe tokens: the link in every email is its own credential (RFC 8058).

token = base64url(team_id \\x1f contact_id) + "." + base64url(HMAC-SHA256(secret, payload))
"""
from __future__ import annotations

import base64
import hashlib
import hmac

SEPARATOR = "\x1f"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: str, team_id: str, contact_id: str) -> str:
    payload = f"{team_id}{SEPARATOR}{contact_id}".encode()
    mac = hmac.new(secret.encode(), payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def verify(secret: str, token: str) -> tuple[str, str] | None:
    """(team_id, contact_id) for a genuine token; None for a forged or altered one."""
    try:
        payload_part, mac_part = token.split(".", 1)
        payload = _unb64(payload_part)
        mac = _unb64(mac_part)
    except (ValueError, TypeError):
        return None
    expected = hmac.new(secret.encode(), payload, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        return None
    team_id, sep, contact_id = payload.decode("utf-8", "replace").partition(SEPARATOR)
    if not sep or not team_id or not contact_id:
        return None
    return team_id, contact_id


def unsubscribe_url(base_url: str, secret: str, team_id: str, contact_id: str) -> str:
    return f"{base_url}/unsubscribe/{sign(secret, team_id, contact_id)}"
