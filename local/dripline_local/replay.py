"""`dripline replay-dlq`: re-drive what the dead-letter queues hold, once the cause is fixed.

Two queues, two kinds of message:

  enrollment  Lambda's on-failure records of contacts-stream batches. They hold no data,
              only where the batch was (DDBStreamBatchInfo: stream, shard, first and last
              sequence number): the records are read again from the stream (which keeps
              them 24 hours) and handed to the enrollment function as Lambda would.
  ses-events  the EventBridge events themselves (SES email events the function failed
              on): each is handed to the ses_events function again.

A message is deleted only once its re-drive went through; what still fails stays in the
queue and is reported (exit status 1). Enrollment and the email-event handling are
idempotent per record and per (message, event), so re-driving a message twice is safe.

    dripline replay-dlq --endpoint-url http://127.0.0.1:4566       # the local stack
    dripline replay-dlq --stack dripline-prod                       # AWS: queues and
                                                                    # functions from the stack
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Invoke = Callable[[dict[str, Any]], Any]  # event -> the function's answer; raises on error

ENROLLMENT = "enrollment"
SES_EVENTS = "ses-events"
# The template's logical ids, for --stack and the local stack's queue names.
QUEUES = {ENROLLMENT: "EnrollmentFailureQueue", SES_EVENTS: "SesEventsFailureQueue"}
FUNCTIONS = {ENROLLMENT: "EnrollmentFunction", SES_EVENTS: "SesEventsFunction"}


@dataclass
class ReplayReport:
    queue: str
    replayed: int = 0
    failing: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"{self.queue}: {self.replayed} re-driven and deleted, {len(self.failing)} still failing"


class StillFailing(Exception):
    """The re-driven message failed again (it stays in the queue)."""


def replay_queue(sqs: Any, queue_url: str, name: str, redrive: Callable[[dict[str, Any]], None]) -> ReplayReport:
    """Re-drive every message of the queue once; delete those that went through."""
    report = ReplayReport(name)
    seen: set[str] = set()
    kept: list[str] = []  # receipt handles of messages that failed again
    while True:
        # Received messages stay invisible during the run, so each is tried once.
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=300)
        batch = [m for m in messages.get("Messages", []) if m["MessageId"] not in seen]
        if not batch:
            break
        for message in batch:
            seen.add(message["MessageId"])
            try:
                redrive(json.loads(message["Body"]))
            except Exception as exc:  # noqa: BLE001 - reported; the message stays for later
                report.failing.append(f"{message['MessageId']}: {type(exc).__name__}: {exc}")
                kept.append(message["ReceiptHandle"])
                continue
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            report.replayed += 1
    for handle in kept:  # visible again at once: the next replay sees them
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=handle, VisibilityTimeout=0)
    return report


def enrollment_redriver(streams: Any, invoke: Invoke) -> Callable[[dict[str, Any]], None]:
    """Re-read an on-failure record's batch from the stream and invoke enrollment with it."""

    def redrive(failure: dict[str, Any]) -> None:
        info = failure.get("DDBStreamBatchInfo")
        if not info:
            raise StillFailing("not a stream on-failure record (no DDBStreamBatchInfo)")
        records = stream_batch(streams, info)
        if not records:
            raise StillFailing(f"records {info['startSequenceNumber']}..{info['endSequenceNumber']} are no longer in the stream")
        answer = invoke({"Records": records}) or {}
        failures = answer.get("batchItemFailures") or []
        if failures:
            raise StillFailing(f"{len(failures)} record(s) failed again, first {failures[0].get('itemIdentifier')}")

    return redrive


