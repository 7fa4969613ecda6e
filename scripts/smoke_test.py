"""Smoke test: one contact through a deployed Dripline, end to end.

    .venv/bin/python scripts/smoke_test.py --stack-name dripline --region us-east-1

It reads the stack's outputs (ApiUrl, UserPoolId, UserPoolClientId), creates a temporary
Cognito user of a fresh team `smoke-<random>` (admin-create-user with custom:team_id, a
permanent random password) and signs it in (SRP, as an app would) for an ID token. Then,
as that team: an automatic pipeline with one email step, a contact (enrolled through the
contacts stream), a wait for the processor's tick to run the step, and the pipeline's
stats: the email sent and, from SES's events, delivered. Finally it deletes what it made
(contact, pipeline, user). The recipient defaults to SES's mailbox simulator, which accepts
mail even while the account is in the SES sandbox.

Needs AWS credentials allowed to describe the stack and to create, sign in and delete
users of its pool. Exit code: 0 passed, 1 a check failed, 2 bad arguments or setup.

The same flow runs against the local stack (`make run`) with a token from
/_local/token, moving the virtual clock instead of waiting for ticks:

    .venv/bin/python scripts/smoke_test.py --api-url http://127.0.0.1:3000 --local
"""
from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "local"))
from dripline_local.client import ApiError, LocalClient  # noqa: E402 - a stdlib JSON client

SIMULATOR = "success@simulator.amazonses.com"
OUTPUTS = ("ApiUrl", "UserPoolId", "UserPoolClientId")


class SmokeFailed(RuntimeError):
    """A check did not hold."""


