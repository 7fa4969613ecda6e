"""HMAC-signed tokens: `base64url(payload) "." base64url(HMAC-SHA256(secret, context + payload))`.

Used for the unsubscribe links in emails and the API's pagination tokens. The
`context` is bound into the MAC without being carried in the token (e.g. the caller's
team), so a token only verifies where it was issued for.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SEPARATOR = b"\x1f"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, context: bytes, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), context + SEPARATOR + payload, hashlib.sha256).digest()


def seal(secret: str, payload: bytes, context: bytes = b"") -> str:
    return f"{_b64(payload)}.{_b64(_mac(secret, context, payload))}"


def unseal(secret: str, token: str, context: bytes = b"") -> bytes | None:
    """The payload of a genuine token; None for a forged, altered or malformed one."""
    try:
        payload_part, mac_part = token.split(".", 1)
        payload, mac = _unb64(payload_part), _unb64(mac_part)
    except (ValueError, binascii.Error):
        return None
    if not hmac.compare_digest(mac, _mac(secret, context, payload)):
        return None
    return payload
