"""The chaos run: the real handlers on emulated AWS, under seeded faults, then invariants.

    dripline chaos --seed 1 --contacts 2000 --fault-rate 0.1      (make chaos SEED=... ...)

Drives enrollment (on the contacts table's stream), processor ticks and ses_events (on
SES Send events) in-process on moto, and injects at the request boundary
(dripline_local.faults): errors before the call and effects whose answer is lost on
DynamoDB and SES (`fault_rate` of the calls), process kills after the claim, after SES
accepted and after the finish (the lease must expire), overlapping ticks, clock jumps
backwards and forwards, duplicated / shuffled / stale stream batches, and contact
mutations (unsubscribe, pipeline assignment, delete). Then it drains (the clock jumps
past leases and backoffs until no run is active) and checks:

    duplicates   no (run, step) accepted by SES twice
    lost         every email step recorded succeeded was accepted by SES, and no
                 `delivery_unknown` lacks an accepted email (each one is explained)
    stuck        every run terminal after the drain
    after_cancel no email accepted after its run was cancelled
    task_dups    at most one task per (run, step)
    enroll_dups  at most one run per enrollment cause, one active run per pipeline
    stats        the pipeline's counters equal the runs (drift reported; then closed by
                 stats.reconcile where it exists)

One summary line; the exit status is non-zero on any violation.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from dripline_local.replay import lambda_record

START = datetime(2026, 3, 2, 9, 0, 0, tzinfo=timezone.utc)
TEAM = "chaos"
WELCOME = [
    {"step_number": 1, "action_type": "send_email", "delay_seconds": 0,
     "message": "Hi {{ contact.first_name }}", "data": {"subject": "Welcome"}},
    {"step_number": 2, "action_type": "create_task", "delay_seconds": 3600,
     "message": "Call {{ contact.email }}", "data": {"title": "Intro call"}},
    {"step_number": 3, "action_type": "send_email", "delay_seconds": 86400,
     "message": "Still there?", "data": {"subject": "Checking in"}},
]
NURTURE = [
    {"step_number": 1, "action_type": "send_email", "delay_seconds": 600,
     "message": "A tip", "data": {"subject": "Tip"}},
]
BATCH_SIZE = 10  # records per stream invocation
CONTACTS_PER_ROUND = 40
MAX_DRAIN_ROUNDS = 2000
DRAIN_TICK_SECONDS = 300
SCHEDULED_EVENT = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


@dataclass
class Accepted:
    run_id: str
    step: int
    message_id: str
    at: datetime


@dataclass
class ChaosReport:
    seed: int
    contacts: int
    fault_rate: float
    faults: int = 0
    kills: int = 0
    runs: int = 0
    emails: int = 0
    recovered: int = 0
    delivery_unknown: int = 0
    failed_runs: int = 0
    duplicates: int = 0
    lost: int = 0
    stuck: int = 0
    after_cancel: int = 0
    task_dups: int = 0
    enroll_dups: int = 0
    stats_drift: int = 0
    stats_mismatches: int = 0
    reconciled: bool | None = None  # None: no stats.reconcile on this branch
    seconds: float = 0.0
    details: list[str] = field(default_factory=list)

    @property
    def violations(self) -> int:
        stats = self.stats_mismatches if self.reconciled is not None else 0
        return self.duplicates + self.lost + self.stuck + self.after_cancel + self.task_dups + self.enroll_dups + stats

    def line(self) -> str:
        reconcile = {None: "unavailable", True: "ran"}.get(self.reconciled, "ran")
        return (
            f"chaos seed={self.seed} contacts={self.contacts} fault_rate={self.fault_rate:g} runs={self.runs} "
            f"emails={self.emails} faults={self.faults} kills={self.kills} recovered={self.recovered} "
            f"delivery_unknown={self.delivery_unknown} failed_runs={self.failed_runs} duplicates={self.duplicates} "
            f"lost={self.lost} stuck={self.stuck} after_cancel={self.after_cancel} task_dups={self.task_dups} "
            f"enroll_dups={self.enroll_dups} stats_drift={self.stats_drift} stats_mismatches={self.stats_mismatches} "
            f"(reconcile {reconcile}) seconds={self.seconds:.1f} -> {'OK' if not self.violations else 'VIOLATIONS'}"
        )


def _prepare_environment() -> None:
    os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    for name, value in {
        "AWS_ACCESS_KEY_ID": "chaos",
        "AWS_SECRET_ACCESS_KEY": "chaos",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_METRICS_NAMESPACE": "DriplineChaos",
        "POWERTOOLS_SERVICE_NAME": "dripline-chaos",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "CRITICAL",
    }.items():
        os.environ[name] = value
    os.environ.pop("AWS_ENDPOINT_URL", None)


def run_chaos(seed: int, contacts: int, fault_rate: float, *, kill_rate: float | None = None, progress: bool = False) -> ChaosReport:
    _prepare_environment()
    import logging

    from moto import mock_aws

    from dripline import clock, runtime
    from dripline.clock import ManualClock
    from dripline.settings import Settings
    from dripline_local.moto_indexes import index_queries
    from dripline_local.moto_lock import serialise_dynamodb
    from dripline_local.resources import create_resources

    import warnings

    logging.disable(logging.CRITICAL)  # thousands of expected warnings; the summary says it all
    warnings.filterwarnings("ignore", "No application metrics to publish")
    started = time.monotonic()
    settings = Settings(due_shards=4, processor_workers=4, max_runs_per_tick=400, send_event_settle_seconds=120)
    serialise_dynamodb()
    index_queries()
    previous_clock = clock.install(ManualClock(START))
    try:
        # The handlers' JSON logs and metrics go nowhere: the summary line says it all.
        with mock_aws(), open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            resources = create_resources(settings)
            runtime.configure(settings)
            world = _World(seed, settings, resources.contacts_stream_arn, fault_rate, kill_rate)
            world.progress = progress
            report = world.run(contacts)
        runtime.reset()
    finally:
        clock.install(previous_clock)
        logging.disable(logging.NOTSET)
    report.seconds = time.monotonic() - started
    return report


class _World:
    def __init__(self, seed: int, settings: Any, stream_arn: str, fault_rate: float, kill_rate: float | None) -> None:
        import boto3

        from dripline import clock
        from dripline_local.faults import FaultInjector
        from dripline_local.lambdas import load_functions
        from dripline_local.ses_send_events import SendEvents

        self.random = random.Random(seed)
        self.settings = settings
        self.clock = clock._current  # the ManualClock run_chaos installed
        self.report = ChaosReport(seed=seed, contacts=0, fault_rate=fault_rate)
        self.fault_rate = fault_rate
        self.kill_rate = fault_rate / 5 if kill_rate is None else kill_rate
        self.send_events = SendEvents(settings.ses_configuration_set)
        self.accepted: list[Accepted] = []
        self._accepted_lock = threading.Lock()
        self.injector = FaultInjector(seed=seed, on_effect=self._on_effect)
        self.streams = boto3.client("dynamodbstreams", region_name=settings.region)
        self.stream_arn = stream_arn
        self.iterators: dict[str, str] = {}
        self.delivered: list[list[dict[str, Any]]] = []  # batches seen (for stale redelivery)
        self.backlog: list[dict[str, Any]] = []  # records waiting for (re)delivery, in order
        self.ses_backlog: list[dict[str, Any]] = []
        self.contact_ids: list[str] = []
        self.deleted: set[str] = set()
        self.pipelines: dict[str, str] = {}
        self.progress = False
        self.functions = load_functions(settings.region)  # the template's handlers, in-process

    # --- faults ---------------------------------------------------------------------

    def _on_effect(self, call: Any, answer: dict[str, Any]) -> None:
        self.send_events.observe(call, answer)
        if (call.service, call.operation) == ("sesv2", "SendEmail"):
            tags = {t["Name"]: t["Value"] for t in call.params.get("EmailTags", [])}
            with self._accepted_lock:
                self.accepted.append(Accepted(tags["run"], int(tags["step"]), answer["MessageId"], self.clock.now()))

    def _faults_on(self, kills: bool) -> None:
        from dripline_local.faults import (
            ERROR_500, KILL_AFTER, LOSE_500, LOSE_CONNECTION, LOSE_TIMEOUT, THROTTLE, Rule,
        )

        rate = self.fault_rate / 6
        rules = [
            Rule(service, "*", fault, probability=rate)
            for service in ("dynamodb", "sesv2")
            for fault in (THROTTLE, ERROR_500, LOSE_CONNECTION, LOSE_TIMEOUT, LOSE_500)
        ]
        rules = [r for r in rules if not (r.service == "sesv2" and r.fault == LOSE_TIMEOUT)] + [
            Rule("sesv2", "SendEmail", LOSE_TIMEOUT, probability=rate)
        ]
        if kills and self.kill_rate:
            runs_table = self.settings.runs_table
            rules = [
                Rule("dynamodb", "UpdateItem", KILL_AFTER, probability=self.kill_rate, when=_is_claim(runs_table)),
                Rule("sesv2", "SendEmail", KILL_AFTER, probability=self.kill_rate),
                Rule("dynamodb", "UpdateItem", KILL_AFTER, probability=self.kill_rate, when=_is_finish(runs_table)),
            ] + rules
        self.injector.rules = rules

    def _faults_off(self) -> None:
        self.injector.clear()

    # --- the world ------------------------------------------------------------------

    def run(self, contacts: int) -> ChaosReport:
        from dripline_local.faults import KILL_AFTER

        self._setup()
        with self.injector.installed():
            created = 0
            while created < contacts:
                if self.progress and created % 400 == 0:
                    print(f"chaos: {created}/{contacts} contacts created", file=sys.stderr, flush=True)
                batch = min(CONTACTS_PER_ROUND, contacts - created)
                self._create_contacts(batch)
                created += batch
                self._mutate()
                self._round(kills=True)
            for drained in range(MAX_DRAIN_ROUNDS):  # drain: faults and kills go on until all is done
                if self.progress and drained % 50 == 0:
                    print(f"chaos: draining, round {drained}, clock {self.clock.now():%Y-%m-%d %H:%M}", file=sys.stderr, flush=True)
                if not self._round(kills=True, drain=True):
                    break
        self.report.contacts = contacts
        self.report.faults = sum(n for (s, o, f), n in self.injector.injected.items() if f != KILL_AFTER)
        self.report.kills = sum(n for (s, o, f), n in self.injector.injected.items() if f == KILL_AFTER)
        self._check()
        return self.report

    def _setup(self) -> None:
        from dripline.domain import Step
        from dripline.storage import pipelines

        for name, steps, automatic in (("Welcome", WELCOME, True), ("Nurture", NURTURE, False)):
            pipeline = pipelines.create_pipeline(
                TEAM, name=name, model_type="contact", steps=[Step.from_dict(s) for s in steps],
                now=self.clock.now(), automatic=automatic,
            )
            self.pipelines[name] = pipeline.pipeline_id

    def _create_contacts(self, count: int) -> None:
        from dripline.storage import contacts
        from dripline.storage.models import Contact

        now = self.clock.now()
        for _ in range(count):
            contact_id = uuid.UUID(int=self.random.getrandbits(128)).hex
            contacts.create_contact(Contact(
                TEAM, contact_id, email=f"{contact_id[:12]}@example.com", first_name="Chaos",
                pipeline_ids=[], unsubscribed=False, created_at=now, updated_at=now,
            ))
            self.contact_ids.append(contact_id)

    def _mutate(self) -> None:
        """Some contacts change: unsubscribe, assignment to the manual pipeline, delete."""
        from dripline.errors import NotFound
        from dripline.storage import contacts

        alive = [c for c in self.contact_ids if c not in self.deleted]
        for contact_id in self.random.sample(alive, k=min(len(alive), 3)):
            kind = self.random.choice(("unsubscribe", "assign", "assign", "delete"))
            try:
                if kind == "delete":
                    contacts.delete_contact(TEAM, contact_id)
                    self.deleted.add(contact_id)
                elif kind == "unsubscribe":
                    contacts.modify_contact(TEAM, contact_id, lambda c: {"unsubscribed": True}, self.clock.now())
                else:
                    nurture = self.pipelines["Nurture"]
                    contacts.modify_contact(TEAM, contact_id, lambda c: {"pipeline_ids": [nurture]}, self.clock.now())
            except NotFound:
                pass

    def _round(self, *, kills: bool, drain: bool = False) -> bool:
        """One minute of the world: stream, events, ticks, then the clock moves. Returns
        False once nothing is left to do (drain)."""
        from dripline.storage import runs

        self._read_stream()
        self._faults_on(kills)
        try:
            self._deliver_stream()
            self._deliver_send_events()
            self._ticks(overlap=not drain and self.random.random() < 0.3)
        finally:
            self._faults_off()
        if drain:
            self._read_stream()
            if self.backlog or self.ses_backlog or self.send_events.pending:
                self.clock.advance(60)
                return True
            due = runs.next_due_at(self.settings.due_shards)
            if due is None:
                return False
            # Ticks 5 minutes apart while draining: fewer rounds, same checks.
            self.clock.set(max(self.clock.now() + timedelta(seconds=DRAIN_TICK_SECONDS), due))
            return True
        jump = self.random.random()
        if jump < 0.05:
            self.clock.advance(-90)  # a tick whose clock runs behind
        elif jump < 0.1:
            self.clock.advance(3600)  # an outage: an hour of ticks missed
        else:
            self.clock.advance(60)
        return True

    # --- stream ---------------------------------------------------------------------

    def _read_stream(self) -> None:
        description = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        for shard in description["Shards"]:
            shard_id = shard["ShardId"]
            if shard_id not in self.iterators:
                self.iterators[shard_id] = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            response = self.streams.get_records(ShardIterator=self.iterators[shard_id], Limit=1000)
            self.iterators[shard_id] = response["NextShardIterator"]
            self.backlog.extend(lambda_record(r, self.stream_arn) for r in response["Records"])

    def _deliver_stream(self) -> None:
        """Batches in order per contact (as Lambda keeps a shard's order), at least once:
        some duplicated at once, some stale ones redelivered later, contacts shuffled."""
        records, self.backlog = self.backlog, []
        records = _shuffle_keeping_key_order(records, self.random)
        while records:
            batch, records = records[:BATCH_SIZE], records[BATCH_SIZE:]
            deliveries = [batch]
            if self.random.random() < 0.1:
                deliveries.append(batch)  # delivered twice
            if self.delivered and self.random.random() < 0.05:
                deliveries.append(self.random.choice(self.delivered))  # a stale batch again
            for delivery in deliveries:
                failed = self._invoke_enrollment(delivery)
                if failed is not None and delivery is batch:
                    # Lambda retries from the first failed record on (bisect on error).
                    records = batch[failed:] + records
                    break
            self.delivered.append(batch)
            if len(self.delivered) > 50:
                self.delivered.pop(0)

    def _invoke_enrollment(self, batch: list[dict[str, Any]]) -> int | None:
        """The index of the first record to retry, or None when the batch went through."""
        from dripline_local.faults import Kill

        try:
            response = self.functions["enrollment"].invoke({"Records": batch})
        except Kill:
            self.injector.revive()
            return 0
        failures = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        for index, record in enumerate(batch):
            if record["dynamodb"]["SequenceNumber"] in failures:
                return index
        return None

    # --- SES events -----------------------------------------------------------------

    def _deliver_send_events(self) -> None:
        """EventBridge -> ses_events, at least once and in any order; failures retried."""
        from dripline_local.faults import Kill

        ses_events = self.functions["ses_events"]

        events = self.ses_backlog + self.send_events.take()
        self.random.shuffle(events)
        self.ses_backlog = []
        for event in events:
            try:
                ses_events.invoke(event)
                if self.random.random() < 0.05:
                    ses_events.invoke(event)  # delivered twice
            except Kill:
                self.injector.revive()
                self.ses_backlog.append(event)
            except Exception:  # noqa: BLE001 - Lambda's async retry: delivered again later
                self.ses_backlog.append(event)

    # --- ticks ----------------------------------------------------------------------

    def _ticks(self, *, overlap: bool) -> None:
        from dripline_local.faults import Kill

        processor = self.functions["processor"]

        def tick() -> None:
            try:
                processor.invoke(SCHEDULED_EVENT)
            except Kill:
                pass

        if overlap:
            threads = [threading.Thread(target=tick) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        else:
            tick()
        self.injector.revive()

    # --- invariants -----------------------------------------------------------------

    def _check(self) -> None:
        from dripline.domain import ACTIVE_STATUSES
        from dripline.storage import stats
        from dripline.storage.models import PipelineRun, Task

        report = self.report
        all_runs = list(PipelineRun.scan())
        report.runs = len(all_runs)
        by_step = Counter((a.run_id, a.step) for a in self.accepted)
        first_accept: dict[tuple[str, int], datetime] = {}
        for a in self.accepted:
            first_accept[(a.run_id, a.step)] = max(a.at, first_accept.get((a.run_id, a.step), a.at))
        report.emails = len(self.accepted)
        report.duplicates = sum(1 for n in by_step.values() if n > 1)
        for key, n in by_step.items():
            if n > 1:
                report.details.append(f"duplicate: run {key[0]} step {key[1]} accepted {n} times")
        causes = Counter()
        active = Counter()
        for run in all_runs:
            causes[(run.owner, run.pipeline_id, run.enrollment_key)] += 1
            if run.status in ACTIVE_STATUSES:
                active[(run.owner, run.pipeline_id)] += 1
                report.stuck += 1
                report.details.append(f"stuck: run {run.run_id} {run.status} next {run.next_step_at}")
            if run.status == "failed":
                report.failed_runs += 1
            for entry in run.history:
                if entry.action_type != "send_email":
                    continue
                key = (run.run_id, int(entry.step_number))
                if entry.outcome == "succeeded" and key not in by_step:
                    report.lost += 1
                    report.details.append(f"lost: run {run.run_id} step {key[1]} recorded sent, never accepted")
                if (entry.detail or {}).get("recovered"):
                    report.recovered += 1
                if entry.error == "delivery_unknown":
                    report.delivery_unknown += 1
                    if key not in by_step:
                        report.lost += 1
                        report.details.append(f"unexplained delivery_unknown: run {run.run_id} step {key[1]}")
            if run.status == "cancelled" and run.completed_at is not None:
                for (run_id, step), at in first_accept.items():
                    if run_id == run.run_id and at > run.completed_at:
                        report.after_cancel += 1
                        report.details.append(f"sent after cancel: run {run_id} step {step}")
        report.enroll_dups = sum(1 for n in causes.values() if n > 1) + sum(1 for n in active.values() if n > 1)
        tasks = Counter((t.run_id, t.step_number) for t in Task.scan())
        report.task_dups = sum(1 for n in tasks.values() if n > 1)

        for pipeline_id in self.pipelines.values():
            report.stats_drift += _stats_mismatches(stats, pipeline_id, all_runs)
        reconcile = getattr(stats, "reconcile", None)
        if reconcile is None:
            report.stats_mismatches = report.stats_drift
            return
        for pipeline_id in self.pipelines.values():
            reconcile(TEAM, pipeline_id)
        report.reconciled = True
        report.stats_mismatches = sum(_stats_mismatches(stats, p, all_runs) for p in self.pipelines.values())


def _stats_mismatches(stats: Any, pipeline_id: str, all_runs: list[Any]) -> int:
    """Counters of the pipeline's stats that differ from the runs themselves."""
    from dripline.domain import RunStatus

    runs_of = [r for r in all_runs if r.pipeline_id == pipeline_id]
    expected = Counter(r.status for r in runs_of)
    counted = stats.read(TEAM, pipeline_id, [])["runs"]
    mismatches = int(counted["total"] != len(runs_of))
    mismatches += sum(1 for s in RunStatus if counted[s.value] != expected[s.value])
    return mismatches


def _is_claim(runs_table: str):
    def match(call: Any) -> bool:
        p = call.params
        return p.get("TableName") == runs_table and "lease_owner" in p.get("ExpressionAttributeNames", {}).values() \
            and "REMOVE" not in p.get("UpdateExpression", "")
    return match


def _is_finish(runs_table: str):
    def match(call: Any) -> bool:
        p = call.params
        names = p.get("ExpressionAttributeNames", {}).values()
        return p.get("TableName") == runs_table and "lease_owner" in names and "attempts" in names \
            and "REMOVE" in p.get("UpdateExpression", "")
    return match


def _shuffle_keeping_key_order(records: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """Interleave contacts at random, each contact's own records staying in order."""
    queues: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        queues[repr(sorted(record["dynamodb"]["Keys"].items()))].append(record)
    lanes = list(queues.values())
    out: list[dict[str, Any]] = []
    while lanes:
        lane = rng.choice(lanes)
        out.append(lane.pop(0))
        if not lane:
            lanes.remove(lane)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dripline chaos", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--contacts", type=int, default=200)
    parser.add_argument("--fault-rate", type=float, default=0.1, help="share of DynamoDB and SES calls faulted (default 0.1)")
    parser.add_argument("--kill-rate", type=float, default=None, help="chance of a kill at each kill point (default fault-rate/5)")
    parser.add_argument("--verbose", action="store_true", help="show progress and list every violation")


def run_from_args(args: argparse.Namespace) -> int:
    report = run_chaos(args.seed, args.contacts, args.fault_rate, kill_rate=args.kill_rate, progress=args.verbose)
    if args.verbose or report.violations:
        for detail in report.details[:50]:
            print(f"  {detail}", file=sys.stderr)
    print(report.line(), flush=True)
    return 1 if report.violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
