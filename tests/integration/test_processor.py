"""The processor handler over emulated DynamoDB and SES, on a manual clock."""
import email
import email.policy
import threading
from datetime import timedelta

import pytest
from botocore.exceptions import ClientError

from dripline import clock, fanout
from dripline.processor import Clients, Processor
from dripline.settings import DeliveryPolicy, Settings
from dripline.storage import runs, stats, tasks
from dripline.storage.models import PipelineRun
from functions.enrollment import app as enrollment_app
from functions.processor import app as processor_app
from tests.support import (
    EMAIL_STEP, FOLLOW_UP_STEP, TASK_STEP, FakeContext, StreamReader, load_event, make_pipeline, put_contact, run_ticks_until,
    stream_event,
)

TEAM = "acme"


@pytest.fixture
def stream(aws):
    return StreamReader(aws.contacts_stream_arn)


def enroll(stream):
    assert enrollment_app.lambda_handler(stream_event(stream.read()), FakeContext()) == {"batchItemFailures": []}


def sent_emails():
    from moto.ses.models import ses_backends

    backend = ses_backends["123456789012"]["us-east-1"]
    return [email.message_from_string(m.raw_data, policy=email.policy.default) for m in backend.sent_messages]


class FlakySES:
    """An SES client that fails the first `failures` calls with `code`, then delegates."""

    def __init__(self, real, code, failures, status=400):
        self.real, self.code, self.failures, self.status, self.calls = real, code, failures, status, 0

    def send_email(self, **kwargs):
        self.calls += 1
        if self.calls <= self.failures:
            raise ClientError({"Error": {"Code": self.code, "Message": "injected"},
                               "ResponseMetadata": {"HTTPStatusCode": self.status}}, "SendEmail")
        return self.real.send_email(**kwargs)


def processor_with_ses(settings, fake_ses):
    clients = Clients(settings)
    clients.__dict__["sesv2"] = fake_ses  # cached_property slot
    return Processor(settings, clients)


def the_run(contact):
    (run,) = runs.runs_of(TEAM, "contact", contact.contact_id)
    return run


def test_three_step_pipeline_runs_to_completion_over_simulated_days(aws, stream, settings, frozen_clock):
    pipeline = make_pipeline(TEAM, [EMAIL_STEP, TASK_STEP, FOLLOW_UP_STEP])
    ada = put_contact(TEAM, "ada@example.com", first_name="Ada")
    bob = put_contact(TEAM, "bob@example.com", first_name="Bob")
    enroll(stream)
    processor = Processor(settings)

    ticks = run_ticks_until(processor, frozen_clock, frozen_clock.now() + timedelta(days=4, minutes=5))

    for contact in (ada, bob):
        run = the_run(contact)
        assert run.status == "completed" and run.completed_at is not None and run.due_shard is None
        assert [(h.step_number, h.outcome) for h in run.history] == [(1, "succeeded"), (2, "succeeded"), (3, "succeeded")]
        gap_1_2 = run.history[1].executed_at - run.history[0].executed_at
        gap_2_3 = run.history[2].executed_at - run.history[1].executed_at
        assert timedelta(days=1) <= gap_1_2 < timedelta(days=1, minutes=1)
        assert timedelta(days=3) <= gap_2_3 < timedelta(days=3, minutes=1)
    messages = sent_emails()
    assert sorted((m["To"], m["Subject"]) for m in messages) == [
        ("ada@example.com", "Checking in"), ("ada@example.com", "Welcome Ada"),
        ("bob@example.com", "Checking in"), ("bob@example.com", "Welcome Bob"),
    ]
    welcome = next(m for m in messages if m["Subject"] == "Welcome Ada")
    text = welcome.get_body(("plain",)).get_content()
    assert text.startswith("Hi Ada, welcome!")
    assert welcome["List-Unsubscribe"].startswith("<http") and welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    task_list, _ = tasks.list_tasks(TEAM, record=("contact", ada.contact_id))
    (task,) = task_list
    assert (task.title, task.description, task.assignee, task.status) == ("Intro call", "Call ada@example.com", "sales", "open")
    summary = stats.read(TEAM, pipeline.pipeline_id, [(1, "send_email"), (2, "create_task"), (3, "send_email")])
    assert summary["runs"] == {"total": 2, "pending": 0, "running": 0, "completed": 2, "failed": 0, "cancelled": 0, "exited": 0}
    assert summary["completion_rate"] == 1.0 and summary["success_rate"] == 1.0
    assert [s["executed"] for s in summary["steps"]] == [2, 2, 2]
    assert summary["emails"]["sent"] == 4
    assert ticks == 3  # one per step; the ~5,760 idle minutes between them were skipped


