"""Stats stay equal to the runs under throttles, 5xx and lost answers (no process dying),
and a lost claim, finish or create answer is recognised as our own write.

Faults are injected where requests reach AWS (dripline_local.faults wraps moto's request
hook), so they pass through botocore's retries and pynamodb's wrappers as in production.
"""
import pytest

from dripline.processor import Processor
from dripline.storage import runs, stats
from dripline_local.faults import ERROR_500, KILL_BEFORE, LOSE_500, LOSE_CONNECTION, THROTTLE, FaultInjector, Kill, Rule
from functions.enrollment import app as enrollment_app
from tests.support import EMAIL_STEP, TASK_STEP, FakeContext, StreamReader, make_pipeline, put_contact, stream_event

TEAM = "acme"
QUICK_TASK = {**TASK_STEP, "delay_seconds": 60}


@pytest.fixture
def stream(aws):
    return StreamReader(aws.contacts_stream_arn)


def enroll(stream):
    assert enrollment_app.lambda_handler(stream_event(stream.read()), FakeContext()) == {"batchItemFailures": []}


def names_in(call):
    return set(call.params.get("ExpressionAttributeNames", {}).values())


def is_claim(call):
    return call.operation == "UpdateItem" and "cf" in names_in(call) and "wt" not in names_in(call)


def is_finish(call):
    return call.operation == "UpdateItem" and "wt" in names_in(call) and "lo" in names_in(call)


def is_stats_add(call):
    return call.operation == "UpdateItem" and call.params.get("UpdateExpression", "").startswith("ADD")


def is_run_put(call):
    return call.operation == "PutItem" and call.params.get("TableName", "").endswith("runs")


def sent_emails():
    from moto.ses.models import ses_backends

    return ses_backends["123456789012"]["us-east-1"].sent_messages


def enrolled(stream, steps):
    """A pipeline and one contact enrolled in it (no faults yet)."""
    pipeline = make_pipeline(TEAM, steps)
    contact = put_contact(TEAM, "ada@example.com")
    enroll(stream)
    return pipeline, contact


def tick_under(settings, rule, seed=1):
    """One processor tick with one fault rule; returns its report and the injector."""
    injector = FaultInjector(seed=seed)
    injector.add(rule)
    with injector.installed():
        return Processor(settings).tick(), injector


def counters(pipeline):
    """The stats counters, next to the same counters recounted from the runs."""
    document = stats.read(TEAM, pipeline.pipeline_id, [(s.step_number, s.action_type) for s in pipeline.spec.steps])
    recounted = runs.recount(TEAM, pipeline.pipeline_id)
    expected_runs = {"total": recounted.get("runs_total", 0), **{s: recounted.get(f"runs_{s}", 0) for s in stats.RUN_STATUSES}}
    expected_steps = [recounted.get(f"step_{s.step_number}_executed", 0) for s in pipeline.spec.steps]
    actual_steps = [row["executed"] for row in document["steps"]]
    return (document["runs"], actual_steps, document["emails"]["sent"]), (expected_runs, expected_steps, recounted.get("emails_sent", 0))


def test_a_lost_claim_answer_is_our_claim_and_the_email_goes_out_once(aws, stream, settings):
    pipeline, _ = enrolled(stream, [EMAIL_STEP])

    report, injector = tick_under(settings, Rule("dynamodb", "UpdateItem", LOSE_CONNECTION, times=1, when=is_claim))

    assert injector.injected[("dynamodb", "UpdateItem", LOSE_CONNECTION)] == 1
    assert report.outcomes == {"completed": 1}  # not "lost", not reclaimed later as delivery_unknown
    assert len(sent_emails()) == 1
    actual, expected = counters(pipeline)
    assert actual == expected and actual[0]["completed"] == 1


def test_a_lost_finish_answer_is_recognised_and_the_step_counted(aws, stream, settings):
    pipeline, contact = enrolled(stream, [EMAIL_STEP, QUICK_TASK])

    report, _ = tick_under(settings, Rule("dynamodb", "UpdateItem", LOSE_500, times=1, when=is_finish))

    (run,) = runs.runs_of(TEAM, "contact", contact.contact_id)
    assert report.outcomes == {"pending": 1} and run.status == "pending" and run.current_step == 1
    actual, expected = counters(pipeline)
    assert actual == expected and actual[1] == [1, 0] and actual[2] == 1


