"""Test helpers: drive the real handlers with real event shapes read from moto."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3

from dripline import clock
from dripline.domain import Step
from dripline.storage import pipelines
from dripline.storage.models import Contact

EVENTS = Path(__file__).resolve().parents[1] / "events"


def run_ticks_until(processor, fake_clock, end: datetime) -> int:
    """Fire every minute's tick up to `end`, skipping minutes in which nothing is due.

    Idle ticks change nothing, so skipping them gives the same result as ticking every
    minute (the local stack's virtual clock does the same). Returns the ticks fired.
    """
    from datetime import timedelta

    from dripline.storage import runs

    fired = 0
    while fake_clock.now() < end:
        due = runs.next_due_at(processor.settings.due_shards)
        if due is None or due > end:
            break
        # EventBridge fires on the minute: the first tick at or after `due`.
        minute = due.replace(second=0, microsecond=0)
        tick_at = minute if minute == due else minute + timedelta(minutes=1)
        fake_clock.set(max(fake_clock.now(), tick_at))
        processor.tick()
        fired += 1
        fake_clock.advance(60)  # the next tick is a minute later
    fake_clock.set(max(fake_clock.now(), end))
    return fired


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


@dataclass
class FakeContext:
    """What Lambda hands a handler, with a controllable remaining time."""

    remaining_ms: int = 120_000
    function_name: str = "dripline-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:dripline-test"
    aws_request_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class StreamReader:
    """Reads the contacts stream from where it last stopped, as Lambda-shaped records."""

    stream_arn: str
    iterators: dict[str, str] = field(default_factory=dict)

    def read(self) -> list[dict[str, Any]]:
        client = boto3.client("dynamodbstreams")
        records: list[dict[str, Any]] = []
        shards = client.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id not in self.iterators:
                self.iterators[shard_id] = client.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            response = client.get_records(ShardIterator=self.iterators[shard_id])
            self.iterators[shard_id] = response["NextShardIterator"]
            for record in response["Records"]:
                records.append({**record, "eventSourceARN": self.stream_arn, "awsRegion": "us-east-1"})
        return [_lambda_shape(r) for r in records]


def _lambda_shape(record: dict[str, Any]) -> dict[str, Any]:
    """boto3 gives datetimes; Lambda gives epoch seconds in ApproximateCreationDateTime."""
    change = dict(record["dynamodb"])
    created = change.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        change["ApproximateCreationDateTime"] = int(created.timestamp())
    return {**record, "dynamodb": change}


def stream_event(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": records}


def make_pipeline(team_id: str, steps: list[dict[str, Any]], *, automatic: bool = True, name: str = "Welcome"):
    return pipelines.create_pipeline(
        team_id,
        name=name,
        model_type="contact",
        steps=[Step.from_dict(s) for s in steps],
        now=clock.now(),
        automatic=automatic,
    )


def put_contact(team_id: str, email: str, *, first_name: str = "Ada", pipeline_ids: list[str] | None = None, **extra) -> Contact:
    now = clock.now()
    contact = Contact(
        team_id,
        extra.pop("contact_id", uuid.uuid4().hex),
        email=email,
        first_name=first_name,
        last_name=extra.pop("last_name", "Lovelace"),
        pipeline_ids=pipeline_ids or [],
        unsubscribed=False,
        created_at=now,
        updated_at=now,
        **extra,
    )
    contact.save()
    return contact


EMAIL_STEP = {"step_number": 1, "action_type": "send_email", "delay_seconds": 0,
              "message": "Hi {{ contact.first_name }}, welcome!", "data": {"subject": "Welcome {{ contact.first_name }}"}}
TASK_STEP = {"step_number": 2, "action_type": "create_task", "delay_seconds": 86400,
             "message": "Call {{ contact.email }}", "data": {"title": "Intro call", "assignee": "sales"}}
FOLLOW_UP_STEP = {"step_number": 3, "action_type": "send_email", "delay_seconds": 3 * 86400,
                  "message": "Still there, {{ contact.first_name }}?", "data": {"subject": "Checking in"}}
