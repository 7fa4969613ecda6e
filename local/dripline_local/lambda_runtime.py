"""Run one Lambda handler on one event, the way the Lambda runtime would: the function's
code directory and its layers importable, a context whose remaining time counts down from
the function's Timeout. Standard library only, so it also runs as a script under the
python3.13 of `sam build`'s artifacts:

    python3.13 lambda_runtime.py --code-dir .aws-sam/build/ApiFunction \
        --layer .aws-sam/build/CommonLayer/python --event events/api_health.json --response-out out.json

The handler's own output (its logs) goes to stdout as in Lambda; the response is written as
JSON to --response-out (an error as {"errorType", "errorMessage", "stackTrace"}).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class LambdaContext:
    """What Lambda hands a handler (the attributes Powertools reads)."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    timeout_seconds: float
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    identity: Any = None
    client_context: Any = None
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = time.strftime("%Y/%m/%d") + "/[$LATEST]" + uuid.uuid4().hex

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load_handler(code_dir: Path, handler: str, module_name: str) -> Any:
    """The handler `file.function` of a code directory, loaded by file path (every
    function's file is app.py, so each gets its own module name)."""
    module_file, _, attribute = handler.rpartition(".")
    path = code_dir / (module_file.replace(".", "/") + ".py")
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    # As in Lambda, the function's own directory is importable while it loads.
    sys.path.insert(0, str(code_dir))
    try:
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    finally:
        sys.path.remove(str(code_dir))
    return getattr(module, attribute)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code-dir", type=Path, required=True)
    parser.add_argument("--handler", default="app.lambda_handler")
    parser.add_argument("--layer", type=Path, action="append", default=[], help="a layer's python/ directory (repeatable)")
    parser.add_argument("--event", type=Path, required=True)
    parser.add_argument("--response-out", type=Path, required=True)
    parser.add_argument("--function-name", default="function")
    parser.add_argument("--function-arn", default="arn:aws:lambda:us-east-1:123456789012:function:function")
    parser.add_argument("--timeout", type=float, default=3)
    parser.add_argument("--memory", type=int, default=128)
    args = parser.parse_args(argv)

    sys.path[:0] = [str(layer) for layer in args.layer]  # /opt/python in Lambda
    event = json.loads(args.event.read_text(encoding="utf-8"))
    context = LambdaContext(args.function_name, args.memory, args.function_arn, args.timeout)
    try:
        handler = load_handler(args.code_dir.resolve(), args.handler, "lambda_function_" + args.function_name.replace("-", "_").lower())
        response, failed = handler(event, context), False
    except Exception as exc:  # reported like Lambda's runtime does
        response, failed = {"errorType": type(exc).__name__, "errorMessage": str(exc), "stackTrace": traceback.format_exc().splitlines()}, True
    sys.stdout.flush()
    args.response_out.write_text(json.dumps(response, default=str), encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