@pytest.mark.parametrize(
    "operation, lost",
    [("PutItem", is_run_put), ("UpdateItem", is_stats_add)],
    ids=["run-created", "stats-added"],  # the SDK's retry must neither lose nor repeat it
)
def test_a_lost_answer_during_enrollment_counts_the_run_once(aws, stream, settings, operation, lost):
    pipeline = make_pipeline(TEAM, [EMAIL_STEP])
    put_contact(TEAM, "ada@example.com")
    injector = FaultInjector(seed=3)
    injector.add(Rule("dynamodb", operation, LOSE_CONNECTION, times=1, when=lost))

    with injector.installed():
        enroll(stream)

    assert injector.injected[("dynamodb", operation, LOSE_CONNECTION)] == 1
    actual, expected = counters(pipeline)
    assert actual == expected and actual[0]["total"] == actual[0]["pending"] == 1


def test_a_throttled_stats_flush_is_retried_not_dropped(aws, stream, settings):
    pipeline, _ = enrolled(stream, [EMAIL_STEP])

    # Every SDK attempt (pynamodb: 4) of the tick's ADD, and two of our own retries.
    _, injector = tick_under(settings, Rule("dynamodb", "UpdateItem", THROTTLE, times=6, when=is_stats_add))

    assert injector.injected[("dynamodb", "UpdateItem", THROTTLE)] == 6
    actual, expected = counters(pipeline)
    assert actual == expected and actual[0]["completed"] == 1


def test_stats_equal_the_runs_after_random_throttles_5xx_and_lost_answers(aws, stream, settings, frozen_clock):
    pipeline = make_pipeline(TEAM, [EMAIL_STEP, QUICK_TASK])
    for i in range(20):
        put_contact(TEAM, f"c{i}@example.com")
    injector = FaultInjector(seed=20)
    for operation in ("PutItem", "UpdateItem"):
        injector.add(Rule("dynamodb", operation, LOSE_CONNECTION, probability=0.2))
        injector.add(Rule("dynamodb", operation, ERROR_500, probability=0.05))
        injector.add(Rule("dynamodb", operation, THROTTLE, probability=0.05))

    with injector.installed():
        enroll(stream)
        for _ in range(6):
            Processor(settings).tick()
            frozen_clock.advance(60)

    assert sum(injector.injected.values()) >= 20
    assert {r.status for r in runs.all_runs_of_pipeline(TEAM, pipeline.pipeline_id)} == {"completed"}
    actual, expected = counters(pipeline)
    assert actual == expected
    assert actual[0] == {"total": 20, "pending": 0, "running": 0, "completed": 20, "failed": 0, "cancelled": 0, "exited": 0}
    assert actual[1] == [20, 20] and actual[2] == 20 and len(sent_emails()) == 20


def test_counters_lag_after_a_kill_before_the_flush_and_reconcile_closes_the_gap(aws, stream, settings):
    pipeline, _ = enrolled(stream, [EMAIL_STEP])

    with pytest.raises(Kill):  # the run is completed; the process dies before its flush
        tick_under(settings, Rule("dynamodb", "UpdateItem", KILL_BEFORE, times=1, when=is_stats_add))

    actual, expected = counters(pipeline)
    assert actual[0]["pending"] == 1 and expected[0]["completed"] == 1  # behind by the tick

    stats.reconcile(TEAM, pipeline.pipeline_id)

    actual, expected = counters(pipeline)
    assert actual == expected and actual[0]["completed"] == 1 and actual[2] == 1


def is_errors_add(call):
    return is_stats_add(call) and call.params["Key"]["sk"]["S"].startswith("ERRORS#")


@pytest.mark.parametrize("fault", [LOSE_CONNECTION, LOSE_500, THROTTLE])
def test_error_pattern_counters_count_once_under_lost_answers_and_throttles(aws, stream, settings, frozen_clock, fault):
    from datetime import timedelta

    import boto3

    from dripline.storage.models import errors_sk
    from dripline_local.faults import REJECT

    enrolled(stream, [EMAIL_STEP])
    injector = FaultInjector(seed=5)
    injector.add(Rule("sesv2", "SendEmail", REJECT, code="MessageRejected"))
    injector.add(Rule("dynamodb", "UpdateItem", fault, times=2, when=is_errors_add))
    with injector.installed():
        Processor(settings).tick()

    (row,) = stats.read_errors(TEAM, frozen_clock.now())
    assert injector.injected[("dynamodb", "UpdateItem", fault)] == 2
    assert (row["error_code"], row["failed"], row["retried"], row["recovered"]) == ("MessageRejected", 1, 0, 0)
    # The hour's item expires (TTL) ERRORS_KEEP_DAYS after its hour.
    key = {"team_id": {"S": TEAM}, "sk": {"S": errors_sk(frozen_clock.now())}}
    item = boto3.client("dynamodb").get_item(TableName=settings.pipelines_table, Key=key)["Item"]
    expires = stats.hour_of(frozen_clock.now()) + timedelta(days=stats.ERRORS_KEEP_DAYS)
    assert int(item["expires_at"]["N"]) == int(expires.timestamp())
