"""Issue 8, finding 2: no contact value can create a header, a line or a MIME part.

Python 3.11 and 3.12 decoded an encoded-word handed to the `default` email policy and
wrote it back as raw CR/LF; `make test` runs this module on 3.11 and on 3.13 (Lambda's).
"""
import email
import email.policy

import pytest
from moto.ses.models import ses_backends

from dripline.processor import Processor
from dripline.storage import runs
from functions.enrollment import app as enrollment_app
from tests.support import EMAIL_STEP, FakeContext, StreamReader, make_pipeline, put_contact, stream_event

TEAM = "acme"
ENCODED_WORD = "=?utf-8?q?Ann=0D=0AReply-To:_attacker@evil.com=0D=0ABcc:_e@evil.com=0D=0A=0D=0A<h1>Injected</h1>?="
HEADERS = {"From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post",
           "MIME-Version", "Content-Type"}


def sent_raw() -> list[bytes]:
    return [m.raw_data.encode() for m in ses_backends["123456789012"]["us-east-1"].sent_messages]


def send_one(stream, settings, *, first_name, subject="Welcome {{ contact.first_name }}", message=EMAIL_STEP["message"]):
    make_pipeline(TEAM, [{**EMAIL_STEP, "message": message, "data": {"subject": subject}}])
    contact = put_contact(TEAM, "ann@example.com", first_name=first_name)
    assert enrollment_app.lambda_handler(stream_event(stream.read()), FakeContext()) == {"batchItemFailures": []}
    Processor(settings).tick()
    (run,) = runs.runs_of(TEAM, "contact", contact.contact_id)
    return run


def structure(raw: bytes):
    """Headers and parts as a receiving server would see them (both parsers)."""
    for policy in (email.policy.compat32, email.policy.default):
        message = email.message_from_bytes(raw, policy=policy)
        yield message, [part.get_content_type() for part in message.walk()]


@pytest.fixture
def stream(aws):
    return StreamReader(aws.contacts_stream_arn)


@pytest.mark.parametrize("first_name", [
    ENCODED_WORD,
    "Ann\r\nBcc: e@evil.com",
    "Ann\nReply-To: attacker@evil.com\n\n<h1>Injected</h1>",
    "Ann\x00Bcc: e@evil.com",
    "Ann\u2028Bcc: e@evil.com\x85X: y",
    "=?utf-8?b?QW5uDQpCY2M6IGVAZXZpbC5jb20=?=",
])
def test_no_contact_value_adds_a_header_a_line_or_a_part(aws, stream, settings, first_name):
    run = send_one(stream, settings, first_name=first_name)

    assert run.status == "completed"
    (raw,) = sent_raw()
    head = raw.split(b"\n\n", 1)[0]
    assert b"\0" not in raw and b"\r" not in head
    for message, parts in structure(raw):
        assert set(message.keys()) == HEADERS
        assert parts == ["multipart/alternative", "text/plain", "text/html"]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    subject = str(message["Subject"])
    assert "\n" not in subject and "\r" not in subject and "\0" not in subject
    assert subject.startswith("Welcome ") and "<h1>" not in message.get_body(("html",)).get_content()


def test_the_subject_keeps_a_contact_name_as_text(aws, stream, settings):
    send_one(stream, settings, first_name=ENCODED_WORD)

    (raw,) = sent_raw()
    subject = str(email.message_from_bytes(raw, policy=email.policy.default)["Subject"])
    assert subject == f"Welcome {ENCODED_WORD}"


def test_non_ascii_names_arrive_intact(aws, stream, settings):
    send_one(stream, settings, first_name="Zoë 山田 🎉")

    (raw,) = sent_raw()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(message["Subject"]) == "Welcome Zoë 山田 🎉"
    assert message.get_body(("plain",)).get_content().startswith("Hi Zoë 山田 🎉, welcome!")


def test_a_subject_longer_than_998_characters_after_rendering_fails_the_step_unsent(aws, stream, settings):
    run = send_one(stream, settings, first_name="A" * 200, subject="{{ contact.first_name }}" * 5)

    assert run.status == "failed" and "after rendering" in run.last_error
    assert sent_raw() == []