def test_next_step_is_planned_from_the_planned_time_not_the_late_execution(aws, stream, settings, frozen_clock):
    make_pipeline(TEAM, [EMAIL_STEP, TASK_STEP])
    contact = put_contact(TEAM, "ada@example.com")
    enroll(stream)
    frozen_clock.advance(137)  # the tick runs late

    Processor(settings).tick()

    run = the_run(contact)
    assert run.status == "pending" and run.next_step_number == 2 and run.current_step == 1
    assert run.history[0].scheduled_at == run.created_at
    assert run.history[0].executed_at == run.created_at + timedelta(seconds=137)  # its lateness is recorded
    assert run.next_step_at == run.created_at + timedelta(seconds=86400)  # the plan, not 137 s later


def test_handler_accepts_the_sample_scheduled_event(aws, stream, frozen_clock):
    make_pipeline(TEAM, [EMAIL_STEP])
    contact = put_contact(TEAM, "ada@example.com")
    enroll(stream)
    fanout.shared.cache_clear()

    report = processor_app.lambda_handler(load_event("processor_scheduled.json"), FakeContext())

    assert report["due"] == 1 and report["completed"] == 1
    assert the_run(contact).status == "completed"


def test_throttled_send_is_retried_with_backoff_then_fails(aws, stream, settings, frozen_clock):
    import boto3

    make_pipeline(TEAM, [EMAIL_STEP])
    contact = put_contact(TEAM, "ada@example.com")
    enroll(stream)
    ses = FlakySES(boto3.client("sesv2"), "TooManyRequestsException", failures=100, status=429)
    processor = processor_with_ses(settings, ses)

    due_times = []
    for _ in range(settings.max_attempts):
        processor.tick()
        run = the_run(contact)
        due_times.append(run.next_step_at)
        if run.status != "pending":
            break
        frozen_clock.set(run.next_step_at)

    run = the_run(contact)
    assert run.status == "failed" and run.attempts == settings.max_attempts
    assert run.last_error.startswith("TooManyRequestsException")
    assert [h.outcome for h in run.history] == ["failed"]
    gaps = [(b - a).total_seconds() for a, b in zip(due_times, due_times[1:-1])]
    assert gaps == [120, 240, 480]  # 60 s, doubling (first gap measured from the first retry)
    assert ses.calls == settings.max_attempts and sent_emails() == []


def test_transient_failure_then_success_continues_the_run(aws, stream, settings, frozen_clock):
    import boto3

    make_pipeline(TEAM, [EMAIL_STEP, TASK_STEP])
    contact = put_contact(TEAM, "ada@example.com")
    enroll(stream)
    processor = processor_with_ses(settings, FlakySES(boto3.client("sesv2"), "ServiceUnavailable", failures=1, status=503))

    processor.tick()
    frozen_clock.advance(60)
    processor.tick()

    run = the_run(contact)
    assert run.status == "pending" and run.next_step_number == 2 and run.attempts == 0 and run.last_error is None
    assert [(h.outcome, h.attempt) for h in run.history] == [("succeeded", 2)]


def test_permanent_ses_rejection_fails_the_run_at_once(aws, stream, settings):
    import boto3

    make_pipeline(TEAM, [EMAIL_STEP, TASK_STEP])
    contact = put_contact(TEAM, "ada@example.com")
    enroll(stream)
    processor = processor_with_ses(settings, FlakySES(boto3.client("sesv2"), "MessageRejected", failures=1))

    processor.tick()

    run = the_run(contact)
    assert run.status == "failed" and run.attempts == 1 and run.due_shard is None
    assert run.history[0].outcome == "failed" and "MessageRejected" in run.history[0].error


