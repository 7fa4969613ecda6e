"""The local stack runs the processor's workers: with a small RunsPerInvocation, a tick
with more due runs hands shards to ProcessorWorkerFunction through Lambda's Invoke API."""
from __future__ import annotations

import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.conftest import running_stack

pytestmark = pytest.mark.e2e

CONTACTS = 40


@pytest.fixture(scope="module")
def fanout_stack(tmp_path_factory):
    with running_stack(tmp_path_factory.mktemp("fanout-stack"), "--parameter", "RunsPerInvocation=8") as stack:
        yield stack


def test_a_backlog_is_shared_with_workers_and_every_email_goes_out_once(fanout_stack):
    team = f"fan-{uuid.uuid4().hex[:8]}"
    api = fanout_stack.client(team)
    api.call("POST", "/pipelines", {"name": "Hello", "automatic": True, "steps": [
        {"step_number": 1, "action_type": "send_email", "delay_seconds": 0, "message": "Hi", "data": {"subject": "Hi"}}]}, expect=201)
    addresses = [f"c{i}.{team}@example.com" for i in range(CONTACTS)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda a: api.call("POST", "/contacts", {"email": a}, expect=201), addresses))

    api.call("POST", "/_local/clock", {"advance_seconds": 300})

    sent = Counter(to for e in api.call("GET", "/_local/emails")["items"] for to in e["to"] if to.endswith(f".{team}@example.com"))
    assert sent == Counter({a: 1 for a in addresses}), fanout_stack.log_tail()
    log = fanout_stack.log_path.read_text()
    assert "ProcessorWorkerFunction → " in log and "workers=" in log, fanout_stack.log_tail()
