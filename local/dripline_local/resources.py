"""Create every resource the functions need, from infra/template.yaml, in the emulator.

Used by the local stack and by the tests, so neither can drift from what is deployed.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import boto3

from dripline.settings import Settings
from dripline_local.template import resources_of_type

# Logical id in the template -> Settings field holding the physical name.
TABLE_SETTINGS = {
    "ContactsTable": "contacts_table",
    "DealsTable": "deals_table",
    "PipelinesTable": "pipelines_table",
    "RunsTable": "runs_table",
    "TasksTable": "tasks_table",
}

# Logical id -> Settings field holding the secret's id. Each gets a random value here,
# as CloudFormation generates one (GenerateSecretString) in AWS.
SECRET_SETTINGS = {
    "UnsubscribeLinkSecret": "unsubscribe_secret_id",
    "PaginationTokenSecret": "token_secret_id",
}


# The on-failure destination of the contacts stream's event source mapping.
ENROLLMENT_FAILURE_QUEUE = "EnrollmentFailureQueue"


@dataclass(frozen=True)
class LocalResources:
    settings: Settings
    contacts_stream_arn: str
    failure_queue_url: str
    # Every table stream, by the table's logical id in the template (ContactsTable, DealsTable).
    stream_arns: dict[str, str] = field(default_factory=dict)

    @property
    def deals_stream_arn(self) -> str:
        return self.stream_arns["DealsTable"]


def table_create_args(logical_id: str, name: str) -> dict[str, Any]:
    """CreateTable arguments from a template table's properties."""
    props = resources_of_type("AWS::DynamoDB::Table")[logical_id]["Properties"]
    args: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if "GlobalSecondaryIndexes" in props:
        args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    if "StreamSpecification" in props:
        args["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    return args


def create_resources(settings: Settings, *, endpoint_url: str | None = None) -> LocalResources:
    """Create the tables, the queues, the signing-key secrets and the SES identity/config set."""
    session = boto3.session.Session(region_name=settings.region)
    dynamodb = session.client("dynamodb", endpoint_url=endpoint_url)
    stream_arns: dict[str, str] = {}
    tables = resources_of_type("AWS::DynamoDB::Table")
    for logical_id in tables:
        name = getattr(settings, TABLE_SETTINGS[logical_id])
        description = dynamodb.create_table(**table_create_args(logical_id, name))["TableDescription"]
        if "LatestStreamArn" in description:
            stream_arns[logical_id] = description["LatestStreamArn"]

    sqs = session.client("sqs", endpoint_url=endpoint_url)
    queue_urls = {
        queue_id: sqs.create_queue(QueueName=f"dripline-{queue_id}")["QueueUrl"]
        for queue_id in resources_of_type("AWS::SQS::Queue")
    }

    secretsmanager = session.client("secretsmanager", endpoint_url=endpoint_url)
    for logical_id in resources_of_type("AWS::SecretsManager::Secret"):
        secret_id = getattr(settings, SECRET_SETTINGS[logical_id])
        secretsmanager.create_secret(Name=secret_id, SecretString=secrets.token_urlsafe(48))

    ses = session.client("sesv2", endpoint_url=endpoint_url)
    ses.create_email_identity(EmailIdentity=_address(settings.email_from))
    ses.create_configuration_set(ConfigurationSetName=settings.ses_configuration_set)
    return LocalResources(
        settings=settings,
        contacts_stream_arn=stream_arns["ContactsTable"],
        failure_queue_url=queue_urls[ENROLLMENT_FAILURE_QUEUE],
        stream_arns=stream_arns,
    )


def _address(from_header: str) -> str:
    """'Name <a@b>' -> 'a@b'."""
    if "<" in from_header:
        return from_header.split("<", 1)[1].rstrip(">").strip()
    return from_header.strip()
