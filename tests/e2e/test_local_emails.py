"""GET /_local/emails' source: SES v2 messages parsed once, with their email tags, so two
teams' mail to one address can be told apart."""
from __future__ import annotations

from datetime import datetime, timezone
from email.message import EmailMessage

import boto3
import pytest
from moto import mock_aws

from dripline_local import emails
from dripline_local.lambdas import ACCOUNT_ID

REGION = "us-east-1"
SENT_AT = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def sesv2(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    with mock_aws():
        emails.record_sends(lambda: SENT_AT)
        client = boto3.client("sesv2", region_name=REGION)
        client.create_email_identity(EmailIdentity="news@example.com")
        yield client


def send(client, *, team: str, subject: str, to: str = "ada@example.com") -> str:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "news@example.com", to, subject
    message.set_content(f"for {team}")
    answer = client.send_email(
        FromEmailAddress="news@example.com",
        Destination={"ToAddresses": [to]},
        Content={"Raw": {"Data": message.as_bytes()}},
        EmailTags=[{"Name": "team", "Value": team}, {"Name": "run", "Value": f"run-{subject}"}],
    )
    return answer["MessageId"]


def test_two_teams_mail_to_one_address_is_told_apart_by_its_tags(sesv2):
    send(sesv2, team="acme", subject="a1")
    send(sesv2, team="globex", subject="g1")
    send(sesv2, team="acme", subject="a2", to="bob@example.com")

    both = emails.list_emails(ACCOUNT_ID, REGION, to="ADA@example.com")
    assert [(e["subject"], e["tags"]["team"]) for e in both] == [("a1", "acme"), ("g1", "globex")]
    assert [e["subject"] for e in emails.list_emails(ACCOUNT_ID, REGION, team="acme")] == ["a1", "a2"]
    assert [e["subject"] for e in emails.list_emails(ACCOUNT_ID, REGION, to="ada@example.com", team="acme")] == ["a1"]
    assert [e["subject"] for e in emails.list_emails(ACCOUNT_ID, REGION, run="run-g1")] == ["g1"]
    assert both[0]["sent_at"] == "2026-03-02T09:00:00.000Z" and both[0]["text"].startswith("for acme")


def test_messages_are_parsed_once_and_new_ones_still_appear(sesv2):
    send(sesv2, team="acme", subject="first")
    first = emails.list_emails(ACCOUNT_ID, REGION)
    cached = emails._parsed(emails.ses_backends[ACCOUNT_ID][REGION].sent_messages)
    send(sesv2, team="acme", subject="second")
    again = emails._parsed(emails.ses_backends[ACCOUNT_ID][REGION].sent_messages)
    assert again[0] is cached[0]  # the first message was not parsed again
    assert [e["subject"] for e in emails.list_emails(ACCOUNT_ID, REGION)] == ["first", "second"]
    # Callers get copies: changing one does not change the cache.
    first[0]["subject"] = "changed"
    assert emails.list_emails(ACCOUNT_ID, REGION)[0]["subject"] == "first"