def test_one_failing_run_does_not_stop_fifty_healthy_ones(aws, stream, settings):
    import boto3

    make_pipeline(TEAM, [EMAIL_STEP])
    healthy = [put_contact(TEAM, f"c{i}@example.com") for i in range(50)]
    doomed = put_contact(TEAM, "doomed@example.com")
    enroll(stream)

    class RejectOne(FlakySES):
        def send_email(self, **kwargs):
            if kwargs["Destination"]["ToAddresses"] == ["doomed@example.com"]:
                raise ClientError({"Error": {"Code": "MessageRejected", "Message": "no"}}, "SendEmail")
            return self.real.send_email(**kwargs)

    report = processor_with_ses(settings, RejectOne(boto3.client("sesv2"), "", 0)).tick()

    assert report.due == 51 and report.outcomes["completed"] == 50 and report.outcomes["failed"] == 1
    assert all(the_run(c).status == "completed" for c in healthy)
    assert the_run(doomed).status == "failed"


def test_unsubscribed_contact_email_step_is_skipped(aws, stream, settings):
    make_pipeline(TEAM, [EMAIL_STEP, TASK_STEP])
    contact = put_contact(TEAM, "ada@example.com")
    enroll(stream)
    # Unsubscribed between enrollment and the step, before the stream cancels the run.
    contact.update(actions=[type(contact).unsubscribed.set(True)])

    Processor(settings).tick()

    run = the_run(contact)
    assert (run.history[0].outcome, run.history[0].error) == ("skipped", "unsubscribed")
    assert sent_emails() == []


