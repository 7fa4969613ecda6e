"""One typed view of the environment, read once per cold start and handed down.

Nothing in the package reads os.environ except Settings.from_env, so tests build a
Settings directly and no module does work at import time.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from dripline import keys


class DeliveryPolicy(str, Enum):
    """What to do with a non-idempotent step (email) whose outcome is unknown.

    The window: SES accepted the message, then the process died before the run was
    updated. A later tick finds the run with an expired lease and cannot know whether
    the email went out.
    """

    AT_MOST_ONCE = "at_most_once"  # record `skipped` / `delivery_unknown`; never resend
    AT_LEAST_ONCE = "at_least_once"  # send again; a contact may get it twice


@dataclass(frozen=True)
class Settings:
    contacts_table: str = "dripline-contacts"
    deals_table: str = "dripline-deals"
    pipelines_table: str = "dripline-pipelines"
    runs_table: str = "dripline-runs"
    tasks_table: str = "dripline-tasks"
    region: str = "us-east-1"
    # Overrides the DynamoDB endpoint (the local stack's emulator); None in AWS.
    dynamodb_endpoint: str | None = None
    # Every AWS endpoint (AWS_ENDPOINT_URL: the local stack's emulator); None in AWS.
    aws_endpoint: str | None = None

    email_from: str = "Dripline <no-reply@example.com>"
    ses_configuration_set: str = "dripline"
    # Base URL of the API, used for unsubscribe links in emails.
    public_api_url: str = "http://127.0.0.1:3000"
    # The API in AWS: public_api_url is the domain each request came in on (the API cannot
    # be told its own endpoint by the template; see dripline.api.identity.request_settings).
    # Only without a PUBLIC_API_URL.
    public_api_url_from_request: bool = False
    # Secrets Manager ids (ARN or name) of the signing keys, never the keys themselves:
    # the unsubscribe links' key, and the API pagination tokens' (next_token) key. The
    # defaults name what dripline_local.resources creates in the emulator for tests;
    # from_env never falls back to them (unset means no key: fail closed).
    unsubscribe_secret_id: str = "dripline-local-UnsubscribeLinkSecret"
    token_secret_id: str = "dripline-local-PaginationTokenSecret"

    # The due index is write-sharded over this many partitions (due#0 .. due#N-1).
    due_shards: int = 8
    max_attempts: int = 5
    retry_base_seconds: int = 60
    retry_max_seconds: int = 3600
    # A claimed run is `running` for at most this long before another tick may reclaim it.
    lease_seconds: int = 300
    # Stop claiming new runs when the invocation has less than this left.
    claim_margin_seconds: int = 15
    processor_workers: int = 16
    # Due runs one tick reads at most (oldest first, spread over the shards): what one
    # invocation runs in its budget. A bigger backlog fans out to worker invocations.
    max_runs_per_tick: int = 5000
    # The worker function the per-minute processor hands groups of shards to ("" = none:
    # the processor walks every shard it leases itself).
    worker_function: str = ""
    # How long a worker's shard lease lasts: the worker's timeout plus its time in Lambda's
    # async queue. The per-minute processor leases its own shards until its deadline.
    shard_lease_seconds: int = 180
    delivery_policy: DeliveryPolicy = DeliveryPolicy.AT_MOST_ONCE
    # How long after an email step's outcome became unknown its SES Send event may still
    # arrive; only then is a missing event taken to mean "not sent" (dripline.delivery).
    send_event_settle_seconds: int = 120
    # A step this late keeps the spacing to the next step instead of the plan (engine.after_step).
    replan_after_seconds: int = 3600
    # Comma-separated modules that register custom actions (see dripline.actions).
    action_modules: str = ""
    # The webhook action: seconds to connect, and again to wait for the answer.
    webhook_timeout_seconds: float = 10.0
    # Local stack and tests only: webhook URLs may use http and 127.0.0.1 (never in AWS).
    webhook_allow_insecure_local: bool = False

    @property
    def unsubscribe_secret(self) -> str:
        """Signs unsubscribe links (read from Secrets Manager, cached; raises if unavailable)."""
        return keys.signing_key(self.unsubscribe_secret_id, "UNSUBSCRIBE_SECRET_ID", region=self.region, endpoint_url=self.aws_endpoint)

    @property
    def token_secret(self) -> str:
        """Signs the API's pagination tokens (read from Secrets Manager, cached; raises if unavailable)."""
        return keys.signing_key(self.token_secret_id, "TOKEN_SECRET_ID", region=self.region, endpoint_url=self.aws_endpoint)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        defaults = cls()

        def text(name: str, default: str) -> str:
            return env.get(name) or default

        def number(name: str, default: int) -> int:
            raw = env.get(name)
            if raw in (None, ""):
                return default
            value = int(raw)
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
            return value

        return cls(
            contacts_table=text("CONTACTS_TABLE", defaults.contacts_table),
            deals_table=text("DEALS_TABLE", defaults.deals_table),
            pipelines_table=text("PIPELINES_TABLE", defaults.pipelines_table),
            runs_table=text("RUNS_TABLE", defaults.runs_table),
            tasks_table=text("TASKS_TABLE", defaults.tasks_table),
            region=text("AWS_REGION", text("AWS_DEFAULT_REGION", defaults.region)),
            dynamodb_endpoint=env.get("DYNAMODB_ENDPOINT") or env.get("AWS_ENDPOINT_URL") or None,
            email_from=text("EMAIL_FROM", defaults.email_from),
            ses_configuration_set=text("SES_CONFIGURATION_SET", defaults.ses_configuration_set),
            public_api_url=text("PUBLIC_API_URL", defaults.public_api_url).rstrip("/"),
            # A PUBLIC_API_URL given (the local stack gives every handler its own) wins.
            public_api_url_from_request=not env.get("PUBLIC_API_URL")
            and env.get("PUBLIC_API_URL_FROM_REQUEST", "").strip().lower() == "true",
            aws_endpoint=env.get("AWS_ENDPOINT_URL") or None,
            unsubscribe_secret_id=env.get("UNSUBSCRIBE_SECRET_ID", ""),
            token_secret_id=env.get("TOKEN_SECRET_ID", ""),
            due_shards=max(1, number("DUE_SHARDS", defaults.due_shards)),
            max_attempts=max(1, number("MAX_ATTEMPTS", defaults.max_attempts)),
            retry_base_seconds=number("RETRY_BASE_SECONDS", defaults.retry_base_seconds),
            retry_max_seconds=number("RETRY_MAX_SECONDS", defaults.retry_max_seconds),
            lease_seconds=max(1, number("LEASE_SECONDS", defaults.lease_seconds)),
            claim_margin_seconds=number("CLAIM_MARGIN_SECONDS", defaults.claim_margin_seconds),
            processor_workers=max(1, number("PROCESSOR_WORKERS", defaults.processor_workers)),
            max_runs_per_tick=max(1, number("MAX_RUNS_PER_TICK", defaults.max_runs_per_tick)),
            worker_function=text("WORKER_FUNCTION", defaults.worker_function),
            shard_lease_seconds=max(1, number("SHARD_LEASE_SECONDS", defaults.shard_lease_seconds)),
            replan_after_seconds=number("REPLAN_AFTER_SECONDS", defaults.replan_after_seconds),
            delivery_policy=DeliveryPolicy(text("DELIVERY_POLICY", defaults.delivery_policy.value)),
            send_event_settle_seconds=number("SEND_EVENT_SETTLE_SECONDS", defaults.send_event_settle_seconds),
            action_modules=text("ACTION_MODULES", defaults.action_modules),
            webhook_allow_insecure_local=env.get("WEBHOOK_ALLOW_INSECURE_LOCAL", "").strip().lower() in ("1", "true", "yes"),
        )
