"""What the SES emulator accepted, as readable messages (GET /_local/emails).

The moto server runs in this process, so its SES backend is read directly. SES v2
Raw content is parsed as MIME, once per message (the backend's list only grows, so the
parsed views are cached in its order). moto records neither when a message was sent nor
its SES v2 email tags, so the local stack keeps both as SES accepts each message: the
virtual clock's time, and the tags (team, pipeline, run, step) that tell two teams' mail
to one address apart.
"""
from __future__ import annotations

import email
import email.policy
import functools
import json
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from typing import Any

from moto.ses.models import Message, RawMessage, SESBackend, TemplateMessage, ses_backends
from moto.sesv2.responses import SESV2Response

_SENT_AT: dict[str, datetime] = {}
_TAGS: dict[str, dict[str, str]] = {}
_now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)  # noqa: E731
_installed = threading.Lock()


def record_sends(now: Callable[[], datetime]) -> None:
    """Record `now()` and the SES v2 email tags of every message SES accepts from here on
    (idempotent)."""
    global _now
    _now = now
    with _installed:
        for name in ("send_raw_email", "send_email", "send_templated_email"):
            method = getattr(SESBackend, name)
            if getattr(method, "_dripline_stamped", False):
                continue
            setattr(SESBackend, name, _stamped(method))
        if not getattr(SESV2Response.send_email, "_dripline_stamped", False):
            SESV2Response.send_email = _tagged(SESV2Response.send_email)


def _stamped(method: Any) -> Any:
    @functools.wraps(method)
    def send(self: Any, *args: Any, **kwargs: Any) -> Any:
        message = method(self, *args, **kwargs)
        _SENT_AT[message.id] = _now()
        return message

    send._dripline_stamped = True  # type: ignore[attr-defined]
    return send


def _tagged(method: Any) -> Any:
    @functools.wraps(method)
    def send_email(self: SESV2Response) -> str:
        answer = method(self)
        tags = json.loads(self.body).get("EmailTags") or []
        _TAGS[json.loads(answer)["MessageId"]] = {str(tag.get("Name")): str(tag.get("Value")) for tag in tags}
        return answer

    send_email._dripline_stamped = True  # type: ignore[attr-defined]
    return send_email


def sent_count(account_id: str, region: str) -> int:
    return len(ses_backends[account_id][region].sent_messages)


def list_emails(account_id: str, region: str, *, to: str | None = None, team: str | None = None, run: str | None = None) -> list[dict[str, Any]]:
    """Every message SES accepted, oldest first; `to` keeps those addressed to it, `team`
    and `run` those with that email tag."""
    items = [_with_send_record(view) for view in _parsed(ses_backends[account_id][region].sent_messages)]
    if to:
        wanted = to.strip().lower()
        items = [item for item in items if wanted in (address.lower() for address in item["to"])]
    for name, value in (("team", team), ("run", run)):
        if value:
            items = [item for item in items if item["tags"].get(name) == value]
    return items


class _Parsed:
    """The parsed views of one backend's sent_messages, in its order."""

    def __init__(self, messages: list[Any]) -> None:
        self.messages = messages
        self.views: list[dict[str, Any]] = []


_cache: dict[int, _Parsed] = {}
_cache_lock = threading.Lock()


def _parsed(messages: list[Any]) -> list[dict[str, Any]]:
    with _cache_lock:
        cached = _cache.get(id(messages))
        if cached is None or cached.messages is not messages:  # a new backend (moto reset)
            cached = _cache[id(messages)] = _Parsed(messages)
        count = len(messages)
        cached.views += [_view(m) for m in messages[len(cached.views) : count]]
        return [view for view in cached.views if view is not None]


def _with_send_record(view: dict[str, Any]) -> dict[str, Any]:
    """A copy of a cached view with what was recorded as SES accepted it (read now: a
    message can be listed a moment before its tags are recorded)."""
    item = {key: value for key, value in view.items() if key != "date_header"}
    item["sent_at"] = _sent_at(view["message_id"], view.get("date_header"))
    item["tags"] = dict(_TAGS.get(view["message_id"], {}))
    return item


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
        "date_header": str(mime["Date"]) if mime["Date"] else None,
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
