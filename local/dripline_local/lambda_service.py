"""Lambda's Invoke API for the local functions, over HTTP like AWS's.

A handler that starts another function (the processor starting its workers) calls
`lambda:Invoke` through boto3 as it does in AWS; the local stack points boto3's Lambda
endpoint (AWS_ENDPOINT_URL_LAMBDA) here. `InvocationType=Event` answers 202 at once and
runs the function on a thread, with the function's EventInvokeConfig from the template:
`MaximumRetryAttempts` retries, then the on-failure destination (an SQS queue) gets
Lambda's invocation record. `RequestResponse` runs it and answers with its result.

`wait_idle()` returns once every asynchronous invocation has ended: the scheduler
waits for a tick's workers before the next tick, so fast-forwarding is deterministic.
"""
from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from dripline_local.lambdas import LocalFunction, Resolver
from dripline_local.streams import one_line, sqs_destination
from dripline_local.template import function_properties

INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")
DEFAULT_ASYNC_RETRIES = 2  # Lambda's default for asynchronous invocations


class LambdaService:
    @classmethod
    def from_template(
        cls, functions: Mapping[str, LocalFunction], *, resolver: Resolver, sqs_client: Any, log: Callable[[str], None]
    ) -> "LambdaService":
        """The service for the template's functions, with each one's EventInvokeConfig."""
        on_failure: dict[str, Callable[[dict[str, Any]], None]] = {}
        retries: dict[str, int] = {}
        for function in functions.values():
            config = function_properties(function.logical_id).get("EventInvokeConfig") or {}
            if "MaximumRetryAttempts" in config:
                retries[function.name] = int(config["MaximumRetryAttempts"])
            destination = (config.get("DestinationConfig") or {}).get("OnFailure") or {}
            if destination.get("Type") == "SQS":
                queue_id = destination["Destination"]["Fn::GetAtt"].split(".")[0]
                on_failure[function.name] = sqs_destination(sqs_client, resolver.ref(queue_id))
        return cls(functions, on_failure=on_failure, retries=retries, log=log)

    def __init__(
        self,
        functions: Mapping[str, LocalFunction],
        *,
        on_failure: Mapping[str, Callable[[dict[str, Any]], None]] | None = None,
        retries: Mapping[str, int] | None = None,
        log: Callable[[str], None] | None = None,
        max_concurrency: int = 8,
        host: str = "127.0.0.1",
    ) -> None:
        # By function name and by ARN, as Invoke accepts either.
        self._functions = {key: f for f in functions.values() for key in (f.name, f.arn)}
        self._on_failure = dict(on_failure or {})
        self._retries = dict(retries or {})
        self.log = log or (lambda message: None)
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="lambda-async")
        self._pending = 0
        self._idle = threading.Condition()
        service = self

        class Handler(_InvokeHandler):
            owner = service

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "LambdaService":
        self._thread = threading.Thread(target=self._server.serve_forever, name="lambda-service", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._pool.shutdown(wait=True)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no asynchronous invocation is queued or running."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    # --- invocations ---------------------------------------------------------------------
    def function(self, name: str) -> LocalFunction | None:
        return self._functions.get(unquote(name).split(":$")[0])

    def invoke_async(self, function: LocalFunction, event: dict[str, Any]) -> str:
        request_id = str(uuid.uuid4())
        with self._idle:
            self._pending += 1
        self._pool.submit(self._run_async, function, event, request_id)
        return request_id

    def _run_async(self, function: LocalFunction, event: dict[str, Any], request_id: str) -> None:
        try:
            attempts = 1 + self._retries.get(function.name, DEFAULT_ASYNC_RETRIES)
            for attempt in range(1, attempts + 1):
                try:
                    result = function.invoke(event)
                    self.log(f"{function.logical_id} → {_describe(result)}")
                    return
                except Exception as exc:  # noqa: BLE001 - reported as Lambda reports it
                    self.log(f"{function.logical_id} → error {one_line(exc)} (attempt {attempt} of {attempts})")
                    error = exc
            send = self._on_failure.get(function.name)
            if send is not None:
                send(_failure_record(function, event, request_id, error, attempts - 1))
        finally:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()


def _failure_record(function: LocalFunction, event: dict[str, Any], request_id: str, error: BaseException, retries: int) -> dict:
    """What Lambda sends an asynchronous invocation's on-failure destination."""
    return {
        "version": "1.0",
        "timestamp": datetime.now(timezone.utc).isoformat(),
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"{function.arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": retries + 1,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": str(error), "errorType": type(error).__name__},
    }


def _describe(result: Any) -> str:
    if isinstance(result, dict):
        shown = {k: v for k, v in result.items() if isinstance(v, (int, str)) and v and not k.endswith("_ms")}
        return ", ".join(f"{k}={v}" for k, v in shown.items()) or "nothing due"
    return "done"


class _InvokeHandler(BaseHTTPRequestHandler):
    owner: LambdaService
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stack logs invocations itself
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        match = INVOKE_PATH.match(self.path.split("?", 1)[0])
        function = self.owner.function(match.group("name")) if match else None
        if function is None:
            return self._error(404, "ResourceNotFoundException", f"Function not found: {self.path}")
        try:
            event = json.loads(body or b"{}")
        except ValueError:
            return self._error(400, "InvalidRequestContentException", "Could not parse request body into json")
        kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if kind == "DryRun":
            return self._send(204, b"")
        if kind == "Event":
            request_id = self.owner.invoke_async(function, event)
            return self._send(202, b"", {"x-amzn-RequestId": request_id})
        try:
            result = function.invoke(event)
        except Exception as exc:  # noqa: BLE001 - a function error is a 200 with a marker header
            payload = {"errorMessage": str(exc), "errorType": type(exc).__name__}
            return self._send(200, json.dumps(payload).encode(), {"X-Amz-Function-Error": "Unhandled"})
        return self._send(200, json.dumps(result, default=str).encode(), {"X-Amz-Executed-Version": "$LATEST"})

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, json.dumps({"Type": "User", "message": message}).encode(), {"x-amzn-ErrorType": code})

    def _send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", "Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
