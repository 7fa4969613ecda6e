"""The team's webhook signing secret: read it (created on first read), rotate it."""
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel, Field

from dripline import clock
from dripline.api.identity import current_team
from dripline.api.routes import AUTH, ok
from dripline.clock import iso
from dripline.storage import teams

router = Router()
TAGS = ["webhooks"]


class WebhookSecretOut(BaseModel):
    secret: str = Field(
        description="Key of the HMAC-SHA256 in `Dripline-Signature` (its UTF-8 bytes, prefix included)",
        examples=["whsec_5f0c..."],
    )
    created_at: str = Field(description="When this secret was made (ISO 8601, UTC, with `Z`)")
    previous_valid_until: str | None = Field(
        description="After a rotation, webhooks are also signed with the previous secret until then"
    )


def _out(keys: teams.SigningKeys) -> WebhookSecretOut:
    return WebhookSecretOut(secret=keys.secret, created_at=iso(keys.created_at), previous_valid_until=iso(keys.previous_valid_until))


@router.get(
    "/webhook-secret", operation_id="get_webhook_secret",
    summary="The team's webhook signing secret",
    description="Created on first use. Receivers verify `Dripline-Signature` with it (see the README).",
    tags=TAGS, security=AUTH,
    responses=ok("The secret"),
)
def get_webhook_secret() -> WebhookSecretOut:
    return _out(teams.webhook_secret(current_team(router), clock.now()))


@router.post(
    "/webhook-secret/rotate", operation_id="rotate_webhook_secret",
    summary="Replace the webhook signing secret",
    description=f"The previous secret stays valid for {int(teams.ROTATION_GRACE.total_seconds() // 3600)} hours: "
    "meanwhile every webhook carries a `v1` signature under each. 409 if another rotation ran at the same time.",
    tags=TAGS, security=AUTH,
    responses=ok("The new secret", 200, 409),
)
def rotate_webhook_secret() -> WebhookSecretOut:
    return _out(teams.rotate_webhook_secret(current_team(router), clock.now()))
