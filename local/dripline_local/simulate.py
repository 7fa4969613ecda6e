"""`dripline simulate PIPELINE.json`: a pipeline's whole timeline for one contact, as a table.

The same code as `POST /pipelines/{id}/simulate` (dripline.simulation: the step engine on
a virtual clock, each step rendered by its action), run here with no stack and no AWS:
the file is checked with the API's own rules, then simulated with the default settings
(5 attempts, backoff 60 s doubling up to 1 h). Nothing is sent.

    dripline simulate pipeline.json                       # the body of POST /pipelines
    dripline simulate pipeline.json --fail 2x2            # step 2 fails twice (retried)
    dripline simulate pipeline.json --fail 3! --contact sam.json --start 2026-03-02T09:00:00Z
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SAMPLE = {"email": "sample@example.com", "first_name": "Sample"}
# Fields of a pipeline as GET /pipelines/{id} shows it that a POST body does not take.
_OUTPUT_ONLY = ("pipeline_id", "version", "status", "created_at", "updated_at")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline", type=Path, help="a pipeline as JSON: the body of POST /pipelines (or GET's answer)")
    parser.add_argument("--contact", type=Path, help="a sample contact as JSON ({email, first_name, timezone, attributes ...})")
    parser.add_argument(
        "--fail", action="append", default=[], type=_failure, metavar="STEP[xTIMES][!]",
        help="make a step's first attempts fail: 2 (once), 2x3 (three times), 2! (a permanent error); repeatable",
    )
    parser.add_argument("--start", type=_instant, help="enrollment time, ISO 8601 (default: now)")
    parser.add_argument("--json", action="store_true", help="print the timeline as the API's JSON instead of a table")


def _failure(text: str) -> dict[str, Any]:
    permanent = text.endswith("!")
    step, _, times = text.rstrip("!").partition("x")
    try:
        return {"step_number": int(step), "times": int(times or 1), "retryable": not permanent}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected STEP, STEPxTIMES or STEP! (e.g. 2x2)") from None


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def run_from_args(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from dripline.errors import ValidationFailed

    try:
        out = simulate_file(args.pipeline, args.contact, args.fail, args.start or datetime.now(timezone.utc))
    except (OSError, ValueError) as exc:  # unreadable file, bad JSON, invalid pipeline (pydantic's is a ValueError)
        detail = exc.errors()[0] if isinstance(exc, ValidationError) else exc
        print(f"dripline simulate: {detail}", file=sys.stderr)
        return 2
    except ValidationFailed as exc:
        print(f"dripline simulate: {exc.field}: {exc.message}", file=sys.stderr)
        return 2
    print(json.dumps(out.model_dump(), indent=2) if args.json else table(out))
    return 0


def simulate_file(pipeline_path: Path, contact_path: Path | None, failures: list[dict[str, Any]], start: datetime):
    """The SimulationOut the API would answer for this file's pipeline (checked by the API's rules)."""
    from dripline import simulation
    from dripline.api import schemas, service, views
    from dripline.domain import PipelineSpec
    from dripline.settings import Settings

    document = json.loads(pipeline_path.read_text())
    body = schemas.PipelineIn.model_validate({k: v for k, v in document.items() if k not in _OUTPUT_ONLY})
    spec = PipelineSpec(
        team_id="local", pipeline_id=pipeline_path.stem, version=1, name=body.name, model_type=body.model_type,
        steps=tuple(sorted(service.validate_steps(body), key=lambda s: s.step_number)),
    )
    sample = schemas.SampleContact.model_validate(json.loads(contact_path.read_text()) if contact_path else SAMPLE)
    request = schemas.SimulateIn(contact=sample, failures=[schemas.FailureIn(**f) for f in failures])
    unknown = [f.step_number for f in request.failures if spec.step(f.step_number) is None]
    if unknown:
        raise ValueError(f"--fail: the pipeline has no step {unknown[0]}")
    settings = Settings()
    timeline = simulation.simulate(
        spec, service.sample_contact("local", sample), start, settings,
        [simulation.Failure(f.step_number, f.times, f.retryable) for f in request.failures],
        unsubscribe_url=service.sample_link(settings),
    )
    return views.simulation(spec, timeline)


def table(out) -> str:
    """One line per attempt, then the run's end."""
    header = ("step", "action", "try", "due", "runs at", "outcome", "error", "backoff", "next due")
    rows = [
        (str(a.step_number), a.action_type, str(a.attempt), _short(a.scheduled_at), _short(a.executed_at), a.outcome,
         (a.error or "")[:40], f"{a.retry_in_seconds}s" if a.retry_in_seconds is not None else "", _short(a.next_at))
        for a in out.attempts
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in (header, *rows)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    end = f"{out.status} at {_short(out.ended_at)} (enrolled {_short(out.start)}; {len(out.attempts)} attempts)"
    if out.passed_over:
        end += f"; passed over: steps {', '.join(map(str, out.passed_over))}"
    if out.not_reached:
        end += f"; not reached: steps {', '.join(map(str, out.not_reached))}"
    return "\n".join([*lines, "", end])


def _short(iso: str | None) -> str:
    """2026-03-02T09:00:00.000Z -> 2026-03-02 09:00:00"""
    return iso[:19].replace("T", " ") if iso else "-"
