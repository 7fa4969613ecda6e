"""`make bench`: what one step costs, against the floor, on moto over HTTP.

moto runs as a server in its own process (benchmarks.moto_server), DynamoDB atomic per
item; the unchanged Lambda handlers run here, invoked as Lambda would (the processor
with a scheduled event, its workers through Lambda's Invoke API served by the local
stack's LambdaService, enrollment with stream batches from the template's event source).
Every AWS call is counted and sized by dripline_local.metering; CPU is this process's
time.process_time() over the handler (the meter's own work subtracted), so the
emulator's CPU is not in it.

Rows (each next to the floor, benchmarks.floor, same run, same concurrency):
  * 1k / 10k / 100k finished runs: a tick of a one-email pipeline (must be flat);
  * enrollment: new contacts, 3 automatic pipelines;
  * a 20-step pipeline: the tick that runs step 1, 3 and 13 of every run;
  * a backlog: drained by the per-minute processor alone, and with fan-out to workers;
  * overlap: two processor invocations started at once on one backlog.

    make bench                                   # the full run (< 5 minutes here)
    .venv/bin/python -m benchmarks.step_path --quick   # a small smoke run
Writes benchmarks/results/step_path.json (or --out).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

RESULTS = Path(__file__).resolve().parent / "results" / "step_path.json"
TEAM_PREFIX = "bench"
EMAIL_STEP = {"action_type": "send_email", "delay_seconds": 0, "message": "Hi {{ contact.first_name }}, welcome!",
              "data": {"subject": "Welcome {{ contact.first_name }}"}}


@dataclass(frozen=True)
class Sizes:
    due: int = 200  # due runs per steady tick
    finished: tuple[int, ...] = (1_000, 10_000, 100_000)
    enroll_contacts: int = 60
    twenty_step_runs: int = 20
    backlog: int = 200
    per_invocation: int = 25  # MAX_RUNS_PER_TICK in the backlog rows: 8 groups of 25

    @classmethod
    def quick(cls) -> "Sizes":
        return cls(due=16, finished=(200,), enroll_contacts=6, twenty_step_runs=4, backlog=48, per_invocation=8)


@dataclass
class Measured:
    units: int  # steps (or contacts)
    usage: Any
    cpu_s: float
    wall_s: float

    def as_dict(self, per: int | None = None) -> dict[str, Any]:
        n = per or self.units
        return {
            **self.usage.per(n),
            "cpu_ms": round(self.cpu_s * 1000 / max(1, n), 2),
            "per_second": round(self.units / self.wall_s, 1) if self.wall_s else None,
        }


class Bench:
    def __init__(self, endpoint: str, sizes: Sizes, put_items: Callable[[str, list[dict]], None]) -> None:
        import boto3

        from dripline import runtime
        from dripline.settings import Settings
        from dripline_local.lambda_service import LambdaService
        from dripline_local.lambdas import Resolver, load_functions
        from dripline_local.metering import Meter
        from dripline_local.resources import create_resources
        from dripline_local.streams import EventSourceConfig, StreamPoller
        from dripline_local.template import load_template, stream_event_source
        from benchmarks import floor

        self.sizes = sizes
        self.endpoint = endpoint
        self.put_items = put_items  # straight into the server's table (seeding, no HTTP)
        self.settings = Settings(dynamodb_endpoint=endpoint)
        self.resources = create_resources(self.settings, endpoint_url=endpoint)
        session = boto3.session.Session(region_name=self.settings.region)
        # Set-up clients, made before the meter: what they do is never counted.
        self.seed = session.client("dynamodb", endpoint_url=endpoint)
        floor.create_table(self.seed)
        streams = session.client("dynamodbstreams", endpoint_url=endpoint)
        sqs = session.client("sqs", endpoint_url=endpoint)

        self.meter = Meter().install()
        self.functions = load_functions(self.settings.region)
        self.lambdas = LambdaService.from_template(
            self.functions, resolver=Resolver(load_template(), region=self.settings.region, endpoint_url=endpoint),
            sqs_client=sqs, log=lambda message: None,
        ).start()
        os.environ["AWS_ENDPOINT_URL_LAMBDA"] = self.lambdas.url
        enrollment = self.functions["enrollment"]
        self.poller = StreamPoller(
            stream_arn=self.resources.contacts_stream_arn, client=streams, handler=enrollment.invoke,
            config=EventSourceConfig.from_template(stream_event_source()), on_failure=lambda record: None,
            region=self.settings.region, function_arn=enrollment.arn,
        )
        # The floor's clients are metered (made after install), like the handlers'.
        self.floor_dynamodb = session.client("dynamodb", endpoint_url=endpoint)
        self.floor_ses = session.client("sesv2", endpoint_url=endpoint)
        self.runtime = runtime
        self.configure()

    def close(self) -> None:
        self.lambdas.stop()
        self.meter.uninstall()

    # --- configuration ---------------------------------------------------------------
    def configure(self, **changes: Any) -> None:
        """Settings for the handlers from now on (their cached processors are rebuilt)."""
        import dataclasses

        from dripline import fanout

        self.runtime.configure(dataclasses.replace(self.settings, **changes))
        fanout.shared.cache_clear()

    # --- measuring -------------------------------------------------------------------
    def measure(self, work: Callable[[], Any], units: Callable[[Any, Any], int]) -> tuple[Any, Measured]:
        before, overhead = self.meter.usage(), self.meter.overhead_cpu_seconds
        cpu, wall = time.process_time(), time.perf_counter()
        result = work()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        usage = self.meter.usage() - before
        usage.calls = type(usage.calls)({k: v for k, v in usage.calls.items() if not k.startswith("dynamodbstreams:")})
        cpu -= self.meter.overhead_cpu_seconds - overhead
        return result, Measured(units(result, usage), usage, max(0.0, cpu), wall)

    def tick(self) -> dict:
        """One per-minute processor invocation, and the workers it started."""
        from dripline_local.scheduler import scheduled_event

        result = self.functions["processor"].invoke(scheduled_event(datetime.now(timezone.utc), rule_arn="bench", region="us-east-1", account="123456789012"))
        self.lambdas.wait_idle()
        return result

    @staticmethod
    def emails(result: Any, usage: Any) -> int:
        return usage.calls.get("sesv2:SendEmail", 0)

    # --- set-up (not measured) ------------------------------------------------------------
    def team_with_pipelines(self, steps: int = 1, pipelines: int = 1) -> str:
        from dripline import clock
        from dripline.domain import Step
        from dripline.storage import pipelines as pipeline_store

        team = f"{TEAM_PREFIX}-{uuid.uuid4().hex[:8]}"
        with self.meter.paused():
            for p in range(pipelines):
                pipeline_store.create_pipeline(
                    team, name=f"p{p}", model_type="contact", now=clock.now(), automatic=True,
                    steps=[Step.from_dict({**EMAIL_STEP, "step_number": n}) for n in range(1, steps + 1)],
                )
        return team

    def put_contacts(self, team: str, count: int) -> list[str]:
        from dripline.storage.models import Contact

        now = datetime.now(timezone.utc)
        ids = [uuid.uuid4().hex for _ in range(count)]
        items = [
            Contact(team, cid, email=f"{cid[:12]}@example.com", first_name="Ada", created_at=now, updated_at=now).serialize()
            for cid in ids
        ]
        self.batch_write(self.settings.contacts_table, items)
        return ids

    def enrolled(self, team: str, contacts: int) -> None:
        """`contacts` new contacts, enrolled (unmeasured) in the team's automatic pipelines."""
        self.put_contacts(team, contacts)
        with self.meter.paused():
            self.poller.drain()

    def batch_write(self, table: str, items: list[dict]) -> None:
        for start in range(0, len(items), 25):
            self.seed.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]})

    def finished_runs(self, count: int) -> None:
        """`count` completed runs (never in the due index), straight into the server's table."""
        from dripline.storage.models import PipelineRun, run_owner

        now = datetime.now(timezone.utc)
        known = PipelineRun.get_attributes()
        values = dict(
            team_id="old", pipeline_id="p", pipeline_key="old#p", pipeline_version=1, pipelineable_type="contact",
            source="automatic", enrollment_key="insert", status="completed", attempts=0,
            history=[], created_at=now, updated_at=now, completed_at=now,
        )
        # Only what the model has (its attributes change as the item gets leaner); one
        # serialised run, copied with each run's own keys.
        template = PipelineRun("owner", "run", **{k: v for k, v in values.items() if k in known}).serialize()
        for start in range(0, count, 10_000):
            items = []
            for _ in range(min(10_000, count - start)):
                contact = uuid.uuid4().hex
                run_id = f"{uuid.uuid4().hex[:16]}c{contact}"
                items.append({**template, "owner": {"S": run_owner("old", "contact", contact)}, "run_id": {"S": run_id}})
            self.put_items(self.settings.runs_table, items)

    # --- the floor --------------------------------------------------------------------
    def floor_steps(self, count: int, *, last_step: bool) -> Measured:
        from benchmarks import floor

        now = datetime.now(timezone.utc)
        with self.meter.paused():
            floor.seed_due(self.seed, count, now, self.settings.due_shards)
        work = lambda: floor.run_steps(  # noqa: E731
            self.floor_dynamodb, self.floor_ses, now, self.settings.due_shards, self.settings.processor_workers, last_step=last_step,
            delay=3600,
        )
        return self.measure(work, lambda steps, usage: steps)[1]

    def floor_enroll(self, contacts: int, pipelines: int) -> Measured:
        from benchmarks import floor

        team = f"floor-{uuid.uuid4().hex[:8]}"
        ids = self.put_contacts(team, contacts)
        now = datetime.now(timezone.utc)
        work = lambda: floor.enroll(self.floor_dynamodb, self.settings.contacts_table, team, ids, pipelines, now, self.settings.due_shards)  # noqa: E731
        return self.measure(work, lambda created, usage: contacts)[1]

    # --- rows --------------------------------------------------------------------------
    def finished(self) -> list[dict]:
        """The same tick among more and more finished runs: its cost must not grow."""
        rows, seeded = [], 0
        for total in self.sizes.finished:
            self.finished_runs(total - seeded)
            seeded = total
            rows.append(self.steady(f"{total:,} finished runs: tick of {self.sizes.due} one-email runs"))
        return rows

    def steady(self, label: str) -> dict:
        team = self.team_with_pipelines()
        self.enrolled(team, self.sizes.due)
        _, ours = self.measure(self.tick, self.emails)
        return row(label, ours, self.floor_steps(self.sizes.due, last_step=True))

    def enrollment(self, pipelines: int = 3) -> dict:
        team = self.team_with_pipelines(pipelines=pipelines)
        contacts = self.sizes.enroll_contacts
        self.put_contacts(team, contacts)
        _, ours = self.measure(self.poller.drain, lambda handled, usage: contacts)
        floor_ = self.floor_enroll(contacts, pipelines)
        runs = contacts * pipelines
        out = row(f"enrollment: {contacts} contacts x {pipelines} automatic pipelines (per contact)", ours, floor_)
        out["per_run_created"] = {"ours_write_units": round(ours.usage.total_write_units / runs, 3),
                                  "floor_write_units": round(floor_.usage.total_write_units / runs, 3)}
        self.drain_due(team)  # leave nothing due for the rows after
        return out

    def drain_due(self, team: str) -> None:
        with self.meter.paused():
            while self.tick().get("due", 0):
                pass

    def twenty_steps(self, report_steps: tuple[int, ...] = (1, 3, 13)) -> list[dict]:
        team = self.team_with_pipelines(steps=20)
        runs = self.sizes.twenty_step_runs
        self.enrolled(team, runs)
        floor_ = self.floor_steps(runs, last_step=False)
        rows, by_step = [], {}
        for step in range(1, 21):
            result, ours = self.measure(self.tick, self.emails)
            by_step[step] = {"write_units": round(ours.usage.total_write_units / max(1, ours.units), 3),
                             "calls": round(ours.usage.total_calls / max(1, ours.units), 3)}
            if step in report_steps:
                rows.append(row(f"20-step pipeline: step {step} ({runs} runs)", ours, floor_))
        rows[-1]["write_units_by_step"] = by_step
        return rows

    def backlog(self) -> list[dict]:
        rows = []
        count, per_invocation = self.sizes.backlog, self.sizes.per_invocation
        floor_ = self.floor_steps(count, last_step=True)
        for fanout in (False, True):
            functions = self.functions["processor_worker"].name if fanout else ""
            self.configure(max_runs_per_tick=per_invocation, worker_function=functions)
            team = self.team_with_pipelines()
            self.enrolled(team, count)
            ticks = []

            def drain() -> int:
                while True:
                    result = self.tick()
                    if not result.get("due"):
                        return len(ticks)
                    ticks.append(result)

            _, ours = self.measure(drain, self.emails)
            label = f"backlog of {count}, {per_invocation} per invocation, " + ("fan-out to workers" if fanout else "no fan-out")
            out = row(label, ours, floor_)
            out["ticks_to_drain"] = len(ticks)
            out["steps_per_tick"] = round(ours.units / max(1, len(ticks)), 1)
            out["workers_per_tick"] = round(sum(t.get("workers", 0) for t in ticks) / max(1, len(ticks)), 2)
            rows.append(out)
        self.configure()
        return rows

    def overlap(self) -> dict:
        """Two per-minute invocations at once, as when a tick outlives its minute."""
        count = self.sizes.backlog
        team = self.team_with_pipelines()
        self.enrolled(team, count)
        barrier = threading.Barrier(2)
        results: list[dict] = []

        def invocation() -> None:
            barrier.wait()
            results.append(self.tick())

        def both() -> list[dict]:
            threads = [threading.Thread(target=invocation) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return results

        _, ours = self.measure(both, self.emails)
        out = row(f"overlap: 2 invocations at once on {count} due", ours, self.floor_steps(count, last_step=True))
        out["wasted_conditional_writes_per_step"] = round(sum(ours.usage.refused.values()) / max(1, ours.units), 4)
        out["shards_per_invocation"] = [r.get("shards") for r in results]
        self.drain_due(team)
        return out


# Finished runs last: moto answers an index query by scanning the whole table, so 100k
# finished runs would slow every later row's wall clock (not its calls, units or CPU).
SECTIONS = ("enrollment", "twenty_steps", "backlog", "overlap", "finished")
SHOWN = ("finished", "enrollment", "twenty_steps", "backlog", "overlap")


def row(label: str, ours: Measured, floor_: Measured) -> dict:
    o, f = ours.as_dict(), floor_.as_dict()

    def ratio(key: str) -> float | None:
        return round(o[key] / f[key], 2) if o.get(key) and f.get(key) else None

    return {
        "row": label,
        "units": ours.units,
        "ours": o,
        "floor": f,
        "ours_over_floor": {k: ratio(k) for k in ("calls", "write_units", "read_units", "cpu_ms", "per_second")},
    }


def machine() -> dict:
    from importlib.metadata import version

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "moto": version("moto"),
        "boto3": version("boto3"),
        "pynamodb": version("pynamodb"),
        "platform": platform.platform(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def print_table(rows: list[dict], out: Any) -> None:
    header = f"{'row':<62} {'calls':>12} {'WU':>12} {'RU':>12} {'CPU ms':>12} {'per s':>12}"
    print(header, file=out)
    print(f"{'':<62} {'ours/floor':>12} {'ours/floor':>12} {'ours/floor':>12} {'ours/floor':>12} {'ours/floor':>12}", file=out)
    print("-" * len(header), file=out)
    for r in rows:
        o, f = r["ours"], r["floor"]

        def cell(key: str, digits: int = 2) -> str:
            return f"{o[key]:.{digits}f}/{f[key]:.{digits}f}" if o.get(key) is not None and f.get(key) is not None else "-"

        print(f"{r['row'][:62]:<62} {cell('calls'):>12} {cell('write_units'):>12} {cell('read_units'):>12} "
              f"{cell('cpu_ms', 1):>12} {cell('per_second', 0):>12}", file=out)
        extras = {k: v for k, v in r.items() if k in ("ticks_to_drain", "steps_per_tick", "workers_per_tick",
                                                      "wasted_conditional_writes_per_step", "per_run_created")}
        if extras:
            print(f"{'':<4}{extras}", file=out)
    print("\ncalls per step by operation (ours):", file=out)
    for r in rows:
        print(f"  {r['row'][:60]:<60} {r['ours']['calls_by_operation']}", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of the harness")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON (default %(default)s)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="run only these rows")
    parser.add_argument("--finished", nargs="+", type=int, metavar="N", help="finished-run counts of those rows")
    args = parser.parse_args(argv)
    sizes = Sizes.quick() if args.quick else Sizes()
    if args.finished:
        sizes = dataclasses.replace(sizes, finished=tuple(sorted(args.finished)))

    screen = sys.stdout
    # The handlers' JSON logs would drown the table: they go nowhere (they still cost CPU,
    # as they do in Lambda). Set before Powertools creates its loggers.
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the run
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1",
        AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled", POWERTOOLS_METRICS_NAMESPACE="DriplineBench", POWERTOOLS_SERVICE_NAME="bench",
        POWERTOOLS_LOG_LEVEL="INFO",
    )
    from dripline_local.logs import quiet_library_noise

    from benchmarks.moto_server import MotoServer

    quiet_library_noise()
    started = time.perf_counter()
    server = MotoServer()
    with server as endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        bench = Bench(endpoint, sizes, server.put_items)
        rows = []
        try:
            produced: dict[str, list[dict]] = {}
            for name in SECTIONS:
                if name not in args.only:
                    continue
                section = getattr(bench, name)()
                produced[name] = section if isinstance(section, list) else [section]
                print(f"  {name} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
            rows = [r for name in SHOWN for r in produced.get(name, [])]
        finally:
            bench.close()
    elapsed = time.perf_counter() - started
    result = {"machine": machine(), "sizes": sizes.__dict__, "elapsed_seconds": round(elapsed, 1), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=list) + "\n")
    print_table(rows, screen)
    print(f"\n{elapsed:.0f} s on {result['machine']['cpus']} CPUs, Python {result['machine']['python']}, "
          f"moto {result['machine']['moto']} (server process). JSON: {args.out}", file=screen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
