"""A webhook endpoint on 127.0.0.1 that checks signatures the way the README tells receivers to."""
from __future__ import annotations

import json
import re
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_verifier() -> Callable[..., bool]:
    """`verify_dripline_signature` exactly as the README prints it (so the docs stay true)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    (source,) = [b for b in blocks if "def verify_dripline_signature" in b]
    namespace: dict[str, Any] = {}
    exec(compile(source, str(README), "exec"), namespace)  # noqa: S102 - our own README
    return namespace["verify_dripline_signature"]


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

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.secrets: list[str] = []
        self.scheme = "https" if tls else "http"
        self.deliveries: list[Delivery] = []
        self.answers: deque[tuple[int, float]] = deque()
        self._verify = readme_verifier()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                header = self.headers.get("Dripline-Signature") or ""
                verified = any(receiver._verify(secret, header, body) for secret in receiver.secrets)
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
                    pass  # the client gave up waiting (a timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

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
