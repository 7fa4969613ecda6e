"""Unsubscribe links: the link in every email is its own credential (RFC 8058).

A link's token is sealed opaque (`signing.seal_opaque`): it reveals neither the team nor
the contact, and any change to it fails. It carries:

- the team and the contact it unsubscribes;
- the contact's subscription generation when the email was sent. Re-subscribing a
  contact (PATCH `unsubscribed: false`) moves the generation on, so the links in emails
  sent before stop working: an old email cannot undo a later decision to subscribe again;
- the day it was issued: a link works for LIFETIME_DAYS (a year; the law asks for at
  least 30 days), then answers like a forged one.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from dripline import signing

SEPARATOR = "\x1f"
CONTEXT = b"unsubscribe"
LIFETIME_DAYS = 365
EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class Link:
    team_id: str
    contact_id: str
    generation: int
    issued: date


def sign(secret: str, team_id: str, contact_id: str, generation: int, now: datetime) -> str:
    day = (now.date() - EPOCH).days
    payload = SEPARATOR.join((team_id, contact_id, str(generation), str(day)))
    return signing.seal_opaque(secret, payload.encode(), CONTEXT)


def verify(secret: str, token: str, now: datetime) -> Link | None:
    """The link a genuine, unexpired token stands for; None for a forged, altered or expired one."""
    payload = signing.unseal_opaque(secret, token, CONTEXT)
    if payload is None:
        return None
    try:
        team_id, contact_id, generation, day = payload.decode("utf-8").split(SEPARATOR)
        link = Link(team_id, contact_id, int(generation), EPOCH + timedelta(days=int(day)))
    except ValueError:  # a genuine token always parses; kept strict anyway
        return None
    if not team_id or not contact_id or now.date() > link.issued + timedelta(days=LIFETIME_DAYS):
        return None
    return link


def unsubscribe_url(base_url: str, secret: str, team_id: str, contact_id: str, generation: int, now: datetime) -> str:
    return f"{base_url}/unsubscribe/{sign(secret, team_id, contact_id, generation, now)}"


def masked(address: str) -> str:
    """ada@example.com -> a•••@example.com: enough to recognise, not enough to harvest."""
    local, at, domain = address.partition("@")
    return f"{local[:1]}\u2022\u2022\u2022{at}{domain}"
