"""HMAC-SHA256 tokens, signed (`seal`) or sealed opaque (`seal_opaque`).

`seal`: `base64url(payload) "." base64url(HMAC-SHA256(secret, context + payload))`, for the
API's pagination tokens (the payload is readable; the caller handed it in anyway).

`seal_opaque`: `base64url(tag + ciphertext)`, for the unsubscribe links that travel in
emails and must not show whose they are. A deterministic authenticated encryption in the
SIV style, built only from HMAC-SHA256 (the standard library has no cipher):
tag = HMAC(mac key, context + payload)[:16], ciphertext = payload XOR a keystream of
HMAC(encryption key, tag + counter) blocks; the two keys are derived from the secret.
Decrypting and recomputing the tag verifies it: any altered byte fails.

Either way the `context` is bound into the MAC without being carried in the token (e.g.
the caller's team), so a token only verifies where it was issued for.
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


TAG_BYTES = 16


def _key(secret: str, purpose: bytes) -> bytes:
    return hmac.new(secret.encode(), b"dripline-opaque-" + purpose, hashlib.sha256).digest()


def _keystream(key: bytes, tag: bytes, length: int) -> bytes:
    blocks = (hmac.new(key, tag + counter.to_bytes(4, "big"), hashlib.sha256).digest() for counter in range(-(-length // 32)))
    return b"".join(blocks)[:length]


def _xor(data: bytes, stream: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, stream, strict=True))


def seal_opaque(secret: str, payload: bytes, context: bytes = b"") -> str:
    tag = hmac.new(_key(secret, b"mac"), context + SEPARATOR + payload, hashlib.sha256).digest()[:TAG_BYTES]
    return _b64(tag + _xor(payload, _keystream(_key(secret, b"enc"), tag, len(payload))))


def unseal_opaque(secret: str, token: str, context: bytes = b"") -> bytes | None:
    """The payload of a genuine opaque token; None for a forged, altered or malformed one."""
    try:
        sealed = _unb64(token)
    except (ValueError, binascii.Error):
        return None
    tag, ciphertext = sealed[:TAG_BYTES], sealed[TAG_BYTES:]
    if len(tag) < TAG_BYTES:
        return None
    payload = _xor(ciphertext, _keystream(_key(secret, b"enc"), tag, len(ciphertext)))
    expected = hmac.new(_key(secret, b"mac"), context + SEPARATOR + payload, hashlib.sha256).digest()[:TAG_BYTES]
    return payload if hmac.compare_digest(tag, expected) else None
