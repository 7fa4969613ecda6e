"""Shared fixtures: moto with the tables of infra/template.yaml, a manual clock, settings."""
from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest

# Before any AWS client exists: moto 5.2 does not route account-id endpoints (StreamArn calls).
os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
for name, value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_METRICS_NAMESPACE": "DriplineTest",
    "POWERTOOLS_SERVICE_NAME": "dripline-test",
    "POWERTOOLS_LOG_LEVEL": "INFO",  # as deployed: log calls must work at INFO
    "POWERTOOLS_METRICS_DISABLED": "true",
}.items():
    os.environ[name] = value
os.environ.pop("AWS_ENDPOINT_URL", None)

from moto import mock_aws  # noqa: E402

from dripline import clock, keys, runtime  # noqa: E402
from dripline.clock import ManualClock  # noqa: E402
from dripline.settings import Settings  # noqa: E402
from dripline_local.resources import LocalResources, create_resources  # noqa: E402

START = datetime(2026, 3, 2, 9, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def frozen_clock():
    fake = ManualClock(START)
    previous = clock.install(fake)
    yield fake
    clock.install(previous)


@pytest.fixture
def settings() -> Settings:
    return Settings(retry_base_seconds=60, retry_max_seconds=3600, processor_workers=8, due_shards=4)


@pytest.fixture
def aws(settings, frozen_clock) -> LocalResources:
    """Emulated AWS with every resource of the template, tables bound to the models."""
    from dripline_local.moto_indexes import index_queries
    from dripline_local.moto_lock import serialise_dynamodb

    serialise_dynamodb()  # moto's conditional writes are not atomic across threads
    index_queries()  # moto's index queries scan the whole table
    with mock_aws():
        resources = create_resources(settings)
        runtime.configure(settings)
        yield resources
    runtime.reset()
    keys.forget()  # the next emulator's secrets are new


@pytest.fixture(autouse=True)
def _action_registry():
    """A custom action a test registers does not outlive the test (the registry is per process,
    and the OpenAPI document lists the registered actions)."""
    from dripline import actions

    registered = dict(actions._registry)
    yield
    actions._registry.clear()
    actions._registry.update(registered)
