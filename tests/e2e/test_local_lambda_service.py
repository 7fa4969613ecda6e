"""Lambda's Invoke API as the local stack serves it, driven with boto3."""
from __future__ import annotations

import json
import textwrap

import boto3
import pytest

from dripline_local.lambda_service import LambdaService
from dripline_local.lambdas import LocalFunction


@pytest.fixture
def service(tmp_path):
    code = tmp_path / "fn"
    code.mkdir()
    (code / "app.py").write_text(textwrap.dedent('''
        CALLS = []
        def lambda_handler(event, context):
            CALLS.append(event)
            if event.get("fail"):
                raise RuntimeError("boom")
            return {"echo": event, "remaining": context.get_remaining_time_in_millis() > 0}
    '''))
    function = LocalFunction("EchoFunction", code, timeout=5)
    failures = []
    svc = LambdaService({"fn": function}, on_failure={function.name: failures.append}, retries={function.name: 1}).start()
    client = boto3.client("lambda", endpoint_url=svc.url, region_name="us-east-1",
                          aws_access_key_id="local", aws_secret_access_key="local")
    yield svc, client, function, failures
    svc.stop()


def test_request_response_returns_the_result(service):
    _, client, function, _ = service
    answer = client.invoke(FunctionName=function.name, Payload=json.dumps({"a": 1}).encode())
    assert answer["StatusCode"] == 200 and json.loads(answer["Payload"].read()) == {"echo": {"a": 1}, "remaining": True}


def test_an_event_runs_later_and_a_failure_ends_in_the_destination_after_its_retries(service):
    svc, client, function, failures = service
    assert client.invoke(FunctionName=function.arn, InvocationType="Event", Payload=b'{"n": 1}')["StatusCode"] == 202
    assert client.invoke(FunctionName=function.name, InvocationType="Event", Payload=b'{"fail": true}')["StatusCode"] == 202
    assert svc.wait_idle(timeout=10)
    calls = function.handler().__globals__["CALLS"]
    assert calls.count({"n": 1}) == 1 and calls.count({"fail": True}) == 2  # one retry
    (record,) = failures
    assert record["requestPayload"] == {"fail": True} and record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["responsePayload"]["errorMessage"] == "boom"


def test_an_unknown_function_is_a_404(service):
    _, client, _, _ = service
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="nope", Payload=b"{}")
