"""A webhook endpoint on 127.0.0.1 that checks signatures the way the README tells receivers to.

The local demo points a webhook step at it, and the tests use it as the receiving end.
`verify_dripline_signature` is the README's snippet, character for character (a test
holds the two together).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def verify_dripline_signature(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """True if `body` (the raw request bytes) was signed with `secret` less than `tolerance` seconds ago."""
    fields = [part.strip().split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [value for name, value in fields if name == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit() or abs(time.time() - int(stamps[0])) > tolerance:
        return False
    expected = hmac.new(secret.encode(), stamps[0].encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, value) for name, value in fields if name == "v1")


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    """Answers with the queued (status, delay) pairs, then 200; 401 when the signature is wrong."""

    def __init__(self, secrets: list[str] | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.secrets: list[str] = list(secrets or [])
        self.scheme = "https" if tls else "http"
        self.deliveries: list[Delivery] = []
        self.answers: deque[tuple[int, float]] = deque()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                header = self.headers.get("Dripline-Signature") or ""
                verified = any(verify_dripline_signature(secret, header, body) for secret in receiver.secrets)
                receiver.deliveries.append(Delivery(self.path, dict(self.headers.items()), body, verified))
                status, delay = receiver.answers.popleft() if receiver.answers else (200, 0.0)
                time.sleep(delay)
                if not verified:
                    status = 401
                try:
                    self.send_response(status)
                    if 300 <= status < 400:
                        self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender stopped waiting (it timed out)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def __enter__(self) -> "Receiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
