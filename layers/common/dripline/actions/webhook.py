"""webhook: POST a signed JSON event to an HTTPS endpoint of the team's choosing.

The custom action users add without shipping code. The step holds the URL
(`data.url`); its `message` is rendered as text (the same template language as emails)
and sent as the string field `message` of a fixed JSON envelope, so a contact's data can
never break the JSON or add fields to it.

Signed Stripe-style with the team's secret (dripline.storage.teams):
`Dripline-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, one
`v1` per valid secret (two during a rotation's grace period). `Idempotency-Key` is
`<run_id>:<step_number>`, the same on every delivery of that step.

Delivery is at least once: a timeout, a 5xx or 429, or a step reclaimed after its
processor died sends again with the same key and body (bar `attempt`). Receivers dedupe
on the key; that is what makes the action `idempotent`.

The URL is a request Dripline makes on the user's behalf, from inside AWS, so it is
vetted twice (SSRF): on save (https, a public host name or a public literal address),
and at send time after DNS resolution: every resolved address must be public, and the
connection goes to one of exactly those addresses (Host and TLS SNI still name the
host), so a DNS answer that changes between the check and the connect cannot reach an
internal address. Redirects are not followed. `Settings.webhook_allow_insecure_local`
(the local stack and tests only) also admits http and 127.0.0.1.
"""
from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import re
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pynamodb.exceptions import PynamoDBException

from dripline import templating
from dripline.actions import ActionContext, ActionError, register
from dripline.clock import iso
from dripline.domain import Step
from dripline.engine import ActionResult
from dripline.errors import ValidationFailed
from dripline.storage import teams

FIELD = "data.url"
MAX_URL = 2048
SIGNATURE_HEADER = "Dripline-Signature"
USER_AGENT = "Dripline-Webhook/1.0"
LOCAL_ADDRESS = ipaddress.ip_address("127.0.0.1")
# 64:ff9b::/96 (NAT64) embeds an IPv4 address in its last 32 bits.
NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_NAME_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Target:
    """A vetted URL, split into what a connection needs."""

    scheme: str
    host: str  # a DNS name (ASCII) or a literal address, without brackets
    port: int
    path: str  # path and query, never empty


# --- the URL policy (pure) -----------------------------------------------------------------------


