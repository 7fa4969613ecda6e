"""SES email events: counted once in the pipeline's stats; hard bounces and complaints
unsubscribe the contact, whose runs the stream then cancels."""
import email
import email.policy
import json

import pytest
from moto.ses.models import ses_backends

from dripline.processor import Processor
from dripline.storage import contacts, runs, stats
from functions.enrollment import app as enrollment_app
from functions.ses_events import app as ses_events_app
from tests.support import EMAIL_STEP, TASK_STEP, FakeContext, StreamReader, load_event, make_pipeline, put_contact, stream_event

TEAM = "acme"


@pytest.fixture
def sent(aws, settings):
    """A contact whose welcome email went out: (pipeline, contact, run, message id, stream)."""
    stream = StreamReader(aws.contacts_stream_arn)
    pipeline = make_pipeline(TEAM, [EMAIL_STEP, {**TASK_STEP, "delay_seconds": 86400}])
    contact = put_contact(TEAM, "ada@example.com")
    enrollment_app.lambda_handler(stream_event(stream.read()), FakeContext())
    Processor(settings).tick()
    (raw,) = ses_backends["123456789012"]["us-east-1"].sent_messages
    (run,) = runs.runs_of(TEAM, "contact", contact.contact_id)
    assert email.message_from_string(raw.raw_data, policy=email.policy.default)["To"] == "ada@example.com"
    return pipeline, contact, run, run.history[0].detail["message_id"], stream


def event(name, run, message_id, pipeline):
    text = json.dumps(load_event(name)).replace("RUN_ID", run.run_id).replace("MESSAGE_ID", message_id)
    return json.loads(text.replace("PIPELINE_ID", pipeline.pipeline_id))


def emails(pipeline):
    return stats.read(TEAM, pipeline.pipeline_id, [])["emails"]


def test_delivery_and_open_are_counted_once_each(sent):
    pipeline, _, run, message_id, _ = sent
    delivered = event("ses_delivery.json", run, message_id, pipeline)

    assert ses_events_app.lambda_handler(delivered, FakeContext())["outcome"] == "counted"
    assert ses_events_app.lambda_handler(delivered, FakeContext())["outcome"] == "duplicate"  # redelivered
    ses_events_app.lambda_handler(event("ses_open.json", run, message_id, pipeline), FakeContext())

    assert emails(pipeline) == {"sent": 1, "delivered": 1, "bounced": 0, "complained": 0, "opened": 1, "clicked": 0, "suppressed": 0}


@pytest.mark.parametrize("name", ["ses_bounce_permanent.json", "ses_complaint.json"])
def test_hard_bounce_or_complaint_suppresses_the_contact_and_ends_its_runs(sent, name):
    pipeline, contact, run, message_id, stream = sent

    reply = ses_events_app.lambda_handler(event(name, run, message_id, pipeline), FakeContext())
    enrollment_app.lambda_handler(stream_event(stream.read()), FakeContext())  # the unsubscribe's MODIFY

    assert reply == {"outcome": "counted", "suppressed": True}
    assert contacts.get_contact(TEAM, contact.contact_id).unsubscribed is True
    assert runs.runs_of(TEAM, "contact", contact.contact_id)[0].status == "cancelled"
    counter = "bounced" if "bounce" in name else "complained"
    assert emails(pipeline)[counter] == 1


def test_soft_bounce_is_counted_but_does_not_suppress(sent):
    pipeline, contact, run, message_id, _ = sent
    soft = event("ses_bounce_permanent.json", run, message_id, pipeline)
    soft["detail"]["bounce"]["bounceType"] = "Transient"

    assert ses_events_app.lambda_handler(soft, FakeContext()) == {"outcome": "counted", "suppressed": False}
    assert contacts.get_contact(TEAM, contact.contact_id).unsubscribed is False


def test_events_of_other_emails_or_types_are_ignored(sent):
    pipeline, _, run, message_id, _ = sent
    untagged = event("ses_delivery.json", run, message_id, pipeline)
    del untagged["detail"]["mail"]["tags"]["run"]
    unknown_run = event("ses_delivery.json", run, message_id, pipeline)
    unknown_run["detail"]["mail"]["tags"]["run"] = ["no-such-run"]
    rendering = event("ses_delivery.json", run, message_id, pipeline)
    rendering["detail"]["eventType"] = "Rendering Failure"

    outcomes = [ses_events_app.lambda_handler(e, FakeContext())["outcome"] for e in (untagged, unknown_run, rendering)]

    assert outcomes == ["ignored", "unknown_run", "ignored"]
    assert emails(pipeline)["delivered"] == 0


def test_a_suppression_that_failed_is_done_by_the_retry(sent, monkeypatch):
    from dripline import email_events

    pipeline, contact, run, message_id, _ = sent
    bounce = event("ses_bounce_permanent.json", run, message_id, pipeline)
    real_modify = contacts.modify_contact

    def throttled(*args, **kwargs):
        raise RuntimeError("ProvisionedThroughputExceededException")

    monkeypatch.setattr(email_events.contacts, "modify_contact", throttled)
    with pytest.raises(RuntimeError):
        ses_events_app.lambda_handler(bounce, FakeContext())
    monkeypatch.setattr(email_events.contacts, "modify_contact", real_modify)

    assert ses_events_app.lambda_handler(bounce, FakeContext()) == {"outcome": "counted", "suppressed": True}
    assert contacts.get_contact(TEAM, contact.contact_id).unsubscribed is True
    assert emails(pipeline)["bounced"] == 1
