"""Seeded fault injection where a request reaches AWS.

Faults enter at the request boundary, so they pass through botocore (its retries, its
error parsing) and pynamodb (its exception wrapping) exactly as in production:

    injector = FaultInjector(seed=7)
    injector.add(Rule("dynamodb", "GetItem", THROTTLE, times=4))        # the next 4 GetItems
    injector.add(Rule("sesv2", "SendEmail", LOSE_CONNECTION, probability=0.1))
    with injector.installed():      # in-process moto (mock_aws): wraps moto's request hook
        ...                         # (SDK retry backoff is not slept, only added up)
    injector.attach(client.meta.events)  # or: a client that talks HTTP (a moto server, AWS)
    injector.injected               # Counter of (service, operation, fault) injected

Faults (what the caller sees / what happened):
  THROTTLE         answered before AWS saw it: 400 ProvisionedThroughputExceeded (DynamoDB),
                   429 TooManyRequests (SES v2), 400 ThrottlingException (others)
  ERROR_500        answered before AWS saw it: 500 InternalServerError
  REJECT           answered before AWS saw it: 400 with the rule's `code` (AccessDenied ...)
  CONNECT_ERROR    never sent: EndpointConnectionError
  LOSE_CONNECTION  it took effect, then the connection dropped: ConnectionClosedError
  LOSE_TIMEOUT     it took effect, then the read timed out: ReadTimeoutError
  LOSE_500         it took effect, then a 500 came back
  KILL_BEFORE      the process dies before sending: `Kill` (a BaseException, so no
  KILL_AFTER       `except Exception` stops it) / dies after the effect. From then on every
                   request of any thread dies too, until `revive()`: the whole invocation
                   stops at its next AWS call, as a killed Lambda does.

Service names are botocore's event names: dynamodb, dynamodb-streams, sesv2, sqs ... A
rule's `when` sees the call (service, operation, JSON body) to pick e.g. only the claim.
"""
from __future__ import annotations

import contextlib
import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError
from botocore.httpsession import URLLib3Session

THROTTLE = "throttle"
ERROR_500 = "error_500"
REJECT = "reject"
CONNECT_ERROR = "connect_error"
LOSE_CONNECTION = "lose_connection"
LOSE_TIMEOUT = "lose_timeout"
LOSE_500 = "lose_500"
KILL_BEFORE = "kill_before"
KILL_AFTER = "kill_after"

BEFORE_EFFECT = frozenset({THROTTLE, ERROR_500, REJECT, CONNECT_ERROR, KILL_BEFORE})
AFTER_EFFECT = frozenset({LOSE_CONNECTION, LOSE_TIMEOUT, LOSE_500, KILL_AFTER})
KILLS = frozenset({KILL_BEFORE, KILL_AFTER})


class Kill(BaseException):
    """The process died here (a simulated crash: not an Exception, so nothing handles it)."""


@dataclass(frozen=True)
class Call:
    service: str  # botocore event name of the service: dynamodb, sesv2 ...
    operation: str  # GetItem, SendEmail ...
    params: dict[str, Any]  # the JSON body ({} for other protocols)


@dataclass
class Rule:
    service: str  # "*" for any
    operation: str  # "*" for any
    fault: str
    probability: float = 1.0
    times: int | None = None  # fire at most this many times (None: no limit)
    when: Callable[[Call], bool] | None = None
    code: str = "ValidationException"  # the error code of REJECT

    def matches(self, call: Call) -> bool:
        return (
            self.service in ("*", call.service)
            and self.operation in ("*", call.operation)
            and (self.times is None or self.times > 0)
            and (self.when is None or self.when(call))
        )


