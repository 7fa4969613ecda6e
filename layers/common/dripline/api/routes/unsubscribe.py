"""The unsubscribe link carried by every email (RFC 8058 one-click). No bearer token: the
link itself is the credential (see `dripline.unsubscribe`).

GET shows a small page naming the (masked) address and the sender, with a confirm button
(link scanners and previews only GET, so GET never unsubscribes); once unsubscribed, it
says so instead. POST unsubscribes, exactly as PATCH `unsubscribed: true` would, puts the address on the
team's suppression list (DELETE /suppressions is the only way off it), and is
what mail clients send for one-click (`List-Unsubscribe=One-Click`). A forged, altered,
expired or superseded link (the contact re-subscribed since) answers 404 and changes
nothing: as a page to a browser, as JSON otherwise.
"""
from __future__ import annotations

import html
from email.utils import parseaddr
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from dripline import clock, runtime, unsubscribe
from dripline.api.errors import ErrorBody, error_response
from dripline.errors import NotFound
from dripline.storage import contacts, suppressions
from dripline.storage.models import Contact

router = Router()
TAGS = ["unsubscribe"]

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>
body {{ font: 1.125rem/1.5 system-ui, sans-serif; color: #1a1a1a; background: #fff; margin: 0; }}
main {{ max-width: 32rem; margin: 4rem auto; padding: 0 1.5rem; }}
h1 {{ font-size: 1.6rem; }}
button {{ font: inherit; padding: .6rem 1.4rem; border: 0; border-radius: .3rem; background: #0b5394; color: #fff; cursor: pointer; }}
button:focus-visible {{ outline: 3px solid #f1c232; outline-offset: 2px; }}
.quiet {{ color: #4a4a4a; font-size: 1rem; }}
</style>
</head>
<body>
<main>
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"""
HTML_CONTENT = {content_types.TEXT_HTML: {"schema": {"type": "string"}}}
JSON_ERROR = {content_types.APPLICATION_JSON: {"model": ErrorBody}}
NOT_FOUND = {
    404: {
        "description": "Forged, altered, expired or superseded link: an HTML page if the client accepts HTML",
        "content": {**JSON_ERROR, **HTML_CONTENT},
    }
}
UNSUBSCRIBED = {"status": "unsubscribed"}


def _wants_html() -> bool:
    return "text/html" in (router.current_event.headers.get("accept") or "")


def _page(title: str, body: str, status: int = 200) -> Response[str]:
    return Response(status_code=status, content_type=content_types.TEXT_HTML, body=PAGE.format(title=title, body=body))


def _not_found() -> Response:
    if _wants_html():
        return _page(
            "This link does not work",
            "<p>This unsubscribe link is not valid any more: it may be old, incomplete, or from before you "
            "subscribed again.</p><p class=\"quiet\">Use the link in the most recent email you received.</p>",
            404,
        )
    return error_response(404, "unsubscribe link not found")


def _verified(token: str) -> tuple[unsubscribe.Link, Contact | None] | None:
    """The link and its contact (None if deleted), or None for a link that must not work."""
    link = unsubscribe.verify(runtime.settings().unsubscribe_secret, token, clock.now())
    if link is None:
        return None
    contact = contacts.find_contact(link.team_id, link.contact_id)
    if contact is not None and int(contact.subscription_generation or 0) != link.generation:
        return None  # re-subscribed since this link was sent
    return link, contact


def _sender() -> str:
    """`Dripline <no-reply@example.com>` -> `Dripline (no-reply@example.com)`."""
    name, address = parseaddr(runtime.settings().email_from)
    return f"{name} ({address})" if name else address


def _whom(contact: Contact | None) -> str:
    sender = html.escape(_sender())
    if contact is None:
        return f"emails from <strong>{sender}</strong>"
    return f"emails from <strong>{sender}</strong> to <strong>{html.escape(unsubscribe.masked(contact.email))}</strong>"


def _done(contact: Contact | None) -> Response[str]:
    return _page("You\u2019re unsubscribed", f"<p>You will not receive any more {_whom(contact)}.</p>")


@router.get(
    "/unsubscribe/<token>", operation_id="confirm_page",
    summary="Unsubscribe page (no bearer token)",
    description="A confirm button that POSTs to the same URL, naming the masked address and the sender; "
    "\u201cyou\u2019re unsubscribed\u201d once done. GET never unsubscribes.",
    tags=TAGS,
    responses={200: {"description": "An HTML page", "content": HTML_CONTENT}, **NOT_FOUND},
)
def confirm_page(token: str) -> Response[str]:
    verified = _verified(token)
    if verified is None:
        return _not_found()
    _, contact = verified
    if contact is None or contact.unsubscribed:
        return _done(contact)
    action = html.escape(f"/unsubscribe/{token}", quote=True)
    return _page(
        "Unsubscribe",
        f"<p>Stop {_whom(contact)}?</p>"
        f'<form method="post" action="{action}"><button type="submit">Unsubscribe</button></form>'
        '<p class="quiet">You can close this page to stay subscribed.</p>',
    )


@router.post(
    "/unsubscribe/<token>", operation_id="unsubscribe_contact",
    summary="Unsubscribe (one-click, RFC 8058; no bearer token)",
    description="As PATCH `unsubscribed: true`; idempotent. Answers `{\"status\": \"unsubscribed\"}`, or an HTML "
    "page to a client that accepts HTML.",
    tags=TAGS,
    responses={
        200: {
            "description": "The contact is unsubscribed",
            "content": {
                content_types.APPLICATION_JSON: {
                    "schema": {"type": "object", "properties": {"status": {"const": "unsubscribed"}},
                               "required": ["status"], "additionalProperties": False}
                },
                **HTML_CONTENT,
            },
        },
        **NOT_FOUND,
    },
)
def unsubscribe_contact(token: str) -> Response[Any]:
    verified = _verified(token)
    if verified is None:
        return _not_found()
    link, contact = verified
    if contact is not None:  # the address stays suppressed, whichever contact carries it later
        suppressions.suppress(link.team_id, contact.email, "unsubscribe", clock.now(), link.contact_id)
    if contact is not None and not contact.unsubscribed:
        def unsubscribed(current: Contact) -> dict[str, Any]:
            # Re-read on a concurrent write: a re-subscribe that won the race stands.
            return {"unsubscribed": True} if int(current.subscription_generation or 0) == link.generation else {}

        try:
            contacts.modify_contact(link.team_id, link.contact_id, unsubscribed, clock.now())
        except NotFound:
            contact = None  # deleted meanwhile: nothing will be sent anyway
    if _wants_html():
        return _done(contact)
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=UNSUBSCRIBED)
