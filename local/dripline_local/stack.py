"""The whole system in one process: emulator, resources, API, stream poller, scheduler.

    with LocalStack(port=0, tick_seconds=0) as stack:
        ...  # HTTP at stack.api_url; stack.advance(86400); stack.drain()

Everything lives in memory and is gone when the stack stops. The stack configures
the process (environment variables, the `dripline.clock` source, stdout routing), so
use one per process.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

import boto3

# SES Send events handed to ses_events at once after a tick (EventBridge invokes concurrently).
SEND_EVENT_INVOCATIONS = 4
HANDLER_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
}


def with_local_aws(env: dict[str, str], *, endpoint_url: str, region: str, api_url: str) -> dict[str, str]:
    """A handler environment pointed at the emulator (any credentials do)."""
    return {
        **env,
        **HANDLER_CREDENTIALS,
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "PUBLIC_API_URL": api_url,
        # Webhook steps may target http://127.0.0.1 here (never in AWS).
        "WEBHOOK_ALLOW_INSECURE_LOCAL": "true",
    }


@dataclass(frozen=True)
class StackInfo:
    api_url: str
    aws_endpoint_url: str
    region: str
    contacts_table: str
    runs_table: str
    contacts_stream_arn: str
    failure_queue_url: str
    deals_table: str = ""
    deals_stream_arn: str = ""

    def as_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


class LocalStack:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        tick_seconds: float = 60,
        start_time: datetime | None = None,
        lambda_output: IO[str] | None = None,
        route_stdout: bool = False,
        log_stream: IO[str] | None = None,
        quiet: bool = False,
        region: str = "us-east-1",
        parameters: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        # Template parameter overrides (sam deploy --parameter-overrides).
        self.parameters = dict(parameters or {})
        self.port = port
        self.tick_seconds = tick_seconds
        self.start_time = start_time
        self.lambda_output = lambda_output
        self.route_stdout = route_stdout
        self.region = region
        from dripline_local.logs import human_logger

        self.logger = human_logger(log_stream, quiet=quiet)
        self._started = False
        self._previous_clock: Any = None
        self._send_events_lock = threading.Lock()
        self._send_events_published = 0  # emails of the emulator whose Send event went out

    def log(self, message: str) -> None:
        self.logger.info(message)

    # --- lifecycle --------------------------------------------------------------------
    def start(self) -> "LocalStack":
        from dripline_local.logs import quiet_library_noise, route_lambda_output

        os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
        # Powertools reads its settings when dripline.observability is first imported:
        # give it the template's before anything of Dripline's is.
        from dripline_local.lambdas import Resolver, function_environment
        from dripline_local.template import load_template

        template_env = function_environment(Resolver(load_template(), region=self.region, endpoint_url="http://localhost", parameters=self.parameters))
        os.environ.update({k: v for k, v in template_env.items() if k.startswith("POWERTOOLS_")})
        quiet_library_noise()
        if self.route_stdout:
            # Before any handler (and its Powertools logger) is imported.
            route_lambda_output(self.lambda_output)

        from moto.server import ThreadedMotoServer

        from dripline import clock
        from dripline.settings import Settings
        from dripline.storage import models
        from dripline_local import emails
        from dripline_local.http import LocalHttpApp, LocalHttpServer, TokenAuthority, routes_from_template
        from dripline_local.lambda_service import LambdaService
        from dripline_local.lambdas import ACCOUNT_ID, Resolver, function_environment, load_functions
        from dripline_local.moto_indexes import index_queries
        from dripline_local.moto_lock import serialise_dynamodb
        from dripline_local.moto_tuning import cache_backend_lookup
        from dripline_local.resources import create_resources
        from dripline.storage.runs import next_due_at
        from dripline_local.scheduler import Scheduler, VirtualClock
        from dripline_local.streams import EventSourceConfig, StreamPoller, sqs_destination
        from dripline_local.template import load_template, stream_event_sources

        serialise_dynamodb()
        index_queries()
        cache_backend_lookup()
        self.clock = VirtualClock(self.start_time, running=self.tick_seconds > 0)
        emails.record_sends(self.clock.now)

        # Bind the API's socket first: its URL goes into the handlers' environment, and a
        # taken port stops the start before anything else runs.
        self._http = LocalHttpServer(self.host, self.port, self.logger.info)
        shown_host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        self.api_url = f"http://{shown_host}:{self._http.port}"

        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto.start()
        moto_host, moto_port = self._moto.get_host_and_port()
        self.aws_endpoint_url = f"http://{moto_host}:{moto_port}"

        # The environment every handler reads once: the template's, resolved locally.
        env = function_environment(Resolver(load_template(), region=self.region, endpoint_url=self.aws_endpoint_url, parameters=self.parameters))
        os.environ.update(with_local_aws(env, endpoint_url=self.aws_endpoint_url, region=self.region, api_url=self.api_url))
        os.environ.pop("DYNAMODB_ENDPOINT", None)
        self.settings = Settings.from_env()

        self.resources = create_resources(self.settings, endpoint_url=self.aws_endpoint_url)
        self._previous_clock = clock.install(self.clock)
        models.bind(self.settings)

        self.functions = load_functions(self.region)
        session = boto3.session.Session(region_name=self.region)
        self._streams_client = session.client("dynamodbstreams", endpoint_url=self.aws_endpoint_url)
        self._sqs = session.client("sqs", endpoint_url=self.aws_endpoint_url)
        # Handlers that start other functions (the processor its workers) call Lambda's
        # Invoke API through boto3: it is served here.
        self.lambda_service = LambdaService.from_template(
            self.functions,
            resolver=Resolver(load_template(), region=self.region, endpoint_url=self.aws_endpoint_url, parameters=self.parameters),
            sqs_client=self._sqs,
            log=self.logger.info,
        ).start()
        os.environ["AWS_ENDPOINT_URL_LAMBDA"] = self.lambda_service.url

        enrollment = self.functions["enrollment"]
        # One poller per event source mapping of the template (the contacts and deals streams).
        self.pollers = [
            StreamPoller(
                stream_arn=self.resources.stream_arns[table],
                client=self._streams_client,
                handler=enrollment.invoke,
                config=EventSourceConfig.from_template(source),
                on_failure=sqs_destination(self._sqs, self.resources.failure_queue_url),
                region=self.region,
                function_arn=enrollment.arn,
                log=self.logger.info,
                release_iterator=self._release_iterator,
            )
            for table, source in stream_event_sources().items()
        ]
        processor = self.functions["processor"]
        self.scheduler = Scheduler(
            clock=self.clock,
            invoke=self._tick_and_workers,
            drain=self.drain,
            next_due=lambda: next_due_at(self.settings.due_shards),
            tick_seconds=self.tick_seconds,
            rule_arn=f"arn:aws:events:{self.region}:{ACCOUNT_ID}:rule/{processor.name}-EveryMinute",
            region=self.region,
            account=ACCOUNT_ID,
            log=self.logger.info,
            emails_sent=lambda: emails.sent_count(ACCOUNT_ID, self.region),
        )
        self.auth = TokenAuthority(issuer=self.api_url)
        app = LocalHttpApp(
            api=self.functions["api"].invoke,
            auth=self.auth,
            control=_Control(self),
            domain=shown_host,
            log=self.logger.warning,
            routes=routes_from_template(load_template(), self.functions["api"].logical_id),
        )
        self._http.serve(app)
        for poller in self.pollers:
            poller.start()
        self.scheduler.start()
        self._started = True
        return self

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        from dripline import clock

        self.scheduler.stop()
        for poller in self.pollers:
            poller.stop()
        self.lambda_service.stop()
        self._http.stop()
        self._moto.stop()
        if self._previous_clock is not None:
            clock.install(self._previous_clock)

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- operations -------------------------------------------------------------------
    def _tick_and_workers(self, event: dict[str, Any]) -> Any:
        """The processor's invocation, then the workers it started: a tick is over when
        they are (so fast-forwarding gives the results of real minutes)."""
        result = self.functions["processor"].invoke(event)
        self.lambda_service.wait_idle()
        self._publish_send_events()
        return result

    def _publish_send_events(self) -> None:
        """SES's `Send` event of each email accepted since the last tick, handed to the
        ses_events handler as EventBridge would (moto publishes none): the contacts'
        delivery logs (GET /contacts/{id}/messages) fill in, as in AWS. Only Send: the
        emulator delivers nothing, so there are no delivery, open or click events."""
        from dripline import clock
        from dripline_local.emails import list_emails
        from dripline_local.lambdas import ACCOUNT_ID
        from dripline_local.ses_send_events import accepted_event

        with self._send_events_lock:
            accepted = list_emails(ACCOUNT_ID, self.region)
            fresh, self._send_events_published = accepted[self._send_events_published :], len(accepted)
        def deliver(email: dict[str, Any]) -> None:
            sent_at = email["sent_at"] or clock.iso(clock.now())
            event = accepted_event(email["message_id"], sent_at, email["tags"], email["from"], email["to"])
            try:
                self.functions["ses_events"].invoke(event)
            except Exception as exc:  # noqa: BLE001 - EventBridge would retry, then the DLQ; here: say so
                self.log(f"ses_events failed on the Send event of {email['message_id']}: {type(exc).__name__}: {exc}")

        # Not Dripline's (no `run` tag: someone's own SES call against the emulator): skipped.
        # Concurrent invocations, as EventBridge makes them; the tick ends when all are done.
        ours = [email for email in fresh if "run" in email["tags"]]
        if ours:
            with ThreadPoolExecutor(max_workers=SEND_EVENT_INVOCATIONS) as pool:
                list(pool.map(deliver, ours))

    def drain(self) -> int:
        """Hand every pending stream record (of every stream) to enrollment; how many there were."""
        return sum(poller.drain() for poller in self.pollers)

    def advance(self, seconds: float) -> datetime:
        return self.scheduler.advance(seconds)

    def tick(self) -> Any:
        return self.scheduler.tick()

    def emails(self, to: str | None = None, team: str | None = None, run: str | None = None) -> list[dict[str, Any]]:
        from dripline_local.emails import list_emails
        from dripline_local.lambdas import ACCOUNT_ID

        return list_emails(ACCOUNT_ID, self.region, to=to, team=team, run=run)

    def info(self) -> StackInfo:
        return StackInfo(
            api_url=self.api_url,
            aws_endpoint_url=self.aws_endpoint_url,
            region=self.region,
            contacts_table=self.settings.contacts_table,
            runs_table=self.settings.runs_table,
            contacts_stream_arn=self.resources.contacts_stream_arn,
            deals_table=self.settings.deals_table,
            deals_stream_arn=self.resources.deals_stream_arn,
            failure_queue_url=self.resources.failure_queue_url,
        )

    def _release_iterator(self, iterator: str) -> None:
        from moto.dynamodbstreams.models import dynamodbstreams_backends

        from dripline_local.lambdas import ACCOUNT_ID

        dynamodbstreams_backends[ACCOUNT_ID][self.region].shard_iterators.pop(iterator, None)


class _Control:
    """The /_local routes' view of the stack."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack

    def now(self) -> datetime:
        return self.stack.clock.now()

    def fast_forward(self, seconds: float) -> dict[str, Any]:
        return self.stack.scheduler.fast_forward(seconds).as_dict()

    def tick(self) -> Any:
        return self.stack.tick()

    def emails(self, to: str | None, team: str | None = None, run: str | None = None) -> list[dict[str, Any]]:
        return self.stack.emails(to, team, run)


def lambda_output_file(path: str | None) -> IO[str] | None:
    """`-` is stdout, `off`/None is nowhere, anything else a file (appended to: never
    truncated, even when another stack was pointed at it)."""
    if path in (None, "", "off"):
        return None
    if path == "-":
        return sys.__stdout__
    return open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives as long as the stack


logging.getLogger("botocore.credentials").setLevel(logging.WARNING)