def test_two_concurrent_ticks_execute_every_step_exactly_once(aws, stream, settings):
    make_pipeline(TEAM, [EMAIL_STEP])
    contacts = [put_contact(TEAM, f"c{i}@example.com") for i in range(200)]
    enroll(stream)
    a, b = Processor(settings), Processor(settings)
    barrier = threading.Barrier(2)
    reports = []

    def tick(processor):
        barrier.wait()
        reports.append(processor.tick())

    threads = [threading.Thread(target=tick, args=(p,)) for p in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    recipients = [m["To"] for m in sent_emails()]
    assert sorted(recipients) == sorted(c.email for c in contacts)  # each exactly once
    assert sum(r.outcomes["completed"] for r in reports) == 200
    assert all(len(the_run(c).history) == 1 for c in contacts)


def test_expired_lease_is_reclaimed_without_resending_the_email(aws, stream, settings, frozen_clock):
    make_pipeline(TEAM, [EMAIL_STEP, TASK_STEP])
    contact = put_contact(TEAM, "ada@example.com")
    enroll(stream)

    class DiesAfterSending(FlakySES):
        def send_email(self, **kwargs):
            self.real.send_email(**kwargs)  # SES accepted ...
            raise SystemExit("process killed")  # ... and the process died before recording

    import boto3

    crashing = processor_with_ses(settings, DiesAfterSending(boto3.client("sesv2"), "", 0))
    candidate = next(runs.due_candidates(runs.due_shard_of(the_run(contact).run_id, settings.due_shards), clock.now()))
    with pytest.raises(SystemExit):
        crashing.process(candidate)
    assert the_run(contact).status == "running" and len(sent_emails()) == 1

    frozen_clock.advance(60)
    assert Processor(settings).tick().outcomes["pending"] == 0  # lease still valid: hands off
    frozen_clock.advance(settings.lease_seconds)
    Processor(settings).tick()

    run = the_run(contact)
    assert len(sent_emails()) == 1  # not sent twice
    # No SES Send event recorded yet: the step waits for the settle window (dripline.delivery;
    # tests/faults/test_lost_answers.py covers each way it then settles).
    assert run.history == [] and run.last_error == "delivery_unverified"
    assert run.status == "pending" and run.next_step_number == 1


def test_reclaimed_email_is_resent_under_at_least_once(aws, stream, settings, frozen_clock):
    import dataclasses

    import boto3

    make_pipeline(TEAM, [EMAIL_STEP])
    contact = put_contact(TEAM, "ada@example.com")
    enroll(stream)
    lenient = dataclasses.replace(settings, delivery_policy=DeliveryPolicy.AT_LEAST_ONCE)
    candidate = next(runs.due_candidates(runs.due_shard_of(the_run(contact).run_id, settings.due_shards), clock.now()))
    runs.claim(candidate, clock.now(), settings.lease_seconds)  # a holder that then vanished

    frozen_clock.advance(settings.lease_seconds + 1)
    Processor(lenient, Clients(lenient)).tick()

    assert the_run(contact).status == "completed" and len(sent_emails()) == 1
    assert boto3  # the real SES emulator was used


def test_completed_runs_leave_the_due_index(aws, stream, settings):
    make_pipeline(TEAM, [EMAIL_STEP])
    put_contact(TEAM, "ada@example.com")
    enroll(stream)

    Processor(settings).tick()

    assert [r for r in PipelineRun.due_index.scan()] == []


def test_run_cancelled_mid_step_stays_cancelled_and_keeps_the_step_record(aws, stream, settings, frozen_clock):
    import boto3

    make_pipeline(TEAM, [EMAIL_STEP, TASK_STEP])
    contact = put_contact(TEAM, "ada@example.com")
    enroll(stream)

    class CancelledWhileSending(FlakySES):
        def send_email(self, **kwargs):
            response = self.real.send_email(**kwargs)
            runs.cancel_run(the_run(contact), clock.now(), "removed_by_user")  # the API, meanwhile
            return response

    report = processor_with_ses(settings, CancelledWhileSending(boto3.client("sesv2"), "", 0)).tick()

    run = the_run(contact)
    assert report.outcomes["cancelled"] == 1
    assert run.status == "cancelled" and run.due_shard is None and run.lease_owner is None
    assert [(h.step_number, h.outcome) for h in run.history] == [(1, "succeeded")]
    summary = stats.read(TEAM, run.pipeline_id, [(1, "send_email"), (2, "create_task")])
    assert summary["runs"]["cancelled"] == 1 and summary["runs"]["running"] == 0 and summary["runs"]["pending"] == 0


def test_step_of_a_deleted_contact_cancels_the_run(aws, stream, settings):
    pipeline = make_pipeline(TEAM, [EMAIL_STEP, TASK_STEP])
    contact = put_contact(TEAM, "ada@example.com")
    enroll(stream)
    contact.delete()  # the REMOVE record has not been processed yet

    report = Processor(settings).tick()

    run = the_run(contact)
    assert report.outcomes["cancelled"] == 1 and run.status == "cancelled"
    assert (run.history[0].outcome, run.history[0].error) == ("skipped", "contact_deleted")
    summary = stats.read(TEAM, pipeline.pipeline_id, [(1, "send_email")])
    assert summary["runs"] == {"total": 1, "pending": 0, "running": 0, "completed": 0, "failed": 0, "cancelled": 1, "exited": 0}
    assert sent_emails() == []


def test_next_due_looks_past_a_running_run_to_the_pending_one_behind_it(aws, stream, frozen_clock):
    one_shard = Settings(due_shards=1)
    from dripline import runtime

    runtime.configure(one_shard)
    make_pipeline(TEAM, [EMAIL_STEP])
    first = put_contact(TEAM, "first@example.com")
    enroll(stream)
    frozen_clock.advance(30)
    put_contact(TEAM, "second@example.com")
    enroll(stream)
    (candidate, _) = list(runs.due_candidates("due#0", clock.now()))
    assert candidate.run_id == the_run(first).run_id
    runs.claim(candidate, clock.now(), lease_seconds=300)  # first: running, lease for 5 minutes

    assert runs.next_due_at(1) == frozen_clock.now()  # second is due now, not when the lease ends


def test_transient_storage_error_before_the_action_is_retried_not_lost(aws, stream, settings, frozen_clock):
    from dripline_local.faults import THROTTLE, FaultInjector, Rule

    make_pipeline(TEAM, [EMAIL_STEP])
    contact = put_contact(TEAM, "ada@example.com")
    enroll(stream)
    injector = FaultInjector(seed=1)
    # Every SDK attempt of the tick's contacts read is throttled: pynamodb raises GetError.
    injector.add(Rule("dynamodb", "BatchGetItem", THROTTLE, times=4))

    with injector.installed():
        assert Processor(settings).tick().outcomes["retried"] == 1
    run = the_run(contact)
    assert run.status == "pending" and run.attempts == 1 and "ProvisionedThroughputExceeded" in run.last_error

    frozen_clock.set(run.next_step_at)
    Processor(settings).tick()

    assert the_run(contact).status == "completed" and len(sent_emails()) == 1


def test_a_step_that_keeps_killing_its_processor_ends_failed(aws, stream, settings, frozen_clock):
    from dripline import actions

    class KillsTheProcess:
        name, idempotent, executions = "kills_the_process", True, 0

        def validate(self, step):
            pass

        def execute(self, ctx):
            KillsTheProcess.executions += 1
            raise SystemExit("Lambda timed out")  # not an Exception: nothing catches it

    actions.register(KillsTheProcess())
    make_pipeline(TEAM, [{"step_number": 1, "action_type": "kills_the_process", "delay_seconds": 0}])
    contact = put_contact(TEAM, "ada@example.com")
    enroll(stream)

    ticks = 0
    while the_run(contact).status != "failed" and ticks < 10:
        with pytest.raises(SystemExit):
            Processor(settings).tick()
        ticks += 1
        frozen_clock.advance(settings.lease_seconds + 1)
        if ticks == settings.max_attempts:
            Processor(settings).tick()  # this reclaim finds the attempts used up

    run = the_run(contact)
    assert run.status == "failed" and run.last_error == "lease_expired_too_often"
    assert KillsTheProcess.executions == settings.max_attempts


def test_retry_of_a_run_cancelled_mid_step_leaves_it_cancelled_and_unleased(aws, stream, settings):
    import boto3

    make_pipeline(TEAM, [EMAIL_STEP])
    contact = put_contact(TEAM, "ada@example.com")
    enroll(stream)

    class ThrottledWhileCancelled(FlakySES):
        def send_email(self, **kwargs):
            runs.cancel_run(the_run(contact), clock.now(), "removed_by_user")
            raise ClientError({"Error": {"Code": "Throttling", "Message": "slow"}}, "SendEmail")

    report = processor_with_ses(settings, ThrottledWhileCancelled(boto3.client("sesv2"), "", 0)).tick()

    run = the_run(contact)
    assert report.outcomes["cancelled"] == 1 and run.status == "cancelled"
    assert run.lease_owner is None and run.lease_expires_at is None


def test_contact_fields_cannot_break_the_subject_line(aws, stream, settings):
    make_pipeline(TEAM, [EMAIL_STEP])
    contact = put_contact(TEAM, "ada@example.com", first_name="Ada\r\nBcc: evil@example.com")
    enroll(stream)

    Processor(settings).tick()

    assert the_run(contact).status == "completed"
    (message,) = sent_emails()
    assert message["Subject"] == "Welcome Ada Bcc: evil@example.com" and message["Bcc"] is None


def test_task_from_an_empty_message_gets_a_default_title(aws, stream, settings):
    step = {"step_number": 1, "action_type": "create_task", "delay_seconds": 0, "message": "{{ contact.attributes.note }}"}
    make_pipeline(TEAM, [step])
    contact = put_contact(TEAM, "ada@example.com")
    enroll(stream)

    Processor(settings).tick()

    assert the_run(contact).status == "completed"
    (task,), _ = tasks.list_tasks(TEAM, record=("contact", contact.contact_id))
    assert task.title == "Follow up"


def test_a_backlog_drains_over_several_ticks_within_the_per_tick_cap(aws, stream, settings, frozen_clock):
    import dataclasses

    make_pipeline(TEAM, [EMAIL_STEP])
    contacts = []
    for i in range(12):
        contacts.append(put_contact(TEAM, f"c{i}@example.com"))
        enroll(stream)
        frozen_clock.advance(1)  # each one due a second after the previous
    small = dataclasses.replace(settings, max_runs_per_tick=8, due_shards=4)

    reads = []
    while not reads or reads[-1]:  # runs spread over the shards by their (random) ids: 2 to 7 ticks
        reads.append(Processor(small).tick().due)
        assert len(reads) <= 7

    # At most 2 per shard (8 / 4 shards) per tick, until the backlog is gone.
    assert all(n <= 8 for n in reads) and sum(reads) == 12
    assert all(the_run(c).status == "completed" for c in contacts)


def test_a_tick_reports_the_due_runs_it_left_as_the_backlog(aws, stream, settings, frozen_clock):
    """DueRunsLeft (the backlog alarm's metric): what is still due when a tick ends, counted
    per shard up to the per-tick cap, and 0 once a tick read everything due."""
    import dataclasses
    from collections import Counter

    make_pipeline(TEAM, [EMAIL_STEP])
    contacts = [put_contact(TEAM, f"c{i}@example.com") for i in range(12)]
    enroll(stream)
    small = dataclasses.replace(settings, max_runs_per_tick=8, due_shards=4)

    lefts = []
    while not lefts or lefts[-1]:
        report = Processor(small).tick()
        waiting = Counter(runs.due_shard_of(the_run(c).run_id, 4) for c in contacts if the_run(c).status == "pending")
        assert report.left == sum(min(n, 8) for n in waiting.values()), (report.as_dict(), waiting)
        lefts.append(report.left)
        assert len(lefts) <= 7

    assert lefts[0] > 0 and all(the_run(c).status == "completed" for c in contacts)


def test_an_email_reclaimed_on_its_last_attempt_is_delivery_unknown_not_failed(aws, stream, settings, frozen_clock):
    from dripline.storage.models import PipelineRun

    make_pipeline(TEAM, [EMAIL_STEP, TASK_STEP])
    contact = put_contact(TEAM, "ada@example.com")
    enroll(stream)
    run = the_run(contact)
    run.update(actions=[PipelineRun.attempts.set(settings.max_attempts - 1)])  # four throttled tries behind it
    candidate = next(runs.due_candidates(runs.due_shard_of(run.run_id, settings.due_shards), clock.now()))
    runs.claim(candidate, clock.now(), settings.lease_seconds)  # the fifth: sent, then the process died

    frozen_clock.advance(settings.lease_seconds + 1)
    report = Processor(settings).tick()

    run = the_run(contact)
    assert report.events["DeliveryUnknown"] == 1
    assert (run.history[0].outcome, run.history[0].error) == ("skipped", "delivery_unknown")
    assert run.status == "pending" and run.next_step_number == 2


def test_lateness_does_not_add_up_over_five_minute_aligned_steps(aws, stream, settings, frozen_clock):
    steps = [{**EMAIL_STEP, "step_number": n, "delay_seconds": 0 if n == 1 else 120} for n in range(1, 6)]
    make_pipeline(TEAM, steps)
    contact = put_contact(TEAM, "ada@example.com")
    enroll(stream)  # at 09:00:00, the minute a rule fires
    start = frozen_clock.now()
    processor = Processor(settings)

    for minute in range(10):
        # every tick starts 2 s after its minute (the invocation's own start-up)
        frozen_clock.set(start + timedelta(minutes=minute, seconds=2))
        processor.tick()

    run = the_run(contact)
    assert run.status == "completed"
    lateness = [(h.executed_at - h.scheduled_at).total_seconds() for h in run.history]
    assert lateness == [2.0] * 5  # no step more than one tick behind its plan, and no drift
    assert [h.scheduled_at - start for h in run.history] == [timedelta(minutes=2 * n) for n in range(5)]
