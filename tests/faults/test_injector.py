"""The fault injector itself: faults before the effect change nothing, lost answers do."""
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError
from pynamodb.exceptions import GetError, PutError

from dripline_local.faults import (
    ERROR_500, KILL_AFTER, LOSE_500, LOSE_CONNECTION, THROTTLE, FaultInjector, Kill, Rule,
)
from dripline.storage import contacts
from tests.support import put_contact

TEAM = "acme"


def ses_client():
    return boto3.client("sesv2", region_name="us-east-1", config=Config(retries={"total_max_attempts": 1}))


def send(client):
    return client.send_email(
        FromEmailAddress="no-reply@example.com",
        Destination={"ToAddresses": ["ada@example.com"]},
        Content={"Simple": {"Subject": {"Data": "hi"}, "Body": {"Text": {"Data": "hi"}}}},
    )


def accepted():
    from moto.ses.models import ses_backends

    return len(ses_backends["123456789012"]["us-east-1"].sent_messages)


@pytest.fixture
def ses_ready(aws):
    boto3.client("ses", region_name="us-east-1").verify_email_identity(EmailAddress="no-reply@example.com")


def test_a_throttle_answers_before_the_write_and_pynamodb_wraps_it(aws):
    injector = FaultInjector(seed=1, rules=[Rule("dynamodb", "PutItem", THROTTLE, times=10)])
    with injector.installed(), pytest.raises(PutError) as raised:
        put_contact(TEAM, "ada@example.com", contact_id="ada")
    assert raised.value.cause.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    # pynamodb's SDK client retried (1 + 3 attempts), every one throttled, none written
    assert injector.injected[("dynamodb", "PutItem", THROTTLE)] == 4
    assert contacts.find_contact(TEAM, "ada") is None


def test_the_sdk_retry_absorbs_fewer_throttles_than_its_attempts(aws):
    injector = FaultInjector(seed=1, rules=[Rule("dynamodb", "GetItem", ERROR_500, times=2)])
    put_contact(TEAM, "ada@example.com", contact_id="ada")
    with injector.installed():
        assert contacts.find_contact(TEAM, "ada").email == "ada@example.com"
    assert sum(injector.injected.values()) == 2


def test_a_lost_answer_leaves_the_effect(aws, ses_ready):
    client = ses_client()
    injector = FaultInjector(seed=1, rules=[Rule("sesv2", "SendEmail", LOSE_CONNECTION, times=1),
                                            Rule("sesv2", "SendEmail", LOSE_500, times=1)])
    with injector.installed():
        with pytest.raises(ConnectionClosedError):
            send(client)
        with pytest.raises(ClientError) as raised:
            send(client)
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        send(client)  # rules used up: a normal send
    assert accepted() == 3


def test_a_kill_stops_every_later_request_until_revived(aws, ses_ready):
    client = ses_client()
    injector = FaultInjector(seed=1, rules=[Rule("sesv2", "SendEmail", KILL_AFTER, times=1)])
    with injector.installed():
        with pytest.raises(Kill):
            send(client)
        with pytest.raises(Kill):
            contacts.find_contact(TEAM, "ada")
        injector.revive()
        assert contacts.find_contact(TEAM, "ada") is None
    assert accepted() == 1


def test_rules_pick_calls_by_their_body_and_probability_is_seeded(aws):
    def picked(seed):
        injector = FaultInjector(seed=seed, rules=[Rule("dynamodb", "GetItem", THROTTLE, probability=0.5,
                                                        when=lambda call: call.params["Key"]["contact_id"]["S"] == "bob")])
        hits = []
        with injector.installed():
            for _ in range(8):
                try:
                    contacts.find_contact(TEAM, "bob")
                    hits.append(False)
                except GetError:
                    hits.append(True)
                contacts.find_contact(TEAM, "ada")  # never matches
        return injector.injected, hits

    first, second = picked(3), picked(3)
    assert first == second
    assert set(k[1] for k in first[0]) == {"GetItem"} and sum(first[0].values()) > 0


def test_attached_to_an_http_client_a_lost_answer_still_takes_effect():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint, config=Config(retries={"total_max_attempts": 1}))
        queue = sqs.create_queue(QueueName="lost")["QueueUrl"]
        injector = FaultInjector(seed=1, rules=[Rule("sqs", "SendMessage", LOSE_CONNECTION, times=1),
                                                Rule("sqs", "SendMessage", THROTTLE, times=1)])
        injector.attach(sqs.meta.events)
        with pytest.raises(ConnectionClosedError):
            sqs.send_message(QueueUrl=queue, MessageBody="one")
        with pytest.raises(ClientError) as raised:
            sqs.send_message(QueueUrl=queue, MessageBody="two")
        assert raised.value.response["Error"]["Code"] == "ThrottlingException"
        attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
        assert attributes["ApproximateNumberOfMessages"] == "1"  # the lost answer's message, not the throttled one
    finally:
        server.stop()
