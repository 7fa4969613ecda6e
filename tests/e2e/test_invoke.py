"""`dripline invoke`: one handler of the template on one event, on a fresh emulator or a
running stack's."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dripline_local.invoke import find_function

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


def dripline(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dripline_local.cli", *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize(
    ("name", "logical_id"),
    [("api", "ApiFunction"), ("ApiFunction", "ApiFunction"), ("Processor", "ProcessorFunction"), ("ses_events", "SesEventsFunction"), ("SesEvents", "SesEventsFunction"), ("ses-events", "SesEventsFunction")],
)
def test_functions_are_found_by_logical_id_or_short_name(name, logical_id):
    assert find_function(name) == logical_id


def test_an_unknown_function_names_the_known_ones():
    with pytest.raises(LookupError, match="ApiFunction"):
        find_function("mailer")


def test_every_sample_event_is_json_and_described_in_the_readme():
    readme = (EVENTS / "README.md").read_text()
    for path in EVENTS.glob("*.json"):
        json.loads(path.read_text())
        assert f"`{path.name}`" in readme, path.name


def test_invoke_on_a_fresh_emulator_prints_logs_and_response(child_env):
    done = dripline("invoke", "processor", "events/processor_scheduled.json", env=child_env)
    assert done.returncode == 0, done.stderr
    logs, _, response = done.stdout.partition("--- ProcessorFunction response")
    assert logs.startswith("--- ProcessorFunction logs ---")
    assert '"message":"tick finished"' in logs and '"function_name":"dripline-local-ProcessorFunction"' in logs
    assert json.loads(response.split("---\n", 1)[1])["due"] == 0


def test_invoke_against_a_running_stack_writes_to_its_tables(local_stack, stack_log, child_env):
    done = dripline("invoke", "ApiFunction", "events/api_create_contact.json", "--endpoint", local_stack.info["aws_endpoint_url"], env=child_env)
    assert done.returncode == 0, done.stderr
    response = json.loads(done.stdout.split("---\n", 2)[2])
    assert response["statusCode"] == 201
    contact_id = json.loads(response["body"])["contact_id"]
    # The stack's own API (same tables) sees the contact, as the event's team.
    assert local_stack.client("acme").call("GET", f"/contacts/{contact_id}")["email"] == "ada@example.com"


def test_bad_input_exits_2_with_a_message(child_env, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    for args, message in [(("mailer", "events/api_health.json"), "no function 'mailer'"), (("api", str(broken)), "Expecting property name"), (("api", "missing.json"), "No such file")]:
        done = dripline("invoke", *args, env=child_env)
        assert done.returncode == 2 and re.search(message, done.stderr), (args, done.stderr)


def test_a_handler_error_is_reported_like_lambda_and_exits_1(child_env, tmp_path):
    event = tmp_path / "not_a_stream_batch.json"
    event.write_text('{"Records": [{"eventName": "INSERT"}]}')
    done = dripline("invoke", "enrollment", str(event), env=child_env)
    assert done.returncode == 1 and "--- EnrollmentFunction response (error, " in done.stdout
    response = json.loads(done.stdout.split("---\n", 2)[2])
    # A batch whose every record fails raises, as in Lambda (the event source retries it).
    assert response["errorType"] == "BatchProcessingError" and response["stackTrace"][0].startswith("Traceback")
