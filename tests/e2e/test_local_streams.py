"""Unit tests of the local stack's stream event source: order, batches, partial failures,
bisection and the on-failure queue, with a fake handler over an emulated stream."""
from __future__ import annotations

import json
import time

import boto3
import pytest
from moto import mock_aws

from dripline_local.resources import table_create_args
from dripline_local.streams import EventSourceConfig, StreamPoller, sqs_destination

TEMPLATE_LIKE = EventSourceConfig(batch_size=10, maximum_retry_attempts=3, bisect_on_error=True, report_batch_item_failures=True)


@pytest.fixture
def stream():
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        arn = ddb.create_table(**table_create_args("ContactsTable", "contacts"))["TableDescription"]["LatestStreamArn"]
        yield ddb, boto3.client("dynamodbstreams", region_name="us-east-1"), arn


def put(ddb, count, start=0):
    for i in range(start, start + count):
        ddb.put_item(TableName="contacts", Item={"team_id": {"S": "t"}, "contact_id": {"S": f"c{i:03d}"}, "blob": {"B": b"\x00\x01"}})


def cid(record):
    return record["dynamodb"]["Keys"]["contact_id"]["S"]


class FakeHandler:
    """Fails the records named in `poison` (by reporting them, or by raising)."""

    def __init__(self, poison=(), mode="report", transient=False):
        self.poison = set(poison)
        self.mode = mode
        self.transient = transient  # fail each poison record once only
        self.calls: list[list[str]] = []
        self.succeeded: list[str] = []

    def __call__(self, event):
        records = event["Records"]
        ids = [cid(r) for r in records]
        self.calls.append(ids)
        bad = [r for r in records if cid(r) in self.poison]
        if self.transient:
            self.poison -= {cid(r) for r in bad}
        if bad and self.mode == "raise":
            raise ValueError("cannot parse contact")
        if bad and self.mode == "empty-identifier":
            return {"batchItemFailures": [{"itemIdentifier": ""}]}
        bad_ids = {cid(r) for r in bad}
        self.succeeded += [i for i in ids if i not in bad_ids]
        return {"batchItemFailures": [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]} for r in bad]}


def poller(streams, arn, handler, config=TEMPLATE_LIKE):
    dead: list[dict] = []
    return StreamPoller(stream_arn=arn, client=streams, handler=handler, config=config, on_failure=dead.append), dead


def test_batches_of_the_batch_size_in_order_and_lambda_shaped(stream):
    ddb, streams, arn = stream
    put(ddb, 25)
    seen: list[dict] = []

    def handler(event):
        seen.append(event)
        return {"batchItemFailures": []}

    p, dead = poller(streams, arn, handler)
    assert p.drain() == 25
    assert [len(e["Records"]) for e in seen] == [10, 10, 5]
    records = [r for e in seen for r in e["Records"]]
    assert [cid(r) for r in records] == [f"c{i:03d}" for i in range(25)]
    sequences = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert sequences == sorted(sequences)
    first = records[0]
    assert first["eventSourceARN"] == arn and first["awsRegion"] == "us-east-1" and first["eventSource"] == "aws:dynamodb"
    assert first["eventName"] == "INSERT"
    assert isinstance(first["dynamodb"]["ApproximateCreationDateTime"], int)
    assert first["dynamodb"]["NewImage"]["blob"] == {"B": "AAE="}  # base64, as in Lambda events
    json.dumps(seen)  # a Lambda event is plain JSON
    assert dead == []

    put(ddb, 3, start=25)  # later records continue from the checkpoint
    assert p.drain() == 3
    assert [cid(r) for r in seen[-1]["Records"]] == ["c025", "c026", "c027"]


def test_a_reported_failure_is_retried_from_its_sequence_number(stream):
    ddb, streams, arn = stream
    put(ddb, 15)
    handler = FakeHandler(poison={"c003"}, transient=True)
    p, dead = poller(streams, arn, handler)
    p.drain()
    assert handler.calls[0] == [f"c{i:03d}" for i in range(10)]
    assert handler.calls[1] == [f"c{i:03d}" for i in range(3, 13)]  # checkpoint before c003
    assert sorted(set(handler.succeeded)) == [f"c{i:03d}" for i in range(15)]
    assert dead == []


