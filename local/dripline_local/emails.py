"""What the SES emulator accepted, as readable messages (GET /_local/emails).

The moto server runs in this process, so its SES backend is read directly. SES v2
Raw content is parsed as MIME. moto does not record when a message was sent, so the
local stack stamps each one with the virtual clock's time as SES accepts it.
"""
from __future__ import annotations

import email
import email.policy
import functools
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from typing import Any

from moto.ses.models import Message, RawMessage, SESBackend, TemplateMessage, ses_backends

_SENT_AT: dict[str, datetime] = {}
_now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)  # noqa: E731
_installed = threading.Lock()


def stamp_send_times(now: Callable[[], datetime]) -> None:
    """Record `now()` for every message SES accepts from here on (idempotent)."""
    global _now
    _now = now
    with _installed:
        for name in ("send_raw_email", "send_email", "send_templated_email"):
            method = getattr(SESBackend, name)
            if getattr(method, "_dripline_stamped", False):
                continue
            setattr(SESBackend, name, _stamped(method))


def _stamped(method: Any) -> Any:
    @functools.wraps(method)
    def send(self: Any, *args: Any, **kwargs: Any) -> Any:
        message = method(self, *args, **kwargs)
        _SENT_AT[message.id] = _now()
        return message

    send._dripline_stamped = True  # type: ignore[attr-defined]
    return send


def sent_count(account_id: str, region: str) -> int:
    return len(ses_backends[account_id][region].sent_messages)


def list_emails(account_id: str, region: str, *, to: str | None = None) -> list[dict[str, Any]]:
    """Every message SES accepted, oldest first; `to` keeps those addressed to it."""
    messages = list(ses_backends[account_id][region].sent_messages)
    items = [view for view in (_view(m) for m in messages) if view is not None]
    if to:
        wanted = to.strip().lower()
        items = [item for item in items if wanted in (address.lower() for address in item["to"])]
    return items


def _view(message: Any) -> dict[str, Any] | None:
    if isinstance(message, RawMessage):
        return _raw_view(message)
    if isinstance(message, Message):
        body = message.body or ""
        html = body if body.lstrip().startswith("<") else None
        return {
            "message_id": message.id,
            "from": message.source,
            "to": _addresses(_destination_list(message.destinations)),
            "subject": message.subject,
            "text": None if html else body,
            "html": html,
            "headers": {},
            "sent_at": _sent_at(message.id, None),
        }
    if isinstance(message, TemplateMessage):
        return {
            "message_id": message.id,
            "from": message.source,
            "to": _addresses(_destination_list(message.destinations)),
            "subject": None,
            "text": f"(template {message.template}) {message.template_data}",
            "html": None,
            "headers": {},
            "sent_at": _sent_at(message.id, None),
        }
    return None


def _raw_view(message: RawMessage) -> dict[str, Any]:
    raw = message.raw_data if isinstance(message.raw_data, str) else message.raw_data.decode("utf-8", "replace")
    mime = email.message_from_string(raw, policy=email.policy.default)
    headers: dict[str, str] = {}
    for name, value in mime.items():
        headers.setdefault(name, str(value))
    recipients = _addresses([str(v) for v in mime.get_all("To", [])]) or _addresses(list(message.destinations or []))
    return {
        "message_id": message.id,
        "from": str(mime["From"]) if mime["From"] else message.source,
        "to": recipients,
        "subject": str(mime["Subject"]) if mime["Subject"] is not None else None,
        "text": _part(mime, "plain"),
        "html": _part(mime, "html"),
        "headers": headers,
        "sent_at": _sent_at(message.id, mime["Date"]),
    }


def _part(mime: Any, subtype: str) -> str | None:
    part = mime.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return None
    return part.get_content()


def _addresses(values: list[str]) -> list[str]:
    seen: list[str] = []
    for _, address in getaddresses(values):
        if address and address.lower() not in (s.lower() for s in seen):
            seen.append(address)
    return seen


def _destination_list(destinations: Any) -> list[str]:
    if isinstance(destinations, dict):
        return [a for key in ("ToAddresses", "CcAddresses", "BccAddresses") for a in destinations.get(key, [])]
    return [parseaddr(d)[1] or d for d in destinations or []]


def _sent_at(message_id: str, date_header: Any) -> str | None:
    when = _SENT_AT.get(message_id)
    if when is None and date_header:
        try:
            when = parsedate_to_datetime(str(date_header))
        except (TypeError, ValueError):
            when = None
    if when is None:
        return None
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
