"""The local API's socket side (werkzeug) over real sockets: chunked bodies, malformed
framing, body limits, HEAD, and a port clash."""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dripline_local.http import LocalHttpApp, LocalHttpServer, PortInUse, TokenAuthority


class EchoApi:
    """Answers every request with the body it received."""

    def __call__(self, event):
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps({"body": event.get("body")})}


@pytest.fixture
def server():
    lines: list[str] = []
    server = LocalHttpServer("127.0.0.1", 0, lines.append)
    server.serve(LocalHttpApp(api=EchoApi(), auth=TokenAuthority(issuer="http://local"), control=None, routes=None))
    server.lines = lines
    yield server
    server.stop()


def exchange(server: LocalHttpServer, raw: bytes) -> bytes:
    """Send raw bytes; read one response (headers, then Content-Length bytes)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(raw)
        received = b""
        while b"\r\n\r\n" not in received and (chunk := conn.recv(65536)):
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1)) if b"HEAD " not in raw[:5] else 0
        while len(body) < length and (chunk := conn.recv(65536)):
            body += chunk
    return head + b"\r\n\r\n" + body


def status_and_body(response: bytes) -> tuple[int, bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def public_post(body_and_headers: bytes) -> bytes:
    return b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + body_and_headers


def test_a_chunked_body_reaches_the_handler_whole(server):
    status, body = status_and_body(exchange(server, public_post(b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")))
    assert status == 200 and json.loads(body) == {"body": "abcdefg"}


@pytest.mark.parametrize("framing", [b"zz\r\nabc\r\n0\r\n\r\n", b"3\r\nabcXX0\r\n\r\n", b"-5\r\nabc\r\n0\r\n\r\n"])
def test_a_malformed_chunked_body_is_400_and_the_server_keeps_serving(server, framing):
    status, body = status_and_body(exchange(server, public_post(b"Transfer-Encoding: chunked\r\n\r\n" + framing)))
    assert status == 400 and json.loads(body)["message"].startswith("Transfer-Encoding: malformed chunked body")
    assert not any("Traceback" in line for line in server.lines)
    assert status_and_body(exchange(server, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"))[0] == 200


def test_a_chunked_body_over_the_limit_is_413(server):
    chunk = b"x" * 65536
    framing = (b"10000\r\n" + chunk + b"\r\n") * 5 + b"0\r\n\r\n"
    status, body = status_and_body(exchange(server, public_post(b"Transfer-Encoding: chunked\r\n\r\n" + framing)))
    assert status == 413 and "256 KiB" in json.loads(body)["message"]


@pytest.mark.parametrize("length", [b"abc", b"-1"])
def test_a_malformed_content_length_is_400(server, length):
    assert status_and_body(exchange(server, public_post(b"Content-Length: " + length + b"\r\n\r\n")))[0] == 400


def test_head_has_the_headers_but_no_body(server):
    response = exchange(server, b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n")
    status, body = status_and_body(response)
    assert status == 200 and body == b"" and b"Content-Length: " in response


def test_a_port_clash_names_the_port_and_suggests_port_0(server):
    with pytest.raises(PortInUse) as error:
        LocalHttpServer("127.0.0.1", server.port, lambda line: None)
    assert str(server.port) in str(error.value) and "--port 0" in str(error.value)


def test_dripline_local_on_a_taken_port_says_which_and_suggests_port_0(child_env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "dripline_local.cli", "local", "--port", str(port), "--lambda-logs", "off"],
            cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, env=child_env, timeout=120,
        )
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr and "--port 0" in done.stderr
    assert "Traceback" not in done.stderr
