"""scripts/smoke_test.py: its arguments, the stack outputs and the temporary Cognito user
(on moto), and its whole flow against the local stack."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import boto3
import jwt
import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("smoke_test", ROOT / "scripts" / "smoke_test.py")
smoke = importlib.util.module_from_spec(spec)
spec.loader.exec_module(smoke)

REGION = "us-east-1"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--stack-name", "s", "--api-url", "http://x"],
        ["--api-url", "http://x"],
        ["--stack-name", "s", "--local"],
        ["--stack-name", "s", "--timeout", "0"],
    ],
)
def test_bad_arguments_exit_2_before_touching_anything(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        smoke.parse_args(argv)
    assert exited.value.code == 2 and "error:" in capsys.readouterr().err


@pytest.fixture
def aws(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield


def create_stack(outputs: dict[str, str], name: str = "dripline") -> None:
    template = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(StackName=name, TemplateBody=json.dumps(template))


def test_stack_outputs_are_read_and_a_missing_stack_or_output_is_a_setup_error(aws):
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    with pytest.raises(smoke.SetupError, match="stack dripline"):
        smoke.stack_outputs(cloudformation, "dripline")
    create_stack({"ApiUrl": "https://abc.execute-api.us-east-1.amazonaws.com", "UserPoolId": "us-east-1_x"})
    with pytest.raises(smoke.SetupError, match="no output UserPoolClientId"):
        smoke.stack_outputs(cloudformation, "dripline")
    complete = {"ApiUrl": "https://api", "UserPoolId": "us-east-1_x", "UserPoolClientId": "client"}
    create_stack(complete, name="dripline-prod")
    assert smoke.stack_outputs(cloudformation, "dripline-prod") == complete


def test_the_temporary_user_signs_in_with_its_team_claim_and_is_deleted(aws):
    cognito = boto3.client("cognito-idp", region_name=REGION)
    pool_id = cognito.create_user_pool(
        PoolName="dripline",
        UsernameAttributes=["email"],
        Schema=[{"Name": "team_id", "AttributeDataType": "String", "Mutable": False}],
    )["UserPool"]["Id"]
    client_id = cognito.create_user_pool_client(UserPoolId=pool_id, ClientName="api", ExplicitAuthFlows=["ALLOW_USER_SRP_AUTH"])["UserPoolClient"]["ClientId"]

    with smoke.temporary_user(cognito, pool_id, client_id, "smoke-1234") as token:
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["custom:team_id"] == "smoke-1234" and claims["aud"] == client_id and claims["token_use"] == "id"
        assert len(cognito.list_users(UserPoolId=pool_id)["Users"]) == 1
    assert cognito.list_users(UserPoolId=pool_id)["Users"] == []


def test_the_whole_flow_passes_against_the_local_stack(local_stack, stack_log, capsys):
    assert smoke.main(["--api-url", local_stack.url, "--local", "--timeout", "600"]) == 0
    out = capsys.readouterr().out
    assert "run " in out and "email step succeeded" in out and "1 email sent" in out and "SMOKE TEST PASSED" in out


def test_a_failing_check_exits_1(local_stack, stack_log, capsys):
    # An address the API refuses: the flow stops at the contact with the API's message.
    assert smoke.main(["--api-url", local_stack.url, "--local", "--to", "not-an-address"]) == 1
    assert "SMOKE TEST FAILED: POST /contacts" in capsys.readouterr().err
