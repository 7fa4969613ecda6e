"""Issue 8, finding 7: signing keys come from Secrets Manager at run time (cached), are
never in a function's environment, and a missing key fails closed."""
import json
from dataclasses import replace

import boto3
import botocore.client
import pytest
from moto.ses.models import ses_backends

from dripline import keys
from dripline.processor import Processor
from dripline.settings import Settings
from dripline.storage import runs
from dripline_local.template import load_template
from functions.enrollment import app as enrollment_app
from tests.support import EMAIL_STEP, FakeContext, StreamReader, make_pipeline, put_contact, stream_event

TEAM = "acme"


def test_without_a_secret_id_there_is_no_key():
    settings = Settings.from_env({"AWS_REGION": "us-east-1"})
    for read in (lambda: settings.unsubscribe_secret, lambda: settings.token_secret):
        with pytest.raises(keys.SecretUnavailable, match="is not set"):
            read()


def test_keys_are_read_from_secrets_manager_once_per_cache_period(aws, settings, monkeypatch):
    calls = []
    real = botocore.client.BaseClient._make_api_call

    def counting(client, operation, params):
        if operation == "GetSecretValue":
            calls.append(params["SecretId"])
        return real(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    stored = boto3.client("secretsmanager").get_secret_value(SecretId=settings.unsubscribe_secret_id)["SecretString"]
    calls.clear()

    assert [settings.unsubscribe_secret for _ in range(3)] == [stored] * 3
    assert settings.token_secret != stored
    assert calls == [settings.unsubscribe_secret_id, settings.token_secret_id]


@pytest.mark.parametrize("problem", ["absent", "short"])
def test_an_unreadable_key_sends_nothing(aws, settings, problem):
    broken = replace(settings, unsubscribe_secret_id="dripline-test-broken")
    if problem == "short":
        boto3.client("secretsmanager").create_secret(Name=broken.unsubscribe_secret_id, SecretString="short")
    make_pipeline(TEAM, [EMAIL_STEP])
    contact = put_contact(TEAM, "ada@example.com")
    stream = StreamReader(aws.contacts_stream_arn)
    enrollment_app.lambda_handler(stream_event(stream.read()), FakeContext())

    Processor(broken).tick()

    (run,) = runs.runs_of(TEAM, "contact", contact.contact_id)
    assert run.status == "pending" and run.attempts == 1 and "SecretUnavailable" in run.last_error  # retried later
    assert ses_backends["123456789012"]["us-east-1"].sent_messages == []


def test_no_function_environment_holds_a_secret_value():
    template = load_template()
    environments = [template["Globals"]["Function"]["Environment"]] + [
        r["Properties"].get("Environment", {}) for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::Function"
    ]
    text = json.dumps(environments)
    assert "resolve:secretsmanager" not in text and "SECRET\"" not in text
    api = template["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert api["TOKEN_SECRET_ID"] == {"Ref": "PaginationTokenSecret"} and api["UNSUBSCRIBE_SECRET_ID"] == {"Ref": "UnsubscribeLinkSecret"}