def test_a_poison_record_reported_as_failed_ends_alone_on_the_failure_queue(stream):
    ddb, streams, arn = stream
    put(ddb, 12)
    handler = FakeHandler(poison={"c004"})
    p, dead = poller(streams, arn, handler)
    p.drain()
    assert len(dead) == 1
    info = dead[0]["DDBStreamBatchInfo"]
    assert info["batchSize"] == 1 and info["startSequenceNumber"] == info["endSequenceNumber"]
    assert [cid(r) for r in dead[0]["localRecords"]] == ["c004"]
    assert dead[0]["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert dead[0]["requestContext"]["approximateInvokeCount"] == 4  # 1 + MaximumRetryAttempts
    assert sum(1 for call in handler.calls if "c004" in call) == 4  # first delivery + 3 retries
    assert set(handler.succeeded) == {f"c{i:03d}" for i in range(12)} - {"c004"}


def test_a_raising_handler_is_bisected_down_to_the_poison_record(stream):
    ddb, streams, arn = stream
    put(ddb, 20)
    handler = FakeHandler(poison={"c007"}, mode="raise")
    p, dead = poller(streams, arn, handler)
    p.drain()
    assert [[cid(r) for r in d["localRecords"]] for d in dead] == [["c007"]]
    assert dead[0]["responseContext"]["functionError"] == "Unhandled"
    assert set(handler.succeeded) == {f"c{i:03d}" for i in range(20)} - {"c007"}
    # Successful deliveries keep stream order.
    assert handler.succeeded == sorted(handler.succeeded)
    assert ["c007"] in handler.calls  # isolated by bisection
    assert len(handler.calls) < 20


def test_without_bisection_the_whole_failing_batch_is_discarded(stream):
    ddb, streams, arn = stream
    put(ddb, 12)
    handler = FakeHandler(poison={"c002"}, mode="raise")
    config = EventSourceConfig(batch_size=10, maximum_retry_attempts=2, bisect_on_error=False, report_batch_item_failures=True)
    p, dead = poller(streams, arn, handler, config)
    p.drain()
    assert len(dead) == 1 and dead[0]["DDBStreamBatchInfo"]["batchSize"] == 10
    assert dead[0]["requestContext"]["approximateInvokeCount"] == 3
    assert handler.succeeded == ["c010", "c011"]


def test_an_empty_item_identifier_fails_the_whole_batch(stream):
    ddb, streams, arn = stream
    put(ddb, 4)
    handler = FakeHandler(poison={"c001"}, mode="empty-identifier")
    p, dead = poller(streams, arn, handler)
    p.drain()
    assert [[cid(r) for r in d["localRecords"]] for d in dead] == [["c001"]]
    assert handler.calls[:3] == [["c000", "c001", "c002", "c003"], ["c000", "c001"], ["c000"]]


def test_responses_are_ignored_without_report_batch_item_failures(stream):
    ddb, streams, arn = stream
    put(ddb, 3)
    handler = FakeHandler(poison={"c001"})
    p, dead = poller(streams, arn, handler, EventSourceConfig(batch_size=10, maximum_retry_attempts=0))
    p.drain()
    assert handler.calls == [["c000", "c001", "c002"]] and dead == []


def test_config_from_the_template():
    from dripline_local.template import stream_event_source

    config = EventSourceConfig.from_template(stream_event_source())
    assert config == TEMPLATE_LIKE


def test_the_sqs_destination_sends_the_invocation_record():
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        sqs_destination(sqs, url)({"DDBStreamBatchInfo": {"batchSize": 1}})
        (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
        assert json.loads(message["Body"]) == {"DDBStreamBatchInfo": {"batchSize": 1}}


def test_the_background_poller_delivers_new_records(stream):
    ddb, streams, arn = stream
    handler = FakeHandler()
    p, _ = poller(streams, arn, handler)
    p.idle_seconds = 0.02
    p.start()
    try:
        put(ddb, 3)
        deadline = time.monotonic() + 10
        while len(handler.succeeded) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        p.stop()
    assert handler.succeeded == ["c000", "c001", "c002"]
