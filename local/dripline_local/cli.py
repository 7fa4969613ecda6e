"""`dripline local` (the local stack) and `dripline demo` (a scripted tour)."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0-65535)")
    return port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dripline", description="Dripline: timed contact pipelines on AWS serverless.")
    commands = parser.add_subparsers(dest="command", required=True)

    local = commands.add_parser("local", help="run the whole system on this machine (state in memory)")
    local.add_argument("--host", default="127.0.0.1", help="address to serve the API on (default 127.0.0.1)")
    local.add_argument("--port", type=_port, default=3000, help="port of the API (default 3000; 0 picks a free one)")
    local.add_argument(
        "--tick-seconds",
        type=float,
        default=60,
        help="real seconds between processor ticks (default 60, like the rate(1 minute) rule); "
        "0 disables them and stops the clock: it then moves only via POST /_local/clock",
    )
    local.add_argument("--seed-demo", action="store_true", help='create team "demo" with a Welcome pipeline and print a token and curl lines')
    local.add_argument(
        "--lambda-logs",
        metavar="PATH",
        help="where the handlers' JSON logs and metrics go: a file (appended to; default: this stack's own, "
        "dripline-local-<pid>-lambda.log in the temp directory), - for stdout, off",
    )
    local.add_argument("--quiet", action="store_true", help="no per-request/batch/tick lines")
    local.add_argument(
        "--parameter",
        action="append",
        default=[],
        type=_parameter,
        metavar="NAME=VALUE",
        help="override a template parameter, like sam deploy --parameter-overrides "
        "(e.g. RunsPerInvocation=50 makes the processor start workers above 50 due runs)",
    )
    local.add_argument("--ready-file", help=argparse.SUPPRESS)  # tests: JSON with the stack's URLs once it serves

    demo = commands.add_parser("demo", help="a scripted run on an embedded local stack (< 1 minute)")
    demo.add_argument("--contacts", type=int, default=25)
    demo.add_argument("--days", type=float, default=4)

    from dripline_local import chaos, dashboard, invoke, replay, simulate

    invoke.add_arguments(commands.add_parser("invoke", help="run one handler of the template on one event (sam local invoke without Docker)"))
    chaos.add_arguments(commands.add_parser("chaos", help="the real handlers under seeded faults, then invariants (exit 1 on a violation)"))
    replay.add_arguments(commands.add_parser("replay-dlq", help="re-drive the enrollment and SES-events dead-letter queues"))
    simulate.add_arguments(commands.add_parser(
        "simulate", help="a pipeline file's whole timeline for a sample contact, as a table (the engine on a virtual clock; sends nothing)"
    ))
    dashboard.add_arguments(commands.add_parser(
        "stats", help="a team's pipelines side by side, funnels and step lateness (what GET /_local/dashboard shows)"))

    args = parser.parse_args(argv)
    if args.command == "invoke":
        return invoke.run(args)
    if args.command == "chaos":
        return chaos.run_from_args(args)
    if args.command == "replay-dlq":
        return replay.run_from_args(args)
    if args.command == "simulate":
        return simulate.run_from_args(args)
    if args.command == "stats":
        return dashboard.run_from_args(args)
    if args.command == "demo":
        from dripline_local.demo import run_demo

        try:
            return run_demo(contacts=args.contacts, days=args.days)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
    return run_local(args)


def _parameter(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    from dripline_local.template import load_template

    if name not in load_template().get("Parameters", {}):
        raise argparse.ArgumentTypeError(f"{name} is not a parameter of infra/template.yaml")
    return name, value


def run_local(args: argparse.Namespace) -> int:
    from dripline_local.stack import LocalStack, lambda_output_file

    from dripline_local.logs import default_lambda_log_path

    lambda_logs = args.lambda_logs or default_lambda_log_path()
    stack = LocalStack(
        host=args.host,
        port=args.port,
        tick_seconds=args.tick_seconds,
        lambda_output=lambda_output_file(lambda_logs),
        route_stdout=True,
        quiet=args.quiet,
        parameters=dict(args.parameter),
    )
    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if stopping.is_set():  # a second Ctrl-C: stop now
            os._exit(130)
        stopping.set()

    # Installed explicitly: a shell's background job would otherwise ignore SIGINT.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start()
    except OSError as exc:
        print(f"dripline local: could not start: {exc}", file=sys.stderr)
        return 1
    try:
        info = stack.info()
        ticks = f"a tick every {args.tick_seconds:g} s" if args.tick_seconds > 0 else "no automatic ticks, clock stopped"
        logs = {"-": "stdout", "off": "off"}.get(lambda_logs, lambda_logs)
        print(
            f"""Dripline local stack
  API           {info.api_url}
  AWS emulator  {info.aws_endpoint_url}  (moto: DynamoDB, Streams, SES, SQS; any AWS CLI with --endpoint-url)
  clock         {stack.clock.now().isoformat(timespec='seconds')} virtual ({ticks})
  Lambda logs   {logs}
State lives in memory: it is gone when this process stops. Ctrl-C stops.""",
            flush=True,
        )
        if args.seed_demo:
            from dripline_local.seed import instructions, seed_demo

            try:
                token, pipeline = seed_demo(info.api_url)
                print(instructions(info.api_url, token, pipeline), flush=True)
            except Exception as exc:  # the stack stays useful without the seed
                print(f"\n(could not seed the demo: {exc})", flush=True)
        if args.ready_file:
            partial = Path(args.ready_file + ".partial")
            partial.write_text(json.dumps(info.as_dict()))
            partial.replace(args.ready_file)
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping…", file=sys.stderr, flush=True)
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