def check_url(url: object, *, allow_insecure_local: bool) -> Target:
    """The Target of an acceptable webhook URL; ValidationFailed(data.url) for any other."""
    if not isinstance(url, str) or not url:
        raise ValidationFailed(FIELD, "webhook needs a URL (https://...)")
    if len(url) > MAX_URL or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise ValidationFailed(FIELD, f"must be a URL of at most {MAX_URL} characters without spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationFailed(FIELD, f"not a valid URL ({exc})") from exc
    schemes = ("https", "http") if allow_insecure_local else ("https",)
    if parts.scheme not in schemes:
        raise ValidationFailed(FIELD, "must be an https:// URL")
    if "@" in parts.netloc:
        raise ValidationFailed(FIELD, "must not carry a user name or password")
    host = parts.hostname or ""
    if not host:
        raise ValidationFailed(FIELD, "must name a host")
    literal = _literal_address(host)
    if literal is not None:
        reason = refusal(literal, allow_insecure_local=allow_insecure_local)
        if reason:
            raise ValidationFailed(FIELD, f"must not point at an internal address ({reason})")
        host = str(literal)
    else:
        host = _checked_name(host)
    if port == 0:
        raise ValidationFailed(FIELD, "port 0 is not a port")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if not path.isascii():
        raise ValidationFailed(FIELD, "percent-encode the path and query (ASCII only)")
    return Target(parts.scheme, host, port if port is not None else (443 if parts.scheme == "https" else 80), path)


def _literal_address(host: str) -> IPAddress | None:
    """The address a literal host denotes; also catches 2130706433, 0x7f.1, 0177.0.0.1 ...

    Browsers and many resolvers read a host whose last label is numeric as an IPv4
    address in any of the legacy forms: only the plain dotted form is accepted, so
    what is checked is what is connected to.
    """
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if not _NUMERIC_LABEL.match(labels[-1]):
        return None
    try:
        address = ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        raise ValidationFailed(FIELD, "is not a valid IPv4 address") from None
    raise ValidationFailed(FIELD, f"write the address in dotted-decimal form ({address}), not {host}")


def _checked_name(host: str) -> str:
    try:
        name = host.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise ValidationFailed(FIELD, "is not a valid host name") from exc
    labels = name.split(".")
    if len(name) > 253 or not all(_NAME_LABEL.match(label) for label in labels):
        raise ValidationFailed(FIELD, "is not a valid host name")
    if len(labels) < 2:
        # A single label is completed by the resolver's search domains: an internal name.
        raise ValidationFailed(FIELD, "must be a fully qualified host name")
    if labels[-1] == "localhost":
        raise ValidationFailed(FIELD, "must not point at an internal address (loopback)")
    return name


def refusal(address: IPAddress, *, allow_insecure_local: bool = False) -> str | None:
    """Why a webhook may not connect to `address` (None: it may)."""
    if allow_insecure_local and address == LOCAL_ADDRESS:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return refusal(embedded)
    for kind in ("unspecified", "loopback", "link_local", "multicast", "reserved", "private"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    if not address.is_global:
        return "non-public"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, Teredo, NAT64), if any."""
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    if address.teredo:
        return address.teredo[1]
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


# --- signing (pure) ------------------------------------------------------------------------------


def signature(secrets: Sequence[str], body: bytes, timestamp: int) -> str:
    """`t=<timestamp>,v1=<hex>[,v1=<hex>]`: HMAC-SHA256 of "<timestamp>.<body>" under each secret."""
    signed = str(timestamp).encode() + b"." + body
    macs = [hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest() for secret in secrets]
    return ",".join([f"t={timestamp}", *(f"v1={mac}" for mac in macs)])


# --- sending ---------------------------------------------------------------------------------------


def resolve(target: Target, *, allow_insecure_local: bool) -> list[str]:
    """The addresses to connect to: every one DNS gives must be allowed, or none is used.

    ActionError(retryable=True) when DNS fails (often transient); retryable=False when
    the name resolves to a refused address (retrying would not make it public).
    """
    try:
        answers = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ActionError(f"dns_failed: {exc}", retryable=True) from exc
    addresses = list(dict.fromkeys(answer[4][0] for answer in answers))
    if not addresses:
        raise ActionError("dns_failed: no address", retryable=True)
    for address in addresses:
        reason = refusal(ipaddress.ip_address(address), allow_insecure_local=allow_insecure_local)
        if reason:
            raise ActionError(f"refused_address: {target.host} resolves to an internal address ({reason})", retryable=False)
    return addresses


def _connect_any(addresses: Sequence[str], port: int, timeout: float) -> socket.socket:
    """A TCP connection to the first vetted address that answers: no name lookup here."""
    error: OSError = OSError("no address")
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect((address, port))
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to vetted addresses only; `host` still fills the Host header."""

    def __init__(self, host: str, port: int, addresses: Sequence[str], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses

    def connect(self) -> None:
        self.sock = _connect_any(self._addresses, self.port, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """Connects to vetted addresses only; the certificate is checked against `host` (SNI too)."""

    def __init__(self, host: str, port: int, addresses: Sequence[str], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._addresses = addresses

    def connect(self) -> None:
        sock = _connect_any(self._addresses, self.port, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(target: Target, addresses: Sequence[str], body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST `body` and return the status; ActionError(retryable) when no answer came."""
    kind = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = kind(target.host, target.port, addresses, timeout)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(4096)  # drain a little, never a large body
        return response.status
    except TimeoutError as exc:
        raise ActionError(f"timeout: no answer within {timeout:g}s", retryable=True) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise ActionError(f"connection_failed: {type(exc).__name__}: {exc}", retryable=True) from exc
    finally:
        connection.close()


def outcome(status: int, idempotency_key: str) -> ActionResult:
    """2xx succeeded; 429 and 5xx retried with the engine's backoff; anything else fails for good."""
    if 200 <= status < 300:
        return ActionResult.succeeded(status=status, idempotency_key=idempotency_key)
    if status == 429 or status >= 500:
        raise ActionError(f"http_{status}", retryable=True)
    if 300 <= status < 400:
        raise ActionError(f"http_{status}: redirects are not followed", retryable=False)
    raise ActionError(f"http_{status}", retryable=False)


class Webhook:
    name = "webhook"
    # Every delivery of a (run, step) carries one Idempotency-Key: receivers dedupe on it.
    idempotent = True

    def validate(self, step: Step) -> None:
        from dripline import runtime  # the API's settings; imported late (runtime imports the registry)

        check_url(step.data.get("url"), allow_insecure_local=runtime.settings().webhook_allow_insecure_local)
        templating.check(step.message, "message")

    def execute(self, ctx: ActionContext) -> ActionResult:
        insecure = ctx.settings.webhook_allow_insecure_local
        target = _target(ctx)
        run, key = ctx.run, idempotency_key(ctx)
        body = json.dumps(payload(ctx), separators=(",", ":")).encode()
        try:
            keys = teams.webhook_secret(run.team_id, ctx.now)
        except PynamoDBException as exc:  # nothing was sent: always safe to try again
            raise ActionError(f"secret_unavailable: {exc}", retryable=True) from exc
        addresses = resolve(target, allow_insecure_local=insecure)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": key,
            # Wall-clock time even under the local stack's virtual clock: receivers
            # compare it with their own clock to refuse replays.
            SIGNATURE_HEADER: signature(keys.valid_secrets(ctx.now), body, int(time.time())),
        }
        status = post(target, addresses, body, headers, ctx.settings.webhook_timeout_seconds)
        return outcome(status, key)

    def preview(self, ctx: ActionContext) -> dict[str, Any]:
        """The URL and the JSON event `execute` would POST now (unsigned: signing needs the team's secret)."""
        _target(ctx)
        return {"url": ctx.step.data.get("url"), "payload": payload(ctx)}


def _target(ctx: ActionContext) -> Target:
    try:
        return check_url(ctx.step.data.get("url"), allow_insecure_local=ctx.settings.webhook_allow_insecure_local)
    except ValidationFailed as exc:  # saved under other rules, or edited in the table
        raise ActionError(f"refused_url: {exc.message}", retryable=False) from exc


def idempotency_key(ctx: ActionContext) -> str:
    return f"{ctx.run.run_id}:{ctx.step.step_number}"


def payload(ctx: ActionContext) -> dict[str, Any]:
    """The event a webhook step sends: a fixed envelope, the rendered message as one string field."""
    run = ctx.run
    return {
        "id": idempotency_key(ctx),
        "type": "pipeline.step",
        "team_id": run.team_id,
        "pipeline_id": run.pipeline_id,
        "pipeline_version": run.pipeline_version,
        "run_id": run.run_id,
        "step_number": ctx.step.step_number,
        "attempt": run.attempts + 1,
        "pipelineable_type": run.pipelineable_type,
        "pipelineable_id": run.pipelineable_id,
        "scheduled_at": iso(run.scheduled_at),
        "message": templating.render_text(ctx.step.message, ctx.template_context()),
    }


register(Webhook())
