"""send_email: SES v2 SendEmail with a raw MIME message.

Raw content lets the message carry List-Unsubscribe and List-Unsubscribe-Post
(RFC 8058 one-click) headers next to text and HTML parts.
"""
from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from dripline import templating, unsubscribe
from dripline.actions import ActionContext, register
from dripline.domain import Step
from dripline.engine import ActionResult
from dripline.errors import ValidationFailed

MAX_SUBJECT = 998  # RFC 5322 line limit


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
        settings = ctx.settings
        link = unsubscribe.unsubscribe_url(
            settings.public_api_url, settings.unsubscribe_secret, contact.team_id, contact.contact_id,
            contact.subscription_generation, ctx.now,
        )
        context = {"contact": contact.template_context(), "pipeline": {"name": ctx.pipeline.name}, "unsubscribe_url": link}

        message = EmailMessage()
        message["From"] = settings.email_from
        message["To"] = contact.email
        # One line whatever the contact's fields hold (a CR or LF would be a header injection).
        message["Subject"] = " ".join(templating.render_text(str(ctx.step.data["subject"]), context).split())
        message["Date"] = formatdate(ctx.now.timestamp(), usegmt=True)
        message["Message-ID"] = make_msgid(domain="dripline")
        message["List-Unsubscribe"] = f"<{link}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        text = templating.render_text(ctx.step.message, context)
        message.set_content(f"{text}\n\n--\nUnsubscribe: {link}\n")
        html = templating.render_html(ctx.step.message, context)
        message.add_alternative(f'<html><body><p>{html}</p><p><a href="{link}">Unsubscribe</a></p></body></html>', subtype="html")

        response = ctx.clients.sesv2.send_email(
            FromEmailAddress=settings.email_from,
            Destination={"ToAddresses": [contact.email]},
            Content={"Raw": {"Data": message.as_bytes()}},
            ConfigurationSetName=settings.ses_configuration_set,
            EmailTags=[
                {"Name": "team", "Value": _tag(contact.team_id)},
                {"Name": "pipeline", "Value": _tag(ctx.pipeline.pipeline_id)},
                {"Name": "run", "Value": _tag(ctx.run.run_id)},
                {"Name": "step", "Value": str(ctx.step.step_number)},
            ],
        )
        return ActionResult.succeeded(message_id=response["MessageId"], to=contact.email)


def _tag(value: str) -> str:
    """SES tag values allow only [A-Za-z0-9_-], at most 256 characters."""
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in value)[:256]


register(SendEmail())
