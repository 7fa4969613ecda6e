"""Regression guard for the step path's cost: calls and write units, counted, not timed."""
from datetime import timedelta

from dripline.processor import Processor
from functions.enrollment import app as enrollment_app
from tests.metering import Meter
from tests.support import FakeContext, StreamReader, make_pipeline, put_contact, stream_event

TEAM = "acme"
CONTACTS = 10


def twenty_steps():
    return [
        {"step_number": n, "action_type": "send_email" if n % 2 else "create_task", "delay_seconds": 0 if n == 1 else 3600,
         "message": "Hello {{ contact.first_name }}, step " + str(n), "data": {"subject": f"Step {n}", "title": f"Call {n}"}}
        for n in range(1, 21)
    ]


def test_measure(aws, settings, frozen_clock):
    stream = StreamReader(aws.contacts_stream_arn)
    make_pipeline(TEAM, twenty_steps(), name="Twenty")
    make_pipeline(TEAM, twenty_steps()[:1], name="Two")
    make_pipeline(TEAM, twenty_steps()[:1], name="Three")
    for i in range(CONTACTS):
        put_contact(TEAM, f"c{i}@example.com")
    records = stream.read()
    processor = Processor(settings)
    with Meter() as meter:
        assert enrollment_app.lambda_handler(stream_event(records), FakeContext()) == {"batchItemFailures": []}
        print("enroll calls/contact", meter.total_calls() / CONTACTS, dict(meter.calls))
        print("enroll WU/run", meter.total_write_units() / (3 * CONTACTS), dict(meter.write_units))
        per_step = []
        for step in range(1, 21):
            meter.reset()
            report = processor.tick()
            executed = sum(report.outcomes.values())
            per_step.append((step, executed, meter.total_calls() / executed, meter.total_write_units() / executed, dict(meter.calls), dict(meter.write_units)))
            frozen_clock.advance(3600)
    for row in per_step:
        print(row)
