"""The team's suppression list: addresses never to be emailed again, whichever contact
carries them (one deleted and created again included). Keyed by the normalised address
(dripline.storage.contacts.normalised) in the pipelines table."""
from __future__ import annotations

from datetime import datetime

from pynamodb.exceptions import DeleteError, DoesNotExist, PutError

from dripline.observability import logger
from dripline.storage.contacts import normalised
from dripline.storage.models import Suppression
from dripline.storage.util import is_condition_failure

PREFIX = "SUPPRESSION#"
REASONS = ("unsubscribe", "bounce", "complaint", "manual")


def suppression_sk(email: str) -> str:
    return PREFIX + normalised(email)


def suppress(team_id: str, email: str, reason: str, now: datetime, contact_id: str | None = None) -> tuple[Suppression, bool]:
    """Add `email` with its reason and time; idempotent: an address already on the list
    keeps its first reason and time. Returns (the entry, whether it was added now).
    An addition is logged with ids and the reason, never the address."""
    entry = Suppression(team_id, suppression_sk(email), email=normalised(email), reason=reason, created_at=now,
                        contact_id=contact_id)
    try:
        entry.save(condition=Suppression.sk.does_not_exist())
        logger.info("address suppressed", extra={"team_id": team_id, "contact_id": contact_id, "reason": reason})
        return entry, True
    except PutError as exc:
        if not is_condition_failure(exc):
            raise
    existing = find(team_id, email)
    return (existing, False) if existing is not None else suppress(team_id, email, reason, now, contact_id)


def find(team_id: str, email: str) -> Suppression | None:
    try:
        return Suppression.get(team_id, suppression_sk(email), consistent_read=True)
    except DoesNotExist:
        return None


def remove(team_id: str, email: str) -> Suppression | None:
    """Take `email` off the list; the entry removed, or None if it was not listed."""
    entry = find(team_id, email)
    if entry is None:
        return None
    try:
        entry.delete(condition=Suppression.sk.exists())
    except DeleteError as exc:
        if is_condition_failure(exc):
            return None
        raise
    return entry


def suppressed(team_id: str, emails: list[str]) -> set[str]:
    """Which of `emails` (normalised) the team suppresses: BatchGetItem, 100 keys a call."""
    keys = [(team_id, suppression_sk(e)) for e in dict.fromkeys(normalised(e) for e in emails)]
    if not keys:
        return set()
    return {entry.email for entry in Suppression.batch_get(keys, consistent_read=True)}


def list_suppressions(
    team_id: str, *, limit: int = 50, start_key: dict | None = None
) -> tuple[list[Suppression], dict | None]:
    """A page of the team's suppressions (by address) and the key to continue from."""
    result = Suppression.query(team_id, Suppression.sk.startswith(PREFIX), limit=limit, last_evaluated_key=start_key)
    items = list(result)
    return items, result.last_evaluated_key
