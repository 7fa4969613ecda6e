"""Faults injected where requests reach AWS (dripline_local.faults), through the SDK and
pynamodb as in production: what may have taken effect is never repeated blindly, and
what surely did not is retried, never failed for good."""
from datetime import timedelta

import pytest

from dripline.processor import Processor
from dripline.storage import runs, tasks
from dripline_local.faults import (
    KILL_AFTER, KILL_BEFORE, LOSE_500, LOSE_CONNECTION, LOSE_TIMEOUT, REJECT, THROTTLE, FaultInjector, Kill, Rule,
)
from dripline_local.ses_send_events import SendEvents
from functions.enrollment import app as enrollment_app
from functions.ses_events import app as ses_events_app
from tests.support import EMAIL_STEP, TASK_STEP, FakeContext, StreamReader, make_pipeline, put_contact, stream_event

TEAM = "acme"
ALL_SDK_ATTEMPTS = 4  # pynamodb: 1 + 3 retries


@pytest.fixture
def world(aws, settings):
    """A contact enrolled in a pipeline, the injector installed, SES Send events captured."""
    send_events = SendEvents()
    injector = FaultInjector(seed=11, on_effect=send_events.observe)
    with injector.installed():
        yield injector, send_events


def enrolled(aws, steps):
    make_pipeline(TEAM, steps)
    contact = put_contact(TEAM, "ada@example.com")
    stream = StreamReader(aws.contacts_stream_arn)
    assert enrollment_app.lambda_handler(stream_event(stream.read()), FakeContext()) == {"batchItemFailures": []}
    return contact


def the_run(contact):
    (run,) = runs.runs_of(TEAM, "contact", contact.contact_id)
    return run


def accepted_emails():
    from moto.ses.models import ses_backends

    return len(ses_backends["123456789012"]["us-east-1"].sent_messages)


def publish(send_events):
    for event in send_events.take():
        assert ses_events_app.lambda_handler(event, FakeContext())["outcome"] == "recorded"


def table_is(name):
    return lambda call: call.params.get("TableName") == name


@pytest.mark.parametrize("fault", [LOSE_CONNECTION, LOSE_TIMEOUT, LOSE_500])
def test_an_email_whose_answer_is_lost_is_settled_from_its_send_event_not_resent(aws, settings, frozen_clock, world, fault):
    injector, send_events = world
    contact = enrolled(aws, [EMAIL_STEP, TASK_STEP])
    injector.add(Rule("sesv2", "SendEmail", fault, times=1))

    assert Processor(settings).tick().outcomes["retried"] == 1
    run = the_run(contact)
    assert accepted_emails() == 1 and run.status == "pending" and run.last_error == "delivery_unknown"

    publish(send_events)  # SES's Send event arrives through EventBridge
    frozen_clock.set(run.next_step_at)
    Processor(settings).tick()

    run = the_run(contact)
    assert accepted_emails() == 1  # never twice
    assert (run.history[0].outcome, run.history[0].detail["recovered"]) == ("succeeded", "ses_send_event")
    assert run.status == "pending" and run.next_step_number == 2


def test_a_throttled_contact_read_is_retried_not_failed(aws, settings, frozen_clock, world):
    injector, _ = world
    contact = enrolled(aws, [EMAIL_STEP])
    # The processor reads a tick's contacts with BatchGetItem.
    injector.add(Rule("dynamodb", "BatchGetItem", THROTTLE, times=ALL_SDK_ATTEMPTS,
                      when=lambda call: settings.contacts_table in call.params.get("RequestItems", {})))

    assert Processor(settings).tick().outcomes["retried"] == 1
    run = the_run(contact)
    assert run.status == "pending" and run.attempts == 1 and "ProvisionedThroughputExceeded" in run.last_error

    frozen_clock.set(run.next_step_at)
    Processor(settings).tick()
    assert the_run(contact).status == "completed" and accepted_emails() == 1


@pytest.mark.parametrize("fault", [THROTTLE, LOSE_CONNECTION])  # every SDK attempt: before / after the write
def test_a_task_write_that_fails_or_loses_its_answer_is_retried_and_makes_one_task(aws, settings, frozen_clock, world, fault):
    injector, _ = world
    task_only = {**TASK_STEP, "step_number": 1, "delay_seconds": 0}
    contact = enrolled(aws, [task_only])
    injector.add(Rule("dynamodb", "PutItem", fault, times=ALL_SDK_ATTEMPTS, when=table_is(settings.tasks_table)))

    assert Processor(settings).tick().outcomes["retried"] == 1
    frozen_clock.set(the_run(contact).next_step_at)
    Processor(settings).tick()

    assert the_run(contact).status == "completed"
    assert len(tasks.list_tasks(TEAM, record=("contact", contact.contact_id))[0]) == 1


def kill_then_reclaim(settings, frozen_clock, injector, fault):
    injector.add(Rule("sesv2", "SendEmail", fault, times=1))
    with pytest.raises(Kill):
        Processor(settings).tick()
    injector.revive()
    frozen_clock.advance(settings.lease_seconds + 1)
    return Processor(settings).tick()


def test_a_reclaimed_email_with_a_send_event_is_marked_sent(aws, settings, frozen_clock, world):
    injector, send_events = world
    contact = enrolled(aws, [EMAIL_STEP, TASK_STEP])
    injector.add(Rule("sesv2", "SendEmail", KILL_AFTER, times=1))
    with pytest.raises(Kill):
        Processor(settings).tick()
    injector.revive()
    publish(send_events)
    frozen_clock.advance(settings.lease_seconds + 1)
    Processor(settings).tick()

    run = the_run(contact)
    assert accepted_emails() == 1
    assert (run.history[0].outcome, run.history[0].detail["recovered"]) == ("succeeded", "ses_send_event")


def test_a_reclaimed_email_without_a_send_event_is_resent_after_the_settle_window(aws, settings, frozen_clock, world):
    injector, _ = world
    contact = enrolled(aws, [EMAIL_STEP, TASK_STEP])
    kill_then_reclaim(settings, frozen_clock, injector, KILL_BEFORE)  # died before SES saw it
    first_reclaim = frozen_clock.now()  # the outcome was found unknown: the window starts

    run = the_run(contact)
    assert accepted_emails() == 0 and run.status == "pending" and run.last_error == "delivery_unverified"
    frozen_clock.set(max(run.next_step_at, frozen_clock.now()))
    while the_run(contact).history == []:  # retried until the window is over
        Processor(settings).tick()
        frozen_clock.set(max(the_run(contact).next_step_at or frozen_clock.now(), frozen_clock.now()))

    run = the_run(contact)
    assert accepted_emails() == 1 and run.history[0].outcome == "succeeded" and "recovered" not in run.history[0].detail
    assert run.history[0].executed_at >= first_reclaim + timedelta(seconds=settings.send_event_settle_seconds)


def test_without_a_reachable_event_store_a_reclaimed_email_falls_back_to_at_most_once(aws, settings, frozen_clock, world):
    injector, _ = world
    contact = enrolled(aws, [EMAIL_STEP, TASK_STEP])
    injector.add(Rule("dynamodb", "UpdateItem", REJECT, code="AccessDeniedException",
                      when=lambda call: "DELIVERY#" in str(call.params.get("Key"))))
    kill_then_reclaim(settings, frozen_clock, injector, KILL_AFTER)

    run = the_run(contact)
    assert accepted_emails() == 1
    assert (run.history[0].outcome, run.history[0].error) == ("skipped", "delivery_unknown")
