"""Benchmark: a tick's cost grows with due runs, not with total runs (guarantee 5).

Runs in-process on moto. For each size it measures, in the same process:
  * `due-index tick`: Processor.tick() with 100 due runs among N finished runs;
  * `scan baseline`: what a naive processor would do instead, a filtered table scan
    for pending runs that are due (the work grows with N).
Prints milliseconds and the ratio of each to its value at N = 0.

    make bench            # or: .venv/bin/python -m benchmarks.processor_tick
"""
from __future__ import annotations

import os
import statistics
import time
import uuid
from datetime import datetime, timezone

os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
os.environ.update(
    AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
    POWERTOOLS_METRICS_DISABLED="true", POWERTOOLS_LOG_LEVEL="ERROR",
)

from moto import mock_aws  # noqa: E402

from dripline import clock, runtime  # noqa: E402
from dripline.clock import ManualClock  # noqa: E402
from dripline.domain import Source, Step  # noqa: E402
from dripline.engine import enroll  # noqa: E402
from dripline.processor import Processor  # noqa: E402
from dripline.settings import Settings  # noqa: E402
from dripline.storage import pipelines, runs  # noqa: E402
from dripline.storage.models import PipelineRun, run_owner  # noqa: E402
from dripline_local.moto_lock import serialise_dynamodb  # noqa: E402
from dripline_local.resources import create_resources  # noqa: E402

DUE = 100
SIZES = (0, 2_000, 10_000)
REPEATS = 3
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def seed(settings: Settings, finished: int) -> None:
    pipeline = pipelines.create_pipeline(
        "bench", name="p", model_type="contact", now=clock.now(),
        steps=[Step(1, "create_task", 0, "Call {{ contact.email }}", {"title": "Call"})],
    )
    # Finished runs: no due_shard, so they never enter the due index.
    with PipelineRun.batch_write() as batch:
        for i in range(finished):
            owner = run_owner("bench", "contact", f"old{i}")
            batch.save(PipelineRun(
                owner, uuid.uuid4().hex, team_id="bench", pipeline_id=pipeline.pipeline_id,
                pipeline_version=1, source="automatic", enrollment_key="insert", status="completed",
                history=[], created_at=clock.now(), updated_at=clock.now(), completed_at=clock.now(),
            ))
    from tests.support import put_contact

    for i in range(DUE):
        contact = put_contact("bench", f"c{i}@example.com")
        runs.create_run(
            pipeline=pipeline.spec, pipelineable_type="contact", pipelineable_id=contact.contact_id,
            source=Source.AUTOMATIC, enrollment_key="insert", schedule=enroll(pipeline.spec, clock.now()),
            now=clock.now(), due_shards=settings.due_shards,
        )


def scan_for_due(now: datetime) -> int:
    """The baseline: find due runs without the sparse index."""
    return sum(1 for _ in PipelineRun.scan((PipelineRun.status == "pending") & (PipelineRun.next_step_at <= now)))


def measure(finished: int) -> tuple[float, float]:
    settings = Settings(due_shards=8)
    fake = ManualClock(START)
    clock.install(fake)
    with mock_aws():
        create_resources(settings)
        runtime.configure(settings)
        seed(settings, finished)
        fake.advance(1)
        scans = []
        for _ in range(REPEATS):
            started = time.perf_counter()
            assert scan_for_due(fake.now()) == DUE
            scans.append(time.perf_counter() - started)
        started = time.perf_counter()
        report = Processor(settings).tick()
        tick = time.perf_counter() - started
        assert report.outcomes["completed"] == DUE, report.as_dict()
    return tick * 1000, statistics.median(scans) * 1000


def main() -> None:
    serialise_dynamodb()
    print(f"{DUE} due runs per tick; finished runs vary. Times in ms (ratio to N=0).")
    print(f"{'finished runs N':>16} {'due-index tick':>20} {'scan baseline':>20}")
    base_tick = base_scan = None
    for finished in SIZES:
        tick_ms, scan_ms = measure(finished)
        base_tick = base_tick or tick_ms
        base_scan = base_scan or scan_ms
        print(f"{finished:>16} {tick_ms:>12.0f} ({tick_ms / base_tick:4.2f}x) {scan_ms:>12.0f} ({scan_ms / base_scan:5.2f}x)")


if __name__ == "__main__":
    main()