@dataclass
class FaultInjector:
    seed: int = 0
    rules: list[Rule] = field(default_factory=list)
    injected: Counter = field(default_factory=Counter)
    # Called with (call, parsed JSON answer) for each request of `watch` the emulator
    # accepted (2xx), whether or not its answer then reached the caller: ground truth.
    on_effect: Callable[[Call, dict[str, Any]], None] | None = None
    watch: frozenset = frozenset({("sesv2", "SendEmail")})
    # Seconds of SDK retry backoff skipped while installed (real time is not virtual time).
    backoff_skipped: float = 0.0

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()
        self._dead = threading.Event()
        self._http: URLLib3Session | None = None

    # --- configuration -----------------------------------------------------------------

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    @property
    def dead(self) -> bool:
        return self._dead.is_set()

    def revive(self) -> None:
        """A new process (the next invocation) starts: requests go through again."""
        self._dead.clear()

    # --- where requests pass ------------------------------------------------------------

    @contextlib.contextmanager
    def installed(self, *, sleep_backoff: bool = False) -> Iterator["FaultInjector"]:
        """Wrap in-process moto's request hook (every client of `mock_aws`, whenever made).

        botocore sleeps between its retries (up to 20 s in standard mode); against an
        in-process emulator that is wall time for nothing, so unless `sleep_backoff` the
        sleep is only added to `backoff_skipped`. The retries themselves still happen.
        """
        import botocore.endpoint
        from moto.core.botocore_stubber import BotocoreStubber

        original = BotocoreStubber.__call__
        if getattr(original, "_dripline_faults", False):
            raise RuntimeError("another FaultInjector is installed")
        injector = self

        def call(stubber: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
            return injector.handle(event_name, request, lambda: original(stubber, event_name, request, **kwargs))

        call._dripline_faults = True  # type: ignore[attr-defined]
        BotocoreStubber.__call__ = call  # type: ignore[method-assign]
        real_time = botocore.endpoint.time
        if not sleep_backoff:
            botocore.endpoint.time = _BackoffCounter(self)  # type: ignore[assignment]
        try:
            yield self
        finally:
            BotocoreStubber.__call__ = original  # type: ignore[method-assign]
            botocore.endpoint.time = real_time

    def attach(self, events: Any) -> None:
        """Hook a client (or botocore session) that talks HTTP: `attach(client.meta.events)`.

        Registered first, so it runs before any other before-send handler. A request
        without a fault goes on as usual; one whose answer is to be lost is sent here.
        """

        def before_send(event_name: str, request: Any, **kwargs: Any) -> Any:
            return self.handle(event_name, request, lambda: self._send_http(request), passthrough=True)

        events.register_first("before-send", before_send)

    # --- the decision ---------------------------------------------------------------------

    def handle(self, event_name: str, request: Any, send: Callable[[], Any], *, passthrough: bool = False) -> Any:
        """Answer one request: fault it, or `send` it (None lets botocore send it itself)."""
        if self._dead.is_set():
            raise Kill("process already dead")
        call = _call_of(event_name, request)
        rule = self._pick(call)
        fault = rule.fault if rule is not None else None
        watched = self.on_effect is not None and (call.service, call.operation) in self.watch
        if fault is None and (passthrough or not watched):
            return None if passthrough else send()
        if fault is not None:
            self.injected[(call.service, call.operation, fault)] += 1
        if fault in BEFORE_EFFECT:
            return self._before(rule, call, request)
        response = send()
        if response is None and not passthrough:
            raise RuntimeError(f"{call.service}.{call.operation} reached no emulator: its effect cannot be applied")
        if watched:
            self._observe(call, response)
        return response if fault is None else self._after(fault, request)

    def _observe(self, call: Call, response: Any) -> None:
        assert self.on_effect is not None
        if response is None or not 200 <= response.status_code < 300:
            return
        try:
            answer = json.loads(response.content or b"{}")
        except ValueError:
            answer = {}
        self.on_effect(call, answer)

    def _pick(self, call: Call) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(call) and self._random.random() < rule.probability:
                    if rule.times is not None:
                        rule.times -= 1
                    return rule
        return None

    def _before(self, rule: Rule, call: Call, request: Any) -> Any:
        fault = rule.fault
        if fault == KILL_BEFORE:
            self._dead.set()
            raise Kill(f"killed before {call.service}.{call.operation}")
        if fault == CONNECT_ERROR:
            raise EndpointConnectionError(endpoint_url=request.url)
        if fault == THROTTLE:
            status, code = THROTTLES.get(call.service, (400, "ThrottlingException"))
            return error_response(request, status, code)
        if fault == REJECT:
            return error_response(request, 400, rule.code)
        return error_response(request, 500, "InternalServerError")

    def _after(self, fault: str, request: Any) -> Any:
        if fault == KILL_AFTER:
            self._dead.set()
            raise Kill("killed after the request took effect")
        if fault == LOSE_CONNECTION:
            raise ConnectionClosedError(endpoint_url=request.url)
        if fault == LOSE_TIMEOUT:
            raise ReadTimeoutError(endpoint_url=request.url)
        return error_response(request, 500, "InternalServerError")

    def _send_http(self, request: Any) -> Any:
        with self._lock:
            if self._http is None:
                self._http = URLLib3Session()
        response = self._http.send(request)
        response.content  # read it all: the answer arrived, and is dropped
        return response


class _BackoffCounter:
    """Stands in for the `time` module of botocore.endpoint, which only sleeps with it."""

    def __init__(self, injector: FaultInjector) -> None:
        self._injector = injector

    def sleep(self, seconds: float) -> None:
        with self._injector._lock:
            self._injector.backoff_skipped += seconds

    def __getattr__(self, name: str) -> Any:
        import time

        return getattr(time, name)


THROTTLES = {
    "dynamodb": (400, "ProvisionedThroughputExceededException"),
    "sesv2": (429, "TooManyRequestsException"),
}


class _Body(BytesIO):
    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        chunk = self.read()
        while chunk:
            yield chunk
            chunk = self.read()


def error_response(request: Any, status: int, code: str) -> AWSResponse:
    """An AWS error answer botocore parses like a real one (JSON and REST-JSON protocols)."""
    body = json.dumps({"__type": code, "message": "injected by dripline_local.faults"}).encode()
    headers = {"x-amzn-ErrorType": code, "Content-Type": "application/x-amz-json-1.0", "Content-Length": str(len(body))}
    return AWSResponse(request.url, status, headers, _Body(body))


def _call_of(event_name: str, request: Any) -> Call:
    # before-send.<service>.<Operation>
    _, service, operation = (event_name.split(".", 2) + ["", ""])[:3]
    params: dict[str, Any] = {}
    body = getattr(request, "body", None)
    if isinstance(body, (bytes, str)) and body[:1] in (b"{", "{"):
        try:
            params = json.loads(body)
        except ValueError:
            params = {}
    return Call(service, operation, params)
