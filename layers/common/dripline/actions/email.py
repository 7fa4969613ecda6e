"""send_email: SES v2 SendEmail with a raw MIME message.

Raw content lets the message carry List-Unsubscribe and List-Unsubscribe-Post
(RFC 8058 one-click) headers next to text and HTML parts.

No contact value can add a header, a line or a MIME part, on any Python version: the
message is built with the `compat32` MIME classes, which write header values as given
and never parse them (the `default` policy decodes encoded-words in a value it is handed,
which Python 3.11 and 3.12 then wrote back as raw CR/LF). The subject, the one header
built from contact data, is encoded by us as RFC 2047 encoded-words after control
characters are removed, so an encoded-word in a contact's name stays text; the other
headers refuse CR, LF and NUL; the bodies are base64.
"""
from __future__ import annotations

import unicodedata
from email.charset import BASE64, Charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import formatdate, make_msgid

from dripline import templating, unsubscribe
from dripline.actions import ActionContext, ActionError, register
from dripline.domain import Step
from dripline.engine import ActionResult
from dripline.errors import ValidationFailed
from dripline.keys import SecretUnavailable

SUPPRESSED = "suppressed"  # the skip reason of an email to a suppressed address
MAX_SUBJECT = 998  # RFC 5322 line limit; also the limit of a rendered subject
UTF8 = Charset("utf-8")
UTF8.header_encoding = BASE64  # encoded-words that carry no readable (or decodable-looking) text
UTF8.body_encoding = BASE64
# Header lines as given (a long unsubscribe link stays on its line); the encoded subject folds itself.
UNFOLDED = compat32.clone(max_line_length=None)


class SendEmail:
    name = "send_email"
    # SES has no idempotency key: sending twice sends twice.
    idempotent = False

    def validate(self, step: Step) -> None:
        subject = step.data.get("subject")
        if not isinstance(subject, str) or not subject.strip():
            raise ValidationFailed("data.subject", "send_email needs a non-empty subject")
        if len(subject) > MAX_SUBJECT:
            raise ValidationFailed("data.subject", f"at most {MAX_SUBJECT} characters")
        templating.check(subject, "data.subject")
        templating.check(step.message, "message")

    def execute(self, ctx: ActionContext) -> ActionResult:
        contact = ctx.contact
        if contact.unsubscribed:
            return ActionResult.skipped("unsubscribed")
        if contact.suppressed:  # the address, whichever contact carries it now
            return ActionResult.skipped(SUPPRESSED)
        settings = ctx.settings
        try:
            key = settings.unsubscribe_secret
        except SecretUnavailable as exc:  # fail closed: no link, no email; a later attempt may read it
            raise ActionError(f"SecretUnavailable: {exc}", retryable=True) from exc
        link = unsubscribe.unsubscribe_url(
            settings.public_api_url, key, contact.team_id, contact.contact_id, contact.subscription_generation, ctx.now
        )
        context = {"contact": contact.template_context(), "pipeline": {"name": ctx.pipeline.name}, "unsubscribe_url": link}

        subject = _subject_line(templating.render_text(str(ctx.step.data["subject"]), context))
        text = templating.render_text(ctx.step.message, context)
        html = templating.render_html(ctx.step.message, context)
        message = MIMEMultipart("alternative")
        message["From"] = _header_value(settings.email_from)
        message["To"] = _header_value(contact.email)
        message["Subject"] = Header(subject, UTF8, header_name="Subject")
        message["Date"] = formatdate(ctx.now.timestamp(), usegmt=True)
        message["Message-ID"] = make_msgid(domain="dripline")
        message["List-Unsubscribe"] = _header_value(f"<{link}>")
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.attach(MIMEText(f"{text}\n\n--\nUnsubscribe: {link}\n", "plain", UTF8))
        body = f'<html><body><p>{html}</p><p><a href="{link}">Unsubscribe</a></p></body></html>'
        message.attach(MIMEText(body, "html", UTF8))

        response = ctx.clients.sesv2.send_email(
            FromEmailAddress=settings.email_from,
            Destination={"ToAddresses": [contact.email]},
            Content={"Raw": {"Data": message.as_bytes(policy=UNFOLDED)}},
            ConfigurationSetName=settings.ses_configuration_set,
            EmailTags=[
                {"Name": "team", "Value": _tag(contact.team_id)},
                {"Name": "pipeline", "Value": _tag(ctx.pipeline.pipeline_id)},
                {"Name": "run", "Value": _tag(ctx.run.run_id)},
                {"Name": "step", "Value": str(ctx.step.step_number)},
            ],
        )
        return ActionResult.succeeded(message_id=response["MessageId"], to=contact.email)


def _subject_line(rendered: str) -> str:
    """One line of printable text: whitespace runs (CR and LF included) become one space,
    other control characters (NUL ...) go. At most MAX_SUBJECT characters."""
    line = " ".join(rendered.split())
    line = "".join(c for c in line if unicodedata.category(c) != "Cc")
    if len(line) > MAX_SUBJECT:
        raise ActionError(f"the subject is {len(line):,} characters after rendering (at most {MAX_SUBJECT})", retryable=False)
    return line


def _header_value(value: str) -> str:
    """A header value we do not encode (addresses, links): refused if it could end the line."""
    if any(c in value for c in "\r\n\0"):
        raise ActionError("a header value contains a line break or NUL", retryable=False)
    return value


def _tag(value: str) -> str:
    """SES tag values allow only [A-Za-z0-9_-], at most 256 characters."""
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in value)[:256]


register(SendEmail())
