"""Team-level items of the pipelines table: the webhook signing secret.

The secret is created on first use (the first read through the API, or the team's
first webhook) by a conditional write, so two first users agree on one secret. Rotating
replaces it; the one it replaced stays valid for ROTATION_GRACE, during which webhooks
carry a signature under each, so receivers can switch keys without dropping deliveries.
Both writes are UpdateItem calls (an update creates a missing item): the processor may
create the secret with the UpdateItem permission it already has on this table.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from pynamodb.exceptions import DoesNotExist, UpdateError

from dripline.errors import Conflict
from dripline.storage.models import WEBHOOK_SECRET_SK, WebhookSecret
from dripline.storage.util import is_condition_failure

ROTATION_GRACE = timedelta(hours=24)
SECRET_PREFIX = "whsec_"


@dataclass(frozen=True)
class SigningKeys:
    """The current secret, and the previous one while it is still honoured."""

    secret: str
    created_at: datetime
    previous_secret: str | None = None
    previous_valid_until: datetime | None = None

    def valid_secrets(self, now: datetime) -> list[str]:
        """The secrets to sign with at `now`: the current one first."""
        keys = [self.secret]
        if self.previous_secret and self.previous_valid_until and now < self.previous_valid_until:
            keys.append(self.previous_secret)
        return keys


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_hex(32)


def webhook_secret(team_id: str, now: datetime) -> SigningKeys:
    """The team's signing keys, created on first use (strongly consistent: a rotation applies at once)."""
    item = _read(team_id)
    if item is not None:
        return _keys(item)
    created = WebhookSecret(team_id, WEBHOOK_SECRET_SK)
    try:
        created.update(
            actions=[WebhookSecret.secret.set(new_secret()), WebhookSecret.created_at.set(now)],
            condition=WebhookSecret.secret.does_not_exist(),
        )
    except UpdateError as exc:
        if not is_condition_failure(exc):
            raise
        # Another first user won the race: theirs is the team's secret.
        item = _read(team_id)
        if item is None:
            raise
        return _keys(item)
    return _keys(created)


def rotate_webhook_secret(team_id: str, now: datetime) -> SigningKeys:
    """A new secret; the one it replaces stays valid for ROTATION_GRACE.

    Conditional on the secret read, so two concurrent rotations cannot both succeed (the
    loser is a Conflict: its caller would otherwise hold a secret already replaced).
    """
    current = webhook_secret(team_id, now)
    item = WebhookSecret(team_id, WEBHOOK_SECRET_SK)
    try:
        item.update(
            actions=[
                WebhookSecret.secret.set(new_secret()),
                WebhookSecret.created_at.set(now),
                WebhookSecret.previous_secret.set(current.secret),
                WebhookSecret.previous_valid_until.set(now + ROTATION_GRACE),
            ],
            condition=WebhookSecret.secret == current.secret,
        )
    except UpdateError as exc:
        if is_condition_failure(exc):
            raise Conflict("webhook secret: rotated by another request at the same time; read it again") from exc
        raise
    return _keys(item)


def _read(team_id: str) -> WebhookSecret | None:
    try:
        item = WebhookSecret.get(team_id, WEBHOOK_SECRET_SK, consistent_read=True)
    except DoesNotExist:
        return None
    return item if item.secret else None


def _keys(item: WebhookSecret) -> SigningKeys:
    return SigningKeys(
        secret=item.secret,
        created_at=item.created_at,
        previous_secret=item.previous_secret,
        previous_valid_until=item.previous_valid_until,
    )
