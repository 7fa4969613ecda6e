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

from dripline import records, templating, unsubscribe
from dripline.actions import ActionContext, ActionError, register
from dripline.records import EmailRecipient
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
        to = step.data.get("to")
        if to is not None and not isinstance(to, str):
            raise ValidationFailed("data.to", "must be a string")  # which values: per model type (dripline.records)
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
        settings = ctx.settings
        contact = recipient.contact
        link = None
        if contact is not None:  # a contact's email carries its own unsubscribe link (RFC 8058)
            try:
                key = settings.unsubscribe_secret
            except SecretUnavailable as exc:  # fail closed: no link, no email; a later attempt may read it
                raise ActionError(f"SecretUnavailable: {exc}", retryable=True) from exc
            link = unsubscribe.unsubscribe_url(
                settings.public_api_url, key, contact.team_id, contact.contact_id, contact.subscription_generation, ctx.now
            )
        context = ctx.template_context(recipient, link)

        subject = _subject_line(templating.render_text(str(ctx.step.data["subject"]), context))
        text = templating.render_text(ctx.step.message, context)
        html = templating.render_html(ctx.step.message, context)
        message = MIMEMultipart("alternative")
        message["From"] = _header_value(settings.email_from)
        message["To"] = _header_value(recipient.address)
        message["Subject"] = Header(subject, UTF8, header_name="Subject")
        message["Date"] = formatdate(ctx.now.timestamp(), usegmt=True)
        message["Message-ID"] = make_msgid(domain="dripline")
        footer_text, footer_html = "", ""
        if link is not None:
            message["List-Unsubscribe"] = _header_value(f"<{link}>")
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
            footer_text, footer_html = f"\n\n--\nUnsubscribe: {link}", f'<p><a href="{link}">Unsubscribe</a></p>'
        message.attach(MIMEText(f"{text}{footer_text}\n", "plain", UTF8))
        body = f"<html><body><p>{html}</p>{footer_html}</body></html>"
        message.attach(MIMEText(body, "html", UTF8))

        tags = [
            {"Name": "team", "Value": _tag(ctx.record.team_id)},
            {"Name": "pipeline", "Value": _tag(ctx.pipeline.pipeline_id)},
            {"Name": "run", "Value": _tag(ctx.run.run_id)},
            {"Name": "step", "Value": str(ctx.step.step_number)},
        ]
        if contact is not None:  # whom a bounce or complaint suppresses (dripline.email_events)
            tags.append({"Name": "contact", "Value": _tag(contact.contact_id)})
        response = ctx.clients.sesv2.send_email(
            FromEmailAddress=settings.email_from,
            Destination={"ToAddresses": [recipient.address]},
            Content={"Raw": {"Data": message.as_bytes(policy=UNFOLDED)}},
            ConfigurationSetName=settings.ses_configuration_set,
            EmailTags=tags,
        )
        return response["MessageId"]


def _skip_reason(recipient: EmailRecipient) -> str | None:
    """Why no email goes to this recipient (an unsubscribed contact, a suppressed address), or None."""
    if recipient.contact is not None and recipient.contact.unsubscribed:
        return "unsubscribed"
    if recipient.suppressed:  # the address, whichever contact (or owner) carries it now
        return SUPPRESSED
    return None


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
