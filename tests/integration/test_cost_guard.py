"""Regression guard for what a step and an enrollment cost: AWS calls and DynamoDB write
units, counted with scale's meter (units from item sizes, indexes included), never
timed. A change that adds a round trip, an index write or a growing item fails here.
"""
import math

import pytest

from dripline import runtime
from dripline.processor import CHUNK, Clients, Processor
from dripline_local.metering import Meter
from functions.enrollment import app as enrollment_app
from tests.support import FakeContext, StreamReader, make_pipeline, put_contact, stream_event

TEAM = "acme"


def steps(count, delay=3600):
    return [
        {"step_number": n, "action_type": "send_email" if n % 2 else "create_task", "delay_seconds": 0 if n == 1 else delay,
         "message": "Hello {{ contact.first_name }}, this is step " + str(n) + ".",
         "data": {"subject": f"Step {n} for {{{{ contact.first_name }}}}", "title": f"Call about step {n}"}}
        for n in range(1, count + 1)
    ]


def enroll_all(aws, contacts):
    stream = StreamReader(aws.contacts_stream_arn)
    for i in range(contacts):
        put_contact(TEAM, f"c{i}@example.com", first_name=f"Contact{i}")
    assert enrollment_app.lambda_handler(stream_event(stream.read()), FakeContext()) == {"batchItemFailures": []}


def test_every_step_of_a_twenty_step_pipeline_costs_three_calls_and_at_most_four_write_units(aws, settings, frozen_clock):
    # given 10 contacts in a 20-step pipeline (emails and tasks alternating, an hour apart)
    contacts = 10
    make_pipeline(TEAM, steps(20))
    enroll_all(aws, contacts)
    with Meter() as meter:
        runtime.configure(settings)  # rebinds the tables: their clients are made (metered) anew
        processor = Processor(settings, Clients(settings))  # its SES client is metered too
        for number in range(1, 21):
            meter.reset()
            # when one tick runs each step
            report = processor.tick()
            usage = meter.usage()
            # then per run: the claim, the action, the finish; per tick: the due query of
            # each shard, per 100 runs one contacts BatchGetItem and one of their addresses'
            # suppression entries, one stats ADD per pipeline
            assert sum(report.outcomes.values()) == contacts == report.outcomes["completed" if number == 20 else "pending"]
            per_tick = settings.due_shards + 2 * math.ceil(contacts / CHUNK) + 1
            # per process: the unsubscribe key is read once (cached for minutes, one reader
            # for all worker threads), on the first tick
            per_process = 1 if number == 1 else 0
            assert usage.calls["secretsmanager:GetSecretValue"] == per_process, (number, usage.calls)
            assert usage.total_calls == 3 * contacts + per_tick + per_process, (number, usage.calls)
            # claim 1 + finish 1 + due index moved 2; the stats ADD amortised; the task
            # steps' own item (tasks table) is the action's, not the step path's
            step_path = sum(v for table, v in usage.write_units.items() if not table.startswith("dripline-tasks"))
            stats_add = usage.write_units.get("dripline-pipelines", 0)
            assert (step_path - stats_add) / contacts <= 4.0, (number, usage.write_units)
            assert stats_add <= 2, (number, usage.write_units)  # one ADD for the whole tick
            print(f"step {number}: {usage.total_calls / contacts:.2f} calls, {(step_path - stats_add) / contacts:.2f} "
                  f"write units (+{stats_add / contacts:.2f} stats, +{usage.write_units.get('dripline-tasks', 0) / contacts:.0f} task)")
            frozen_clock.advance(3600)


@pytest.mark.parametrize("contacts", [60])
def test_enrollment_and_a_full_tick_cost_what_the_targets_say(aws, settings, frozen_clock, contacts):
    # given three automatic one-step email pipelines and a batch of new contacts
    for name in ("Welcome", "Tips", "Offer"):
        make_pipeline(TEAM, steps(1), name=name)
    stream = StreamReader(aws.contacts_stream_arn)
    for i in range(contacts):
        put_contact(TEAM, f"c{i}@example.com", first_name=f"Contact{i}")
    records = stream.read()
    with Meter() as meter:
        runtime.configure(settings)
        processor = Processor(settings, Clients(settings))
        # when the batch is enrolled
        assert enrollment_app.lambda_handler(stream_event(records), FakeContext()) == {"batchItemFailures": []}
        enrollment = meter.usage()
        meter.reset()
        # and one tick runs all the due steps
        report = processor.tick()
        tick = meter.usage()
    # then enrolling a contact: its read, one runs query, three puts (+ once per batch)
    assert enrollment.per(contacts)["calls"] <= 5.2, enrollment.calls
    # a run created: the item and its two index entries, `due` and `by_team` (a run id
    # names its owner, so there is no index by run id), + the batch's stats ADDs
    runs_created = 3 * contacts
    assert {table: units for table, units in enrollment.write_units.items() if table.startswith("dripline-runs")} == {
        "dripline-runs": runs_created, "dripline-runs/index/due": runs_created, "dripline-runs/index/by_team": runs_created,
    }, enrollment.write_units
    assert enrollment.write_units.get("dripline-pipelines", 0) <= 3, enrollment.write_units  # one ADD per pipeline
    assert enrollment.per(runs_created)["write_units"] <= 3.05, enrollment.write_units
    # and a step: claim, SendEmail, finish, with the reads and the stats amortised
    executed = report.outcomes["completed"]
    assert executed == 3 * contacts
    assert tick.per(executed)["calls"] <= 3.2, tick.calls
    print(f"\nenrollment per contact {enrollment.per(contacts)}\nper run {enrollment.per(3 * contacts)}\nstep {tick.per(executed)}")
