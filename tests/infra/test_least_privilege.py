"""Issue 8, finding 8: each function is allowed what it calls, on exact ARNs, and no more.

The full scenario (tests/scenario.py) runs with every AWS call recorded per function;
each call must be allowed by that function's role in the transformed template. The
processor's grants are also pinned: a wider one fails here before it ships.
"""
import contextlib
import json
import re

import botocore.client
import pytest

from dripline import keys
from dripline_local.resources import SECRET_SETTINGS, TABLE_SETTINGS
from tests import scenario
from tests.support import StreamReader

FUNCTIONS = {"api": "ApiFunction", "enrollment": "EnrollmentFunction", "processor": "ProcessorFunction",
             "ses_events": "SesEventsFunction"}


def grants(resources, function_id):
    """{(action, target)} of a function's role; targets are logical ids ('RunsTable/index/due',
    'UnsubscribeLinkSecret', 'ses:identity', 'ses:configuration-set')."""
    granted = set()
    for policy in resources[role_of(resources, function_id)]["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            granted |= {(action, _target(t)) for action in actions for target in targets for t in [target]}
    return granted


def role_of(resources, function_id):
    role = resources[function_id]["Properties"]["Role"]["Fn::GetAtt"]
    return role.split(".")[0] if isinstance(role, str) else role[0]


def _target(resource):
    text = json.dumps(resource)
    if "configuration-set/" in text:
        return "ses:configuration-set"
    if ":identity/" in text:
        return "ses:identity/*" if "identity/*" in text else "ses:identity"
    if "/index/*" in text:
        return "every index"  # never granted: a call names its index
    if "StreamArn" in text:
        return re.search(r'"(\w+)", "StreamArn"|"(\w+)\.StreamArn"', text).group(0).split('"')[1].split(".")[0] + "/stream"
    index = re.search(r"\$\{(\w+)\.Arn\}/index/([\w*]+)", text)
    if index:
        return f"{index.group(1)}/index/{index.group(2)}"
    arn = re.search(r'"Fn::GetAtt": \["(\w+)", "Arn"\]|"Fn::GetAtt": "(\w+)\.Arn"', text)
    if arn:
        return arn.group(1) or arn.group(2)
    ref = re.fullmatch(r'\{"Ref": "(\w+)"\}', text)
    return ref.group(1) if ref else text


def test_the_processor_is_granted_exactly_what_it_calls(resources):
    assert grants(resources, "ProcessorFunction") == {
        ("dynamodb:Query", "RunsTable/index/due"), ("dynamodb:GetItem", "RunsTable"), ("dynamodb:UpdateItem", "RunsTable"),
        ("dynamodb:BatchGetItem", "ContactsTable"), ("dynamodb:BatchGetItem", "DealsTable"),
        ("dynamodb:GetItem", "PipelinesTable"), ("dynamodb:BatchGetItem", "PipelinesTable"),
        ("dynamodb:UpdateItem", "PipelinesTable"),
        ("dynamodb:GetItem", "TasksTable"), ("dynamodb:PutItem", "TasksTable"),
        ("secretsmanager:GetSecretValue", "UnsubscribeLinkSecret"),
        ("ses:SendEmail", "ses:identity"), ("ses:SendRawEmail", "ses:identity"),
        ("ses:SendEmail", "ses:configuration-set"), ("ses:SendRawEmail", "ses:configuration-set"),
        ("sqs:SendMessage", "ProcessorFailureQueue"),
        ("lambda:InvokeFunction", "ProcessorWorkerFunction"),  # fan-out (dripline.fanout)
    }


def test_a_worker_is_granted_what_the_processor_is_except_starting_workers(resources):
    worker = grants(resources, "ProcessorWorkerFunction")
    processor = grants(resources, "ProcessorFunction")
    assert worker == processor - {("lambda:InvokeFunction", "ProcessorWorkerFunction"),
                                  ("sqs:SendMessage", "ProcessorFailureQueue")} | {("sqs:SendMessage", "ProcessorWorkerFailureQueue")}


def test_ses_may_send_only_as_the_email_from_domain(resources):
    role = json.dumps(resources[role_of(resources, "ProcessorFunction")])
    assert "identity/*" not in role and "identity/${Domain}" in role


class Recorder:
    """Which AWS calls each function makes (at the SDK, as IAM would see them)."""

    def __init__(self, settings):
        self.current = None
        self.calls = set()
        names = {getattr(settings, field): logical for logical, field in {**TABLE_SETTINGS, **SECRET_SETTINGS}.items()}
        self.names = names
        self.settings = settings

    @contextlib.contextmanager
    def calling(self, function):
        previous, self.current = self.current, function
        keys.forget()  # each function reads its own keys (no cached value from another)
        try:
            yield
        finally:
            self.current = previous

    def record(self, client, operation, params):
        if self.current is None:
            return  # the test's own setup and assertions
        service = client.meta.service_model.service_name
        if service == "dynamodb" and operation == "TransactWriteItems":
            # IAM authorizes each item as its own action on its table.
            kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
            for item in params["TransactItems"]:
                ((kind, write),) = item.items()
                self.calls.add((self.current, f"dynamodb:{kinds[kind]}", self.names[write["TableName"]]))
        elif service == "dynamodb" and "RequestItems" in params:
            for table in params["RequestItems"]:
                self.calls.add((self.current, f"dynamodb:{operation}", self.names[table]))
        elif service == "dynamodb":
            table = self.names[params["TableName"]]
            target = f"{table}/index/{params['IndexName']}" if params.get("IndexName") else table
            self.calls.add((self.current, f"dynamodb:{operation}", target))
        elif service == "dynamodbstreams":
            pass  # the event source mapping reads the stream, not the function
        elif service == "secretsmanager":
            self.calls.add((self.current, f"secretsmanager:{operation}", self.names[params["SecretId"]]))
        elif service == "sesv2" and operation == "SendEmail":
            assert params["ConfigurationSetName"] == self.settings.ses_configuration_set
            for target in ("ses:identity", "ses:configuration-set"):
                self.calls.add((self.current, "ses:SendRawEmail", target))
        else:
            self.calls.add((self.current, f"{service}:{operation}", "?"))


@pytest.fixture
def recorder(aws, settings, monkeypatch):
    recorder = Recorder(settings)
    real = botocore.client.BaseClient._make_api_call

    def recorded(client, operation, params):
        recorder.record(client, operation, params)
        return real(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recorded)
    return recorder


def test_every_call_of_a_full_scenario_is_allowed_to_its_function(resources, aws, recorder, frozen_clock):
    scenario.run(StreamReader(aws.contacts_stream_arn), frozen_clock, calling=recorder.calling)

    allowed = {(function, action, target) for function, logical in FUNCTIONS.items() for action, target in grants(resources, logical)}
    denied = sorted(call for call in recorder.calls if call not in allowed)
    assert denied == []
    assert {function for function, _, _ in recorder.calls} == set(FUNCTIONS)
