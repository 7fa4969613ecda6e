"""End to end over real HTTP against `dripline local`: pipelines, contacts, the clock,
emails, tasks, runs, stats, the poison-record path and overlapping ticks."""
from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from urllib.parse import quote

import pytest

from dripline_local.seed import welcome_pipeline

pytestmark = pytest.mark.e2e
DAY = 86400


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def parse(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def test_health_is_public_and_every_other_route_needs_a_valid_token(local_stack, stack_log):
    anonymous = local_stack.client()
    assert anonymous.request("GET", "/health") == (200, {"status": "ok"})
    assert anonymous.request("GET", "/pipelines") == (401, {"message": "Unauthorized"})
    anonymous.token = "not-a-token"
    assert anonymous.request("GET", "/pipelines") == (401, {"message": "Unauthorized"})
    status, body = local_stack.client(unique("auth")).request("GET", "/pipelines")
    assert status == 200 and body["items"] == []


def test_a_body_over_256_kib_is_413(local_stack, stack_log):
    api = local_stack.client(unique("big"))
    status, body = api.request("POST", "/contacts", {"email": "big@example.com", "first_name": "x" * (300 * 1024)})
    assert status == 413 and body["message"]


def test_a_malformed_content_length_is_400(local_stack, stack_log):
    import socket
    from urllib.parse import urlparse

    address = urlparse(local_stack.url)
    for length in (b"abc", b"-1"):
        with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
            conn.sendall(b"POST /_local/tick HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n")
            assert conn.recv(64).startswith(b"HTTP/1.1 400"), length


def test_a_drip_runs_end_to_end(local_stack, stack_log):
    team = unique("drip")
    api = local_stack.client(team)
    pipeline = api.call("POST", "/pipelines", welcome_pipeline(), expect=201)
    pid = pipeline["pipeline_id"]
    people = [("Ada", "Lovelace"), ("Alan", "Turing"), ("Grace", "Hopper")]
    contacts = [
        api.call("POST", "/contacts", {"email": f"{first.lower()}.{team}@example.com", "first_name": first, "last_name": last}, expect=201)
        for first, last in people
    ]

    summary = api.call("POST", "/_local/clock", {"advance_seconds": 4 * DAY})
    assert api.call("GET", "/_local/clock")["now"] == summary["now"]
    # The stack is shared with this file's other tests: at least this drip's work.
    assert summary["ticks"] >= 3 and summary["emails_sent"] >= 6 and summary["runs"]["completed"] >= 3
    # (stream_records is not checked: the background poller may enrol the contacts first)
    assert summary["steps_due"] >= 9

    for contact, (first, _) in zip(contacts, people):
        emails = api.call("GET", f"/_local/emails?to={quote(contact['email'])}")["items"]
        assert [e["subject"] for e in emails] == [f"Welcome, {first}!", "Checking in"]
        welcome, check_in = emails
        assert welcome["to"] == [contact["email"]]
        assert welcome["text"].startswith(f"Hi {first}, welcome to Dripline!")
        assert f"Hi {first}, how are your first days going?" in check_in["text"]
        assert first in (welcome["html"] or "")
        assert welcome["headers"]["List-Unsubscribe"].startswith(f"<{local_stack.url}/unsubscribe/")
        assert welcome["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        # Day 0 and day 3 of the virtual clock, each within a tick of its due time.
        gap = parse(check_in["sent_at"]) - parse(welcome["sent_at"])
        assert timedelta(days=3) <= gap <= timedelta(days=3, minutes=3)

        (run,) = api.call("GET", f"/contacts/{contact['contact_id']}/runs")["items"]
        assert run["pipeline_id"] == pid and run["source"] == "automatic" and run["status"] == "completed"
        assert [(h["step_number"], h["outcome"]) for h in run["history"]] == [(1, "succeeded"), (2, "succeeded"), (3, "succeeded")]

        (task,) = api.call("GET", f"/tasks?contact_id={contact['contact_id']}")["items"]
        assert task["title"] == "Intro call" and task["assignee"] == "sales" and task["run_id"] == run["run_id"]
        assert first in task["description"]

    stats = api.call("GET", f"/pipelines/{pid}/stats")
    assert stats["runs"]["total"] == 3 and stats["runs"]["completed"] == 3
    assert stats["completion_rate"] == 1.0 and stats["success_rate"] == 1.0
    assert [(s["step_number"], s["executed"], s["succeeded"]) for s in stats["steps"]] == [(1, 3, 3), (2, 3, 3), (3, 3, 3)]
    assert stats["emails"]["sent"] == 6


def test_the_unsubscribe_link_of_an_email_works_without_a_token(local_stack, stack_log):
    team = unique("unsub")
    api = local_stack.client(team)
    api.call("POST", "/pipelines", welcome_pipeline(), expect=201)
    contact = api.call("POST", "/contacts", {"email": f"ada.{team}@example.com", "first_name": "Ada"}, expect=201)
    api.call("POST", "/_local/clock", {"advance_seconds": 120})
    (email,) = api.call("GET", f"/_local/emails?to={quote(contact['email'])}")["items"]
    link = email["headers"]["List-Unsubscribe"].strip("<>")
    status, _ = local_stack.client().request("POST", link.removeprefix(local_stack.url))
    assert status == 200
    assert api.call("GET", f"/contacts/{contact['contact_id']}")["unsubscribed"] is True


def test_a_poison_stream_record_goes_to_the_failure_queue_while_its_batch_enrols(local_stack, stack_log):
    team = unique("poison")
    api = local_stack.client(team)
    pipeline = api.call("POST", "/pipelines", welcome_pipeline(), expect=201)
    created = parse(api.call("GET", "/_local/clock")["now"]).strftime("%Y-%m-%dT%H:%M:%S.%f+0000")

    def contact_item(contact_id: str, email: str | None) -> dict:
        item = {
            "team_id": {"S": team}, "contact_id": {"S": contact_id}, "first_name": {"S": contact_id.title()},
            "attributes": {"M": {}}, "pipeline_ids": {"L": []}, "unsubscribed": {"BOOL": False},
            "created_at": {"S": created}, "updated_at": {"S": created},
        }
        if email:
            item["email"] = {"S": email}
        return item

    good = [contact_item(f"good{i}", f"good{i}.{team}@example.com") for i in range(4)]
    poison = contact_item("poison", None)  # no email: the enrollment handler cannot parse it
    # One BatchWriteItem: the five records reach the stream together, so one batch.
    ddb = local_stack.aws("dynamodb")
    ddb.batch_write_item(RequestItems={local_stack.info["contacts_table"]: [{"PutRequest": {"Item": i}} for i in good[:2] + [poison] + good[2:]]})

    api.call("POST", "/_local/clock", {"advance_seconds": 0})  # drains the stream first

    sqs = local_stack.aws("sqs")
    ours = []
    for _ in range(5):
        messages = sqs.receive_message(QueueUrl=local_stack.info["failure_queue_url"], MaxNumberOfMessages=10).get("Messages", [])
        for message in messages:
            body = json.loads(message["Body"])
            keys = [r["dynamodb"]["Keys"] for r in body.get("localRecords", [])]
            if any(k["team_id"]["S"] == team for k in keys):
                ours.append(body)
        if ours:
            break
    (failure,) = ours
    assert [r["dynamodb"]["Keys"]["contact_id"]["S"] for r in failure["localRecords"]] == ["poison"]
    info = failure["DDBStreamBatchInfo"]
    assert info["batchSize"] == 1 and info["startSequenceNumber"] == info["endSequenceNumber"]
    assert info["streamArn"] == local_stack.info["contacts_stream_arn"]
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 4  # 1 + MaximumRetryAttempts (3)

    for i in range(4):
        (run,) = api.call("GET", f"/contacts/good{i}/runs")["items"]
        assert run["pipeline_id"] == pipeline["pipeline_id"] and run["status"] == "pending"


def test_two_ticks_at_once_send_each_email_once(local_stack, stack_log):
    team = unique("race")
    api = local_stack.client(team)
    pipeline = api.call(
        "POST",
        "/pipelines",
        {"name": "One email", "automatic": True, "steps": [
            {"step_number": 1, "action_type": "send_email", "delay_seconds": 0,
             "message": "Hello {{ contact.first_name }}", "data": {"subject": "Hello {{ contact.first_name }}"}}]},
        expect=201,
    )
    emails = [f"p{i}.{team}@example.com" for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        contacts = list(pool.map(lambda e: api.call("POST", "/contacts", {"email": e, "first_name": e[:3]}, expect=201), emails))
    api.call("POST", "/_local/clock", {"advance_seconds": 0})  # enrol everyone; every run is due now

    barrier = threading.Barrier(2)

    def tick(_):
        barrier.wait()
        return api.call("POST", "/_local/tick")

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(tick, range(2)))
    print(f"\ntwo concurrent ticks: {[r['result'] for r in results]}")

    for email in emails:
        assert len(api.call("GET", f"/_local/emails?to={quote(email)}")["items"]) == 1, email
    stats = api.call("GET", f"/pipelines/{pipeline['pipeline_id']}/stats")
    assert stats["runs"]["completed"] == len(contacts)
    assert stats["steps"][0]["executed"] == len(contacts) and stats["emails"]["sent"] == len(contacts)


def test_the_clock_only_moves_forward_and_tick_runs_now(local_stack, stack_log):
    api = local_stack.client()
    before = parse(api.call("GET", "/_local/clock")["now"])
    assert api.request("POST", "/_local/clock", {"advance_seconds": -5})[0] == 422
    after = parse(api.call("POST", "/_local/clock", {"advance_seconds": 90})["now"])
    assert after - before == timedelta(seconds=90)
    assert "result" in api.call("POST", "/_local/tick")
