"""Settling an email step whose outcome is unknown, from SES `Send` events.

SES has no idempotency key. When the processor loses track of a send (its process died
after SendEmail and the lease expired, or SendEmail's answer was lost), the email may or
may not have gone out. The configuration set publishes a `Send` event for every email
SES accepts, tagged with its run and step; ses_events records it (storage.deliveries).
Before such a step runs again the processor asks here:

    Send event recorded            -> succeeded (detail.recovered = "ses_send_event"): not resent
    none, settle window not over   -> wait (a retryable failure: the next tick asks again)
    none after the settle window   -> resend
    no event store reachable       -> the at_most_once fallback: skipped / delivery_unknown

The settle window starts when the outcome was first found unknown (a reclaim), or is the
backoff before a retry that follows a lost answer (at least RETRY_BASE_SECONDS). A Send
event later than the window still means a duplicate: the window bounds how late events
may be, as `at_most_once` bounds nothing but never resends.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from dripline import engine
from dripline.domain import ClaimedRun
from dripline.engine import ActionResult, DELIVERY_UNKNOWN
from dripline.observability import logger
from dripline.settings import DeliveryPolicy, Settings
from dripline.storage import deliveries

DELIVERY_UNVERIFIED = "delivery_unverified"  # waiting for the settle window
RECOVERED = "ses_send_event"
# The event store cannot be used at all (not a passing error): fall back to at_most_once.
UNREACHABLE_CODES = frozenset({"ResourceNotFoundException", "AccessDeniedException", "UnrecognizedClientException"})


def before_repeat(claimed: ClaimedRun, action_idempotent: bool, settings: Settings, now: datetime) -> ActionResult | None:
    """A step runs again (reclaimed after its lease expired, or retried after a failure):
    the result to record instead of running it, or None to run it."""
    if action_idempotent or settings.delivery_policy is DeliveryPolicy.AT_LEAST_ONCE:
        return None
    try:
        if claimed.reclaimed:
            record = deliveries.mark_unknown(claimed.team_id, claimed.run_id, claimed.step_number, now)
        else:
            record = deliveries.find(claimed.team_id, claimed.run_id, claimed.step_number)
    except (PynamoDBException, BotoCoreError, ClientError) as exc:
        if _code(exc) in UNREACHABLE_CODES:
            logger.warning("no delivery event store: at_most_once", extra={"run_id": claimed.run_id, "error": repr(exc)})
            return engine.outcome_of_reclaimed_step(action_idempotent, DeliveryPolicy.AT_MOST_ONCE)
        # Passing trouble reading the store: nothing was sent, ask again on the next try.
        return ActionResult.failed(f"delivery_check_failed: {_code(exc) or type(exc).__name__}", retryable=True)
    if record is not None and record.message_ids:
        logger.info("unknown delivery recovered from its SES Send event", extra={"run_id": claimed.run_id})
        return ActionResult.succeeded(message_id=sorted(record.message_ids)[0], recovered=RECOVERED)
    since = record.unknown_since if record is not None else None
    if since is None or now >= since + timedelta(seconds=settings.send_event_settle_seconds):
        return None  # no Send event after the window: SES did not accept it
    if claimed.attempts + 1 >= settings.max_attempts:
        # No attempt left to wait with: never send twice.
        return ActionResult.skipped(DELIVERY_UNKNOWN)
    return ActionResult.failed(DELIVERY_UNVERIFIED, retryable=True)


def _code(exc: Exception) -> str | None:
    cause = getattr(exc, "cause", None) or exc
    return getattr(cause, "response", {}).get("Error", {}).get("Code")

