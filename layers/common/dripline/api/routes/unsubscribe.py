"""The unsubscribe link carried by every email (RFC 8058 one-click). No token: the
signed link itself is the credential; a forged or altered one answers 404.

GET shows a page with a confirm button (link scanners and previews only GET, so GET
never unsubscribes); POST unsubscribes, exactly as PATCH `unsubscribed: true` would,
and is what mail clients send for one-click (`List-Unsubscribe=One-Click`).
"""
from __future__ import annotations

import html

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from dripline import clock, runtime, unsubscribe
from dripline.api.routes import errors
from dripline.errors import NotFound
from dripline.storage import contacts

router = Router()

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 4em auto">
<h1>{title}</h1>{body}
</body></html>
"""


def _verified(token: str) -> tuple[str, str]:
    identity = unsubscribe.verify(runtime.settings().unsubscribe_secret, token)
    if identity is None:
        raise NotFound("unsubscribe link not found")
    return identity


def _page(title: str, body: str) -> Response[str]:
    return Response(status_code=200, content_type=content_types.TEXT_HTML, body=PAGE.format(title=title, body=body))


@router.get(
    "/unsubscribe/<token>",
    summary="Unsubscribe page with a confirm button (no token)",
    tags=["unsubscribe"],
    responses={200: {"description": "An HTML page that POSTs to the same URL"}, **errors(404)},
)
def confirm_page(token: str) -> Response[str]:
    _verified(token)
    action = html.escape(f"/unsubscribe/{token}", quote=True)
    return _page(
        "Unsubscribe",
        f'<p>Stop receiving these emails?</p><form method="post" action="{action}">'
        '<button type="submit">Unsubscribe</button></form>',
    )


@router.post(
    "/unsubscribe/<token>",
    summary="Unsubscribe (one-click, RFC 8058; no token)",
    description="As PATCH `unsubscribed: true`. Answers `{\"status\": \"unsubscribed\"}`, or an HTML page to a browser.",
    tags=["unsubscribe"],
    responses={200: {"description": "The contact is unsubscribed (idempotent)"}, **errors(404)},
)
def unsubscribe_contact(token: str) -> Response[dict[str, str] | str]:
    team_id, contact_id = _verified(token)
    current = contacts.find_contact(team_id, contact_id)  # deleted: nothing will be sent anyway
    if current is not None and not current.unsubscribed:
        try:
            contacts.modify_contact(team_id, contact_id, lambda _current: {"unsubscribed": True}, clock.now())
        except NotFound:
            pass  # deleted meanwhile
    if "text/html" in (router.current_event.headers.get("accept") or ""):
        return _page("Unsubscribed", "<p>You will not receive these emails any more.</p>")
    return Response(
        status_code=200, content_type=content_types.APPLICATION_JSON, body={"status": "unsubscribed"}
    )
