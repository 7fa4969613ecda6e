"""GET /_local/emails with 400 stored emails: parsing every message on every call (what
the local stack did before) against the cached views (parsed once, as SES accepts them).

    .venv/bin/python -m benchmarks.local_emails
"""
from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from email.message import EmailMessage

import boto3
from moto import mock_aws

from dripline_local import emails
from dripline_local.lambdas import ACCOUNT_ID

REGION = "us-east-1"
EMAILS = 400
CALLS = 20


def main() -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    with mock_aws():
        emails.record_sends(lambda: datetime.now(timezone.utc))
        ses = boto3.client("sesv2", region_name=REGION)
        ses.create_email_identity(EmailIdentity="news@example.com")
        for n in range(EMAILS):
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = "news@example.com", f"c{n % 50}@example.com", f"Hello {n}"
            message.set_content(f"Hi {n},\n\nwelcome aboard.\n")
            message.add_alternative(f"<html><body><p>Hi {n}, welcome aboard.</p></body></html>", subtype="html")
            ses.send_email(
                FromEmailAddress="news@example.com",
                Destination={"ToAddresses": [message["To"]]},
                Content={"Raw": {"Data": message.as_bytes()}},
                EmailTags=[{"Name": "team", "Value": f"team{n % 2}"}],
            )
        stored = emails.ses_backends[ACCOUNT_ID][REGION].sent_messages

        started = time.perf_counter()
        for _ in range(CALLS):
            [emails._view(message) for message in stored]  # the old path: parse all, every call
        parse_all = (time.perf_counter() - started) / CALLS * 1000

        started = time.perf_counter()
        emails.list_emails(ACCOUNT_ID, REGION, to="c7@example.com")
        first = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        for _ in range(CALLS):
            emails.list_emails(ACCOUNT_ID, REGION, to="c7@example.com")
        cached = (time.perf_counter() - started) / CALLS * 1000
    print(f"GET /_local/emails?to=... with {EMAILS} stored emails (ms per call, mean of {CALLS})")
    print(f"  parse every message (before)      {parse_all:8.1f}")
    print(f"  cached views, first call          {first:8.1f}")
    print(f"  cached views, later calls (after) {cached:8.1f}  ({parse_all / cached:.0f}x faster)")


if __name__ == "__main__":
    main()