def stream_batch(streams: Any, info: dict[str, Any]) -> list[dict[str, Any]]:
    """The records startSequenceNumber..endSequenceNumber of one shard, as Lambda delivers them."""
    start, end = int(info["startSequenceNumber"]), int(info["endSequenceNumber"])
    iterator = streams.get_shard_iterator(
        StreamArn=info["streamArn"], ShardId=info["shardId"], ShardIteratorType="AT_SEQUENCE_NUMBER",
        SequenceNumber=info["startSequenceNumber"],
    )["ShardIterator"]
    records: list[dict[str, Any]] = []
    while iterator:
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        for record in page["Records"]:
            sequence = int(record["dynamodb"]["SequenceNumber"])
            if sequence > end:
                return records
            if sequence >= start:
                records.append(lambda_record(record, info["streamArn"]))
        if not page["Records"]:
            return records
        iterator = page.get("NextShardIterator")
    return records


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record in the shape Lambda delivers (the local stack's conversion)."""
    from dripline_local.streams import StreamPoller

    return StreamPoller._lambda_record(_StreamOf(stream_arn), record)


@dataclass
class _StreamOf:
    stream_arn: str
    region: str = "us-east-1"


def ses_events_redriver(invoke: Invoke) -> Callable[[dict[str, Any]], None]:
    def redrive(event: dict[str, Any]) -> None:
        if "detail" not in event:
            raise StillFailing("not an EventBridge event (no detail)")
        invoke(event)

    return redrive


def lambda_invoker(lambda_client: Any, function_name: str) -> Invoke:
    """Invoke a deployed function synchronously; a function error raises."""

    def invoke(event: dict[str, Any]) -> Any:
        response = lambda_client.invoke(FunctionName=function_name, Payload=json.dumps(event).encode())
        payload = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            raise StillFailing(f"{function_name}: {payload.get('errorType')}: {payload.get('errorMessage')}")
        return payload

    return invoke


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queue", choices=[ENROLLMENT, SES_EVENTS, "all"], default="all")
    parser.add_argument("--stack", help="a deployed stack: queue URLs and function names from its resources")
    parser.add_argument("--endpoint-url", help="the local stack's AWS emulator: its functions run in this process")
    parser.add_argument("--enrollment-queue-url")
    parser.add_argument("--ses-events-queue-url")
    parser.add_argument("--region", default=None)


def run_from_args(args: argparse.Namespace) -> int:
    import boto3

    session = boto3.session.Session(region_name=args.region or "us-east-1")
    clients = {name: session.client(name, endpoint_url=args.endpoint_url) for name in ("sqs", "dynamodbstreams")}
    urls = {ENROLLMENT: args.enrollment_queue_url, SES_EVENTS: args.ses_events_queue_url}
    if args.stack:
        resources = _stack_resources(session.client("cloudformation"), args.stack)
        urls = {key: urls[key] or resources[QUEUES[key]] for key in urls}
        invokers = {key: lambda_invoker(session.client("lambda"), resources[FUNCTIONS[key]]) for key in urls}
    elif args.endpoint_url:
        urls = {key: urls[key] or clients["sqs"].get_queue_url(QueueName=f"dripline-{QUEUES[key]}")["QueueUrl"] for key in urls}
        invokers = _local_invokers(args.endpoint_url, session.region_name)
    else:
        print("dripline replay-dlq: give --stack (AWS) or --endpoint-url (the local stack)", file=sys.stderr)
        return 2
    redrivers = {
        ENROLLMENT: enrollment_redriver(clients["dynamodbstreams"], invokers[ENROLLMENT]),
        SES_EVENTS: ses_events_redriver(invokers[SES_EVENTS]),
    }
    failing = 0
    for key in (ENROLLMENT, SES_EVENTS):
        if args.queue in (key, "all"):
            report = replay_queue(clients["sqs"], urls[key], key, redrivers[key])
            print(report.line())
            for line in report.failing:
                print(f"  {line}")
            failing += len(report.failing)
    return 1 if failing else 0


def _stack_resources(cloudformation: Any, stack: str) -> dict[str, str]:
    """Logical id -> physical id (an SQS queue's is its URL, a function's its name)."""
    resources: dict[str, str] = {}
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack):
        for resource in page["StackResourceSummaries"]:
            resources[resource["LogicalResourceId"]] = resource["PhysicalResourceId"]
    return resources


def _local_invokers(endpoint_url: str, region: str) -> dict[str, Invoke]:
    """The template's handlers, run in this process against the local stack's emulator."""
    import os

    from dripline_local.lambdas import load_functions

    os.environ["AWS_ENDPOINT_URL"] = endpoint_url
    functions = load_functions(region)
    return {ENROLLMENT: functions["enrollment"].invoke, SES_EVENTS: functions["ses_events"].invoke}
