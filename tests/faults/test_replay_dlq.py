"""dripline replay-dlq: what the dead-letter queues hold is re-driven once the cause is
fixed; what still fails stays queued and is reported."""
import json

import boto3
import pytest

from dripline.storage import runs, stats
from dripline_local.faults import REJECT, FaultInjector, Rule
from dripline_local.lambdas import load_functions
from dripline_local.replay import ENROLLMENT, SES_EVENTS, enrollment_redriver, replay_queue, ses_events_redriver
from dripline_local.streams import EventSourceConfig, StreamPoller, sqs_destination
from tests.support import EMAIL_STEP, StreamReader, load_event, make_pipeline, put_contact, stream_event

TEAM = "acme"


@pytest.fixture
def functions(aws):
    return load_functions("us-east-1")


def queue_size(sqs, url):
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    return sum(int(v) for v in attributes["Attributes"].values())


def test_a_parked_stream_batch_is_read_again_from_the_stream_and_enrolled(aws, functions):
    sqs, streams = boto3.client("sqs"), boto3.client("dynamodbstreams")
    pipeline = make_pipeline(TEAM, [EMAIL_STEP])
    contact = put_contact(TEAM, "ada@example.com")

    def broken(event):  # the enrollment function as deployed before the fix
        raise RuntimeError("bug")

    poller = StreamPoller(stream_arn=aws.contacts_stream_arn, client=streams, handler=broken,
                          config=EventSourceConfig(maximum_retry_attempts=0),
                          on_failure=sqs_destination(sqs, aws.failure_queue_url))
    poller.drain()
    assert queue_size(sqs, aws.failure_queue_url) == 1 and runs.runs_of(TEAM, "contact", contact.contact_id) == []

    report = replay_queue(sqs, aws.failure_queue_url, ENROLLMENT, enrollment_redriver(streams, functions["enrollment"].invoke))

    assert (report.replayed, report.failing) == (1, [])
    (run,) = runs.runs_of(TEAM, "contact", contact.contact_id)
    assert run.pipeline_id == pipeline.pipeline_id and queue_size(sqs, aws.failure_queue_url) == 0


def test_a_parked_email_event_stays_while_it_fails_and_is_counted_once_replayed(aws, functions):
    sqs = boto3.client("sqs")
    queue = sqs.get_queue_url(QueueName="dripline-SesEventsFailureQueue")["QueueUrl"]
    pipeline = make_pipeline(TEAM, [EMAIL_STEP])
    contact = put_contact(TEAM, "ada@example.com")
    functions["enrollment"].invoke(stream_event(StreamReader(aws.contacts_stream_arn).read()))
    (run,) = runs.runs_of(TEAM, "contact", contact.contact_id)
    event = json.loads(json.dumps(load_event("ses_delivery.json")).replace("RUN_ID", run.run_id).replace("MESSAGE_ID", "m-1"))
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(event))
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"not": "an event"}))
    redrive = ses_events_redriver(functions["ses_events"].invoke)

    # The handler's writes (the delivery log, then the counter) are UpdateItems.
    still_broken = FaultInjector(rules=[Rule("dynamodb", "UpdateItem", REJECT, code="AccessDeniedException")])
    with still_broken.installed():
        report = replay_queue(sqs, queue, SES_EVENTS, redrive)
    assert report.replayed == 0 and len(report.failing) == 2

    assert queue_size(sqs, queue) == 2
    report = replay_queue(sqs, queue, SES_EVENTS, redrive)  # the cause is fixed

    assert report.replayed == 1 and len(report.failing) == 1 and "not an EventBridge event" in report.failing[0]
    assert stats.read(TEAM, pipeline.pipeline_id, [])["emails"]["delivered"] == 1
    assert queue_size(sqs, queue) == 1  # the malformed one stays, reported
