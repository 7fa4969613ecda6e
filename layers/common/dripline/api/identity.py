"""Who is calling: the team named by the verified token's claims, nothing else.

API Gateway's JWT authorizer verified the token before the handler runs and passed
its claims in `requestContext.authorizer.jwt.claims`. The team is never read from the
body or the query.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from dripline.api.errors import Unauthorized

TEAM_CLAIM = "custom:team_id"
MAX_TEAM_ID = 200
# Paths served without a token (the authorizer is off for them in the template too).
PUBLIC_PATHS = frozenset({"/health", "/openapi.json", "/docs"})
PUBLIC_PREFIXES = ("/unsubscribe/",)


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def team_from_event(event: dict[str, Any]) -> str | None:
    """The caller's team, or None when the event carries no usable team claim.

    Keys are built as "<team>#...", so a team id holding "#" (or a control character)
    could reach into another team's key space: such a claim is refused, not escaped.
    """
    context = event.get("requestContext") or {}
    claims = (((context.get("authorizer") or {}).get("jwt") or {}).get("claims")) or {}
    team = claims.get(TEAM_CLAIM) if isinstance(claims, dict) else None
    if not isinstance(team, str) or not team.strip() or len(team) > MAX_TEAM_ID:
        return None
    if "#" in team or any(ord(c) < 32 for c in team):
        return None
    return team


def current_team(router) -> str:
    """The team of the request a route is serving (401 if there is none)."""
    team = team_from_event(router.current_event.raw_event)
    if team is None:
        raise Unauthorized()
    return team


def caller_email(router) -> str | None:
    """The caller's own address: the token's `email` claim when `email_verified` is true.

    Cognito sets both on an ID token; the address is the one the team member proved they
    read, which is what makes it safe to send a test email to (dripline.api.service.test_send).
    """
    context = router.current_event.raw_event.get("requestContext") or {}
    claims = (((context.get("authorizer") or {}).get("jwt") or {}).get("claims")) or {}
    if not isinstance(claims, dict) or str(claims.get("email_verified", "")).lower() != "true":
        return None
    address = claims.get("email")
    return address if isinstance(address, str) and address else None


def request_settings(router, settings):
    """`settings` with the API's public URL taken from the request when so configured.

    In AWS the processor's PUBLIC_API_URL is this API's default endpoint, which is the
    domain a request through it names (`requestContext.domainName`): unsubscribe links a
    preview renders are then the ones the processor sends.
    """
    if not settings.public_api_url_from_request:
        return settings
    domain = (router.current_event.raw_event.get("requestContext") or {}).get("domainName")
    return dataclasses.replace(settings, public_api_url=f"https://{domain}") if domain else settings
