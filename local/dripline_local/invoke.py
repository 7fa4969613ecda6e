"""`dripline invoke FUNCTION EVENT.json`: one handler of the template on one event, like
`sam local invoke` without Docker.

The handler runs in a child process (its own environment, like a Lambda sandbox) with the
template's environment for that function, pointed at an AWS emulator: a running local
stack's (`--endpoint`, the "AWS emulator" URL `dripline local` prints) or a fresh one made
here with the template's resources. By default it runs the source (functions/<name> with
layers/common on this Python); `--build-dir` runs `sam build`'s artifacts instead, under
`--python` (default: the python3.13 `make build` uses).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dripline_local import lambda_runtime
from dripline_local.template import TEMPLATE_PATH, function_properties, load_template

PROJECT = TEMPLATE_PATH.parents[1]
REGION = "us-east-1"
INIT_SECONDS = 10


@dataclass(frozen=True)
class Invocation:
    function: str
    response: Any
    logs: str
    failed: bool
    duration_ms: int


def find_function(name: str, template: dict[str, Any] | None = None) -> str:
    """A function's logical id from its id (ApiFunction), short name (api, Api) or code
    directory (functions/ses_events -> SesEventsFunction)."""
    template = template or load_template()
    functions = {lid: res for lid, res in template["Resources"].items() if res["Type"] == "AWS::Serverless::Function"}
    wanted = name.strip().lower().replace("-", "_")
    for logical_id in functions:
        code_dir = Path(str(function_properties(logical_id).get("CodeUri", ""))).name
        short = logical_id.removesuffix("Function")
        if wanted in (logical_id.lower(), short.lower(), code_dir.lower(), code_dir.replace("_", "").lower()):
            return logical_id
    raise LookupError(f"no function {name!r} in the template; one of: {', '.join(functions)}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("function", help="a function of the template: logical id (ApiFunction) or short name (api, processor, ses_events)")
    parser.add_argument("event", help="the event, a JSON file (see events/README.md), - for stdin")
    parser.add_argument("--endpoint", help="the AWS emulator of a running `dripline local` (its URL at start); default: a fresh one")
    parser.add_argument("--build-dir", type=Path, help="run sam build's artifacts from this directory (.aws-sam/build) instead of the source")
    parser.add_argument("--python", help="the Python to run built artifacts with (default: the python3.13 make build finds)")
    parser.add_argument("--api-url", default="http://127.0.0.1:3000", help="PUBLIC_API_URL for the handler (unsubscribe links)")


def run(args: argparse.Namespace, out: IO[str] = sys.stdout) -> int:
    try:
        logical_id = find_function(args.function)
        event_text = sys.stdin.read() if args.event == "-" else Path(args.event).read_text(encoding="utf-8")
        json.loads(event_text)
    except (LookupError, OSError, ValueError) as exc:
        print(f"dripline invoke: {exc}", file=sys.stderr)
        return 2
    try:
        result = invoke(logical_id, event_text, endpoint=args.endpoint, build_dir=args.build_dir, python=args.python, api_url=args.api_url)
    except (OSError, LookupError) as exc:
        print(f"dripline invoke: {exc}", file=sys.stderr)
        return 2
    print(f"--- {result.function} logs ---", file=out)
    print(result.logs.rstrip("\n") or "(none)", file=out)
    print(f"--- {result.function} response ({'error, ' if result.failed else ''}{result.duration_ms} ms) ---", file=out)
    print(json.dumps(result.response, indent=2), file=out)
    return 1 if result.failed else 0


def invoke(
    logical_id: str,
    event_text: str,
    *,
    endpoint: str | None = None,
    build_dir: Path | None = None,
    python: str | None = None,
    api_url: str = "http://127.0.0.1:3000",
) -> Invocation:
    """Run one function on one event (JSON text) in a child process; see the module doc."""
    from dripline_local.lambdas import ACCOUNT_ID, STACK_NAME, Resolver, one_function_environment
    from dripline_local.stack import with_local_aws

    props = function_properties(logical_id)
    with ExitStack() as cleanup:
        if endpoint is None:
            endpoint = cleanup.enter_context(fresh_emulator())
        resolver = Resolver(load_template(), region=REGION, endpoint_url=endpoint)
        env = with_local_aws(one_function_environment(resolver, logical_id), endpoint_url=endpoint, region=REGION, api_url=api_url)
        code_dir, layers, interpreter = _code(logical_id, props, build_dir, python)
        workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="dripline-invoke-")))
        (workdir / "event.json").write_text(event_text, encoding="utf-8")
        name = f"{STACK_NAME}-{logical_id}"
        command = [
            # -I: not this script's directory on sys.path (local/dripline_local/http.py would
            # shadow the standard library's http), no PYTHON* variables, no user site. Built
            # artifacts also get -S (no site-packages at all): everything beyond the standard
            # library comes from the build, as in Lambda.
            interpreter, "-I", *(["-S"] if build_dir else []), lambda_runtime.__file__,
            "--code-dir", str(code_dir), "--handler", str(props.get("Handler", "app.lambda_handler")),
            *[arg for layer in layers for arg in ("--layer", str(layer))],
            "--event", str(workdir / "event.json"), "--response-out", str(workdir / "response.json"),
            "--function-name", name, "--function-arn", f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}",
            "--timeout", str(props.get("Timeout", 3)), "--memory", str(props.get("MemorySize", 128)),
        ]
        child_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "PYTHONPATH"))}
        child_env.update(env, AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled", AWS_LAMBDA_FUNCTION_NAME=name)
        timeout = float(props.get("Timeout", 3))
        started = time.monotonic()
        try:
            # The function's Timeout, plus Lambda's 10 s init phase (process start, imports).
            done = subprocess.run(command, env=child_env, cwd=workdir, capture_output=True, text=True, timeout=timeout + INIT_SECONDS)
        except subprocess.TimeoutExpired as expired:
            logs = (expired.stdout or b"").decode("utf-8", "replace") if isinstance(expired.stdout, bytes) else (expired.stdout or "")
            timed_out = {"errorType": "Sandbox.Timedout", "errorMessage": f"Task timed out after {timeout:g} seconds"}
            return Invocation(logical_id, timed_out, logs, True, int((time.monotonic() - started) * 1000))
        duration_ms = int((time.monotonic() - started) * 1000)
        response_file = workdir / "response.json"
        if not response_file.exists():  # the runtime itself died (bad interpreter, import error in the runtime)
            raise OSError(f"the handler's process exited {done.returncode} without a response:\n{done.stderr.strip()}")
        response = json.loads(response_file.read_text(encoding="utf-8"))
    return Invocation(logical_id, response, done.stdout + done.stderr, done.returncode != 0, duration_ms)


def _code(logical_id: str, props: dict[str, Any], build_dir: Path | None, python: str | None) -> tuple[Path, list[Path], str]:
    """The function's code directory, its layers' python/ directories and the interpreter."""
    if build_dir is None:
        code_dir = (TEMPLATE_PATH.parent / str(props["CodeUri"])).resolve()
        return code_dir, [PROJECT / "layers" / "common"], python or sys.executable
    build_dir = build_dir.resolve()
    code_dir = build_dir / logical_id
    if not code_dir.is_dir():
        raise OSError(f"{code_dir} does not exist: run `make build` first")
    layers = [build_dir / str(layer.get("Ref")) / "python" for layer in props.get("Layers", []) if isinstance(layer, dict)]
    interpreter = python or default_python313()
    if interpreter is None:
        raise OSError("no python3.13 found for the built artifacts: pass --python (or PYTHON313=... to make)")
    return code_dir, layers, interpreter


def default_python313() -> str | None:
    """The python3.13 `make build` uses (make prints it)."""
    done = subprocess.run(["make", "--no-print-directory", "-s", "print-python313"], cwd=PROJECT, capture_output=True, text=True)
    found = done.stdout.strip()
    return found or None


@contextmanager
def fresh_emulator() -> Iterator[str]:
    """A moto server in this process with the template's resources; yields its URL."""
    from moto.server import ThreadedMotoServer

    from dripline_local.lambdas import Resolver, function_environment
    from dripline_local.logs import quiet_library_noise
    from dripline_local.stack import with_local_aws

    quiet_library_noise()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        env = function_environment(Resolver(load_template(), region=REGION, endpoint_url=endpoint))
        _create_resources(with_local_aws(env, endpoint_url=endpoint, region=REGION, api_url=""), endpoint)
        yield endpoint
    finally:
        server.stop()


def _create_resources(env: dict[str, str], endpoint: str) -> None:
    from dripline.settings import Settings
    from dripline_local.resources import create_resources

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # boto3 reads the credentials and region from the environment
    try:
        create_resources(Settings.from_env(env), endpoint_url=endpoint)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
