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
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from email.charset import BASE64, Charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import formatdate, make_msgid
from typing import Any

from dripline import templating, unsubscribe
from dripline.actions import ActionContext, ActionError, register
from dripline.domain import Step
from dripline.email_tags import email_tags
from dripline.engine import ActionResult
from dripline.errors import ValidationFailed
from dripline.keys import SecretUnavailable
from dripline.settings import Settings

EMPTY_MESSAGE = "empty_message"  # the failure of an email whose body renders empty
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
        if not step.message.strip():
            raise ValidationFailed("message", "send_email needs a message (the email's body)")
        templating.check(subject, "data.subject")
        templating.check(step.message, "message")

    def execute(self, ctx: ActionContext) -> ActionResult:
        not_sent = _not_sent(ctx)
        if not_sent is not None:
            return not_sent
        link = unsubscribe_link(ctx)
        content = compose(ctx, link)
        response = send(
            ctx.clients.sesv2,
            ctx.settings,
            to=ctx.contact.email,
            raw=mime_message(content, sender=ctx.settings.email_from, to=ctx.contact.email, link=link, now=ctx.now),
            tags=email_tags(ctx.contact.team_id, ctx.pipeline.pipeline_id, ctx.run.run_id, ctx.step.step_number),
        )
        return ActionResult.succeeded(message_id=response["MessageId"], to=ctx.contact.email)

    def preview(self, ctx: ActionContext) -> dict[str, str] | ActionResult:
        """The subject and the two body parts `execute` would send now (dripline.simulation: preview, simulate)."""
        not_sent = _not_sent(ctx)
        if not_sent is not None:
            return not_sent
        return asdict(compose(ctx, unsubscribe_link(ctx)))


def _not_sent(ctx: ActionContext) -> ActionResult | None:
    """The skip of a contact that is never emailed, or None."""
    if ctx.contact.unsubscribed:
        return ActionResult.skipped("unsubscribed")
    if ctx.contact.suppressed:  # the address, whichever contact carries it now
        return ActionResult.skipped(SUPPRESSED)
    return None


@dataclass(frozen=True)
class EmailContent:
    """What an email step sends a contact: exactly the Subject and the two MIME parts."""

    subject: str  # one line, before encoding
    text: str  # the text/plain part
    html: str  # the text/html part


def unsubscribe_link(ctx: ActionContext) -> str:
    """The contact's signed one-click link (issued today: ctx.now), or the context's inert one."""
    if ctx.unsubscribe_url is not None:
        return ctx.unsubscribe_url
    contact, settings = ctx.contact, ctx.settings
    try:
        key = settings.unsubscribe_secret
    except SecretUnavailable as exc:  # fail closed: no link, no email; a later attempt may read it
        raise ActionError(f"SecretUnavailable: {exc}", retryable=True) from exc
    return unsubscribe.unsubscribe_url(
        settings.public_api_url, key, contact.team_id, contact.contact_id, contact.subscription_generation, ctx.now
    )


def compose(ctx: ActionContext, link: str) -> EmailContent:
    """The step's templates rendered for the contact, framed as sent (unsubscribe footer).

    A message that renders empty (only whitespace) for this contact is not sent: the
    step fails with `empty_message` (a contact without the attributes a template tests
    for, a template of only a missing field).
    """
    context = ctx.template_context(unsubscribe_url=link)
    subject = subject_line(templating.render_text(str(ctx.step.data["subject"]), context))
    text = templating.render_text(ctx.step.message, context)
    if not text.strip():
        raise ActionError(EMPTY_MESSAGE, retryable=False)
    html = templating.render_html(ctx.step.message, context)
    return EmailContent(
        subject=subject,
        text=f"{text}\n\n--\nUnsubscribe: {link}\n",
        html=f'<html><body><p>{html}</p><p><a href="{link}">Unsubscribe</a></p></body></html>',
    )


def mime_message(content: EmailContent, *, sender: str, to: str, link: str, now: datetime) -> bytes:
    """The raw message: headers no contact value can add to, base64 bodies."""
    # Our own boundary: the generator would otherwise pick one and compile a regex per
    # message to check the body for it. The parts are base64, which has no "_".
    message = MIMEMultipart("alternative", boundary=f"=_dripline_{uuid.uuid4().hex}")
    message["From"] = _header_value(sender)
    message["To"] = _header_value(to)
    message["Subject"] = Header(content.subject, UTF8, header_name="Subject")
    message["Date"] = formatdate(now.timestamp(), usegmt=True)
    message["Message-ID"] = make_msgid(domain="dripline")
    message["List-Unsubscribe"] = _header_value(f"<{link}>")
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.attach(MIMEText(content.text, "plain", UTF8))
    message.attach(MIMEText(content.html, "html", UTF8))
    return message.as_bytes(policy=UNFOLDED)


def send(sesv2: Any, settings: Settings, *, to: str, raw: bytes, tags: list[dict[str, str]]) -> dict[str, Any]:
    """SES v2 SendEmail through the stack's configuration set; the tags lead SES's events back."""
    return sesv2.send_email(
        FromEmailAddress=settings.email_from,
        Destination={"ToAddresses": [to]},
        Content={"Raw": {"Data": raw}},
        ConfigurationSetName=settings.ses_configuration_set,
        EmailTags=tags,
    )


def subject_line(rendered: str) -> str:
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


register(SendEmail())