class SetupError(RuntimeError):
    """The test could not start (stack, outputs, credentials, sign-in)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="One contact through a deployed Dripline (see the module doc).")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--stack-name", help="the deployed stack (its outputs give the API and the user pool)")
    target.add_argument("--api-url", help="an API base URL instead of a stack (with --id-token, or --local)")
    parser.add_argument("--region", help="the stack's region (default: your AWS configuration's)")
    parser.add_argument("--id-token", help="sign in as yourself instead of a temporary user (a Cognito ID token)")
    parser.add_argument("--local", action="store_true", help="the API is a local stack: token from /_local/token, clock moved by /_local/clock")
    parser.add_argument("--to", default=SIMULATOR, help=f"the contact's address (default {SIMULATOR}; a real one must be verified in the SES sandbox)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the email step, and again for its delivery (default 300)")
    parser.add_argument("--poll", type=float, default=10, help="seconds between checks (default 10)")
    parser.add_argument("--no-delivery-check", action="store_true", help="stop at 'sent' (SES events not wired, or a local stack)")
    parser.add_argument("--keep", action="store_true", help="leave the pipeline, contact and user in place")
    args = parser.parse_args(argv)
    if args.api_url and not (args.id_token or args.local):
        parser.error("--api-url needs --id-token (a deployed API) or --local (a local stack)")
    if args.local and args.stack_name:
        parser.error("--local is for --api-url, not --stack-name")
    if args.timeout <= 0 or args.poll <= 0:
        parser.error("--timeout and --poll must be positive")
    return args


def stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    """The stack's outputs by key; SetupError when the stack or an output is missing."""
    try:
        (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except cloudformation.exceptions.ClientError as exc:
        raise SetupError(f"stack {stack_name}: {exc}") from exc
    if not stack["StackStatus"].endswith("_COMPLETE") or "ROLLBACK" in stack["StackStatus"]:
        raise SetupError(f"stack {stack_name} is {stack['StackStatus']}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    missing = [key for key in OUTPUTS if key not in outputs]
    if missing:
        raise SetupError(f"stack {stack_name} has no output {', '.join(missing)} (is it Dripline's template?)")
    return outputs


@contextmanager
def temporary_user(cognito: Any, pool_id: str, client_id: str, team_id: str, *, keep: bool = False) -> Iterator[str]:
    """A user of `team_id` made for this run; yields its ID token (SRP sign-in)."""
    from pycognito.aws_srp import AWSSRP  # the SRP math of a maintained library

    username = f"{team_id}@smoke.dripline.invalid"
    password = "Sm0ke-" + secrets.token_urlsafe(24)
    cognito.admin_create_user(
        UserPoolId=pool_id,
        Username=username,
        MessageAction="SUPPRESS",
        UserAttributes=[{"Name": "email", "Value": username}, {"Name": "email_verified", "Value": "true"}, {"Name": "custom:team_id", "Value": team_id}],
    )
    try:
        cognito.admin_set_user_password(UserPoolId=pool_id, Username=username, Password=password, Permanent=True)
        tokens = AWSSRP(username=username, password=password, pool_id=pool_id, client_id=client_id, client=cognito).authenticate_user()
        yield tokens["AuthenticationResult"]["IdToken"]
    finally:
        if not keep:
            cognito.admin_delete_user(UserPoolId=pool_id, Username=username)


def run_smoke(
    api: LocalClient,
    *,
    to: str,
    timeout: float,
    poll: float,
    expect_delivery: bool,
    advance: Callable[[float], None] | None = None,
    keep: bool = False,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The flow, as the team `api` is signed in as. Returns the pipeline's stats."""
    started = time.monotonic()

    def step(text: str) -> None:
        say(f"[{time.monotonic() - started:6.1f} s] {text}")

    def wait_for(what: str, check: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            found = check()
            if found:
                return found
            if time.monotonic() > deadline:
                raise SmokeFailed(f"{what}: not within {timeout:g} s")
            if advance is not None:
                advance(60)  # the local stack's clock: one processor tick further
            else:
                time.sleep(poll)

    if api.call("GET", "/health") != {"status": "ok"}:
        raise SmokeFailed("GET /health did not answer {\"status\": \"ok\"}")
    step("GET /health ok")
    pipeline = api.call("POST", "/pipelines", {
        "name": "Smoke test", "automatic": True,
        "steps": [{"step_number": 1, "action_type": "send_email", "delay_seconds": 0,
                   "message": "Hello {{ contact.first_name }}, this is Dripline's smoke test.", "data": {"subject": "Dripline smoke test"}}],
    }, expect=201)
    pipeline_id = pipeline["pipeline_id"]
    step(f"pipeline {pipeline_id} created (automatic, one email step)")
    contact_id = None
    try:
        contact = api.call("POST", "/contacts", {"email": to, "first_name": "Smoke"}, expect=201)
        contact_id = contact["contact_id"]
        step(f"contact {contact_id} created ({to})")

        def finished_run() -> dict[str, Any] | None:
            runs = api.call("GET", f"/contacts/{contact_id}/runs")["items"]
            done = [r for r in runs if r["pipeline_id"] == pipeline_id and r["status"] in ("completed", "failed", "cancelled", "exited")]
            return done[0] if done else None

        run = wait_for("the run to finish its email step", finished_run)
        outcomes = [(h["step_number"], h["outcome"]) for h in run.get("history", [])]
        if run["status"] != "completed" or outcomes != [(1, "succeeded")]:
            raise SmokeFailed(f"run {run['run_id']} ended {run['status']} with steps {outcomes}: {run.get('last_error')}")
        step(f"run {run['run_id']} completed: email step succeeded")

        stats = api.call("GET", f"/pipelines/{pipeline_id}/stats")
        if stats["emails"]["sent"] != 1 or stats["runs"]["completed"] != 1:
            raise SmokeFailed(f"stats do not show one completed run and one email sent: {stats}")
        step("stats: 1 run completed, 1 email sent")
        if expect_delivery:
            def delivered() -> dict[str, Any] | None:
                current = api.call("GET", f"/pipelines/{pipeline_id}/stats")
                return current if current["emails"]["delivered"] >= 1 else None

            stats = wait_for("SES's delivery event in the stats", delivered)
            step("stats: 1 email delivered (SES event)")
        return stats
    finally:
        if not keep:
            if contact_id:
                api.call("DELETE", f"/contacts/{contact_id}", expect=(200, 204, 404))
            api.call("DELETE", f"/pipelines/{pipeline_id}?cancel_runs=true", expect=(200, 204, 404))
            step("cleaned up the contact and the pipeline")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    team_id = f"smoke-{secrets.token_hex(4)}"
    try:
        with _signed_in(args, team_id) as api:
            advance = (lambda seconds: api.call("POST", "/_local/clock", {"advance_seconds": seconds})) if args.local else None
            print(f"Dripline smoke test against {api.base_url} as team {team_id}")
            run_smoke(
                api, to=args.to, timeout=args.timeout, poll=args.poll, advance=advance, keep=args.keep,
                expect_delivery=not (args.no_delivery_check or args.local),
            )
    except SetupError as exc:
        print(f"smoke test could not start: {exc}", file=sys.stderr)
        return 2
    except (SmokeFailed, ApiError) as exc:
        print(f"SMOKE TEST FAILED: {exc}", file=sys.stderr)
        return 1
    print("SMOKE TEST PASSED")
    return 0


@contextmanager
def _signed_in(args: argparse.Namespace, team_id: str) -> Iterator[LocalClient]:
    if args.local:
        local = LocalClient(args.api_url)
        yield local.as_team(team_id)
        return
    if args.api_url:
        yield LocalClient(args.api_url, args.id_token)
        return
    import boto3
    import botocore.exceptions

    with ExitStack() as cleanup:
        try:
            session = boto3.session.Session(region_name=args.region)
            outputs = stack_outputs(session.client("cloudformation"), args.stack_name)
            token = args.id_token or cleanup.enter_context(
                temporary_user(session.client("cognito-idp"), outputs["UserPoolId"], outputs["UserPoolClientId"], team_id, keep=args.keep)
            )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise SetupError(str(exc)) from exc
        yield LocalClient(outputs["ApiUrl"], token)


if __name__ == "__main__":
    raise SystemExit(main())
