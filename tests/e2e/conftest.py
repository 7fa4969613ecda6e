"""The end-to-end suite's local stack: `dripline local` started once per test session
(per xdist worker) on a free port, driven over real HTTP.

It runs as a subprocess: the stack configures its whole process (environment, the
clock, the handlers' cached settings), which must not leak into other tests' moto.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

# botocore would send StreamArn calls to an account-id endpoint moto does not route.
os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")

from dripline_local.client import LocalClient  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60


@dataclass
class RunningStack:
    info: dict
    process: subprocess.Popen
    log_path: Path
    lambda_log_path: Path

    @property
    def url(self) -> str:
        return self.info["api_url"]

    def client(self, team_id: str | None = None) -> LocalClient:
        client = LocalClient(self.url)
        return client.as_team(team_id) if team_id else client

    def aws(self, service: str):
        return boto3.client(
            service,
            endpoint_url=self.info["aws_endpoint_url"],
            region_name=self.info["region"],
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "PYTEST_"))}
    env["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def child_env() -> dict[str, str]:
    """The environment for a `dripline` subprocess (none of the test process's AWS setup)."""
    return subprocess_env()


@contextmanager
def running_stack(workdir: Path, *extra_args: str):
    """`dripline local` in a subprocess, on free ports, stopped (SIGINT) on exit."""
    ready = workdir / "ready.json"
    log_path = workdir / "stack.log"
    lambda_log = workdir / "lambda.log"
    command = [
        sys.executable, "-m", "dripline_local.cli", "local",
        "--port", "0", "--tick-seconds", "0",
        "--ready-file", str(ready), "--lambda-logs", str(lambda_log), *extra_args,
    ]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=subprocess_env())
    stack = RunningStack({}, process, log_path, lambda_log)
    deadline = time.monotonic() + STARTUP_SECONDS
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the local stack did not start:\n{stack.log_tail()}")
        time.sleep(0.05)
    stack.info = json.loads(ready.read_text())
    try:
        yield stack
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory) -> RunningStack:
    with running_stack(tmp_path_factory.mktemp("local-stack")) as stack:
        yield stack


@pytest.fixture
def stack_log(local_stack, request):
    """Shows the stack's log when a test fails."""
    yield
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(f"--- local stack log (tail) ---\n{local_stack.log_tail()}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
