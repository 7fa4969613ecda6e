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

from dripline import records, templating, unsubscribe
from dripline.actions import ActionContext, ActionError, register
from dripline.records import EmailRecipient
from dripline.domain import ContactView, Step
from dripline.email_tags import email_tags, tag_value
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
        to = step.data.get("to")
        if to is not None and not isinstance(to, str):
            raise ValidationFailed("data.to", "must be a string")  # which values: per model type (dripline.records)
        if not step.message.strip():
            raise ValidationFailed("message", "send_email needs a message (the email's body)")
        templating.check(subject, "data.subject")
        templating.check(step.message, "message")

    def execute(self, ctx: ActionContext) -> ActionResult:
        """One email to each recipient `data.to` names for the run's record (a contact: itself;
        a deal: its `owner`, or its `contacts`, each with its own unsubscribe link).

        Recipients are sent to in order and the first failure ends the step (classified
        by the processor: a retry starts again from the first recipient; see README,
        "Model types", for what that means for a deal's contacts)."""
        target = records.get(ctx.record.type).target(ctx.step.data.get("to"))
        if target is None:
            raise ActionError(f"unknown_recipient: to={ctx.step.data.get('to')!r}", retryable=False)
        recipients = target.recipients(ctx.record)
        sent = [self._send(ctx, r) for r in recipients if _skip_reason(r) is None]
        if not sent:  # the first recipient's reason (the only one's, on a contact pipeline)
            return ActionResult.skipped(_skip_reason(recipients[0]) if recipients else "no_recipient")
        if len(recipients) == 1:
            return ActionResult.succeeded(message_id=sent[0], to=recipients[0].address)
        return ActionResult.succeeded(message_id=sent[0], sent=len(sent), skipped=len(recipients) - len(sent))

    def _send(self, ctx: ActionContext, recipient: EmailRecipient) -> str:
        """Render and send one email; its SES message id."""
        contact = recipient.contact
        link = unsubscribe_link(ctx, contact) if contact is not None else None  # a deal's owner has none
        content = compose(ctx, link, recipient)
        tags = email_tags(ctx.record.team_id, ctx.pipeline.pipeline_id, ctx.run.run_id, ctx.step.step_number)
        if contact is not None and ctx.record.type != records.CONTACT.name:
            # whom a bounce or complaint suppresses when the run is not the contact's (dripline.email_events)
            tags.append({"Name": "contact", "Value": tag_value(contact.contact_id)})
        raw = mime_message(content, sender=ctx.settings.email_from, to=recipient.address, link=link, now=ctx.now)
        return send(ctx.clients.sesv2, ctx.settings, to=recipient.address, raw=raw, tags=tags)["MessageId"]

    def preview(self, ctx: ActionContext) -> dict[str, str] | ActionResult:
        """The subject and the two body parts `execute` would send now (dripline.simulation:
        preview, simulate). Contact pipelines only: the API refuses a preview of any other
        record type's pipeline (docs/API.md)."""
        not_sent = _not_sent(ctx)
        if not_sent is not None:
            return not_sent
        return asdict(compose(ctx, unsubscribe_link(ctx)))


def _skip_reason(recipient: EmailRecipient) -> str | None:
    """Why no email goes to this recipient (an unsubscribed contact, a suppressed address), or None."""
    if recipient.contact is not None and recipient.contact.unsubscribed:
        return "unsubscribed"
    if recipient.suppressed:  # the address, whichever contact (or owner) carries it now
        return SUPPRESSED
    return None


def _not_sent(ctx: ActionContext) -> ActionResult | None:
    """The skip of a contact that is never emailed, or None (the same rule as execute's)."""
    reason = _skip_reason(EmailRecipient(ctx.contact.email, ctx.contact, ctx.contact.suppressed))
    return None if reason is None else ActionResult.skipped(reason)


@dataclass(frozen=True)
class EmailContent:
    """What an email step sends a contact: exactly the Subject and the two MIME parts."""

    subject: str  # one line, before encoding
    text: str  # the text/plain part
    html: str  # the text/html part


def unsubscribe_link(ctx: ActionContext, contact: ContactView | None = None) -> str:
    """The contact's (default: the run's contact) signed one-click link (issued today:
    ctx.now), or the context's inert one."""
    if ctx.unsubscribe_url is not None:
        return ctx.unsubscribe_url
    contact, settings = contact or ctx.contact, ctx.settings
    try:
        key = settings.unsubscribe_secret
    except SecretUnavailable as exc:  # fail closed: no link, no email; a later attempt may read it
        raise ActionError(f"SecretUnavailable: {exc}", retryable=True) from exc
    return unsubscribe.unsubscribe_url(
        settings.public_api_url, key, contact.team_id, contact.contact_id, contact.subscription_generation, ctx.now
    )


def compose(ctx: ActionContext, link: str | None, recipient: EmailRecipient | None = None) -> EmailContent:
    """The step's templates rendered for the recipient (default: the run's contact), framed as
    sent (with an unsubscribe footer when the email goes to a contact: `link`).

    A message that renders empty (only whitespace) for this contact is not sent: the
    step fails with `empty_message` (a contact without the attributes a template tests
    for, a template of only a missing field).
    """
    context = ctx.template_context(recipient, unsubscribe_url=link)
    subject = subject_line(templating.render_text(str(ctx.step.data["subject"]), context))
    text = templating.render_text(ctx.step.message, context)
    if not text.strip():
        raise ActionError(EMPTY_MESSAGE, retryable=False)
    html = templating.render_html(ctx.step.message, context)
    if link is None:  # to no contact (a deal's owner): nothing to unsubscribe from
        return EmailContent(subject=subject, text=f"{text}\n", html=f"<html><body><p>{html}</p></body></html>")
    return EmailContent(
        subject=subject,
        text=f"{text}\n\n--\nUnsubscribe: {link}\n",
        html=f'<html><body><p>{html}</p><p><a href="{link}">Unsubscribe</a></p></body></html>',
    )


def mime_message(content: EmailContent, *, sender: str, to: str, link: str | None, now: datetime) -> bytes:
    """The raw message: headers no contact value can add to, base64 bodies."""
    # Our own boundary: the generator would otherwise pick one and compile a regex per
    # message to check the body for it. The parts are base64, which has no "_".
    message = MIMEMultipart("alternative", boundary=f"=_dripline_{uuid.uuid4().hex}")
    message["From"] = _header_value(sender)
    message["To"] = _header_value(to)
    message["Subject"] = Header(content.subject, UTF8, header_name="Subject")
    message["Date"] = formatdate(now.timestamp(), usegmt=True)
    message["Message-ID"] = make_msgid(domain="dripline")
    if link is not None:
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
