"""Per-pipeline counters, kept as runs move, so stats never scan runs.

Each counter update is one atomic ADD on the pipeline's STATS item, made right after
the run transition it counts succeeded. A process that dies between the two leaves one
counter one step behind; the run itself (the source of truth) is unaffected.
"""
from __future__ import annotations

from typing import Any

from dripline.domain import Outcome, RunStatus
from dripline.observability import logger
from dripline.storage.models import PipelineStats, stats_sk

RUN_STATUSES = [s.value for s in RunStatus]
EMAIL_EVENTS = ["sent", "delivered", "bounced", "complained", "opened", "clicked"]


def _add(team_id: str, pipeline_id: str, deltas: dict[str, int | float]) -> None:
    """ADD several counters of one pipeline in one UpdateItem (counters are dynamic names)."""
    deltas = {k: v for k, v in deltas.items() if v}
    if not deltas:
        return
    names = {f"#a{i}": name for i, name in enumerate(deltas)}
    values = {f":v{i}": {"N": repr(value)} for i, value in enumerate(deltas.values())}
    expression = "ADD " + ", ".join(f"#a{i} :v{i}" for i in range(len(deltas)))
    # pynamodb has no typed API for dynamic attribute names; its botocore client does.
    client = PipelineStats._get_connection().connection.client
    try:
        client.update_item(
            TableName=PipelineStats.Meta.table_name,
            Key={"team_id": {"S": team_id}, "sk": {"S": stats_sk(pipeline_id)}},
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
    except Exception:  # noqa: BLE001 - the run transition it counts is already written
        # Logged, not raised: failing the step now would be worse than a counter one behind.
        logger.exception("stats counter update failed", extra={"pipeline_id": pipeline_id, "deltas": deltas})


def run_created(team_id: str, pipeline_id: str, status: RunStatus) -> None:
    _add(team_id, pipeline_id, {"runs_total": 1, f"runs_{status.value}": 1})


def run_moved(team_id: str, pipeline_id: str, before: RunStatus, after: RunStatus) -> None:
    if before is after:
        return
    _add(team_id, pipeline_id, {f"runs_{before.value}": -1, f"runs_{after.value}": 1})


def step_finished(
    team_id: str,
    pipeline_id: str,
    *,
    after: RunStatus,
    step_number: int | None = None,
    outcome: Outcome | None = None,
    lateness_seconds: float = 0.0,
    email_sent: bool = False,
) -> None:
    """One finished step attempt, in one update: the run leaves `running` for `after`;
    when the step was recorded (not merely retried) its counters move too."""
    deltas: dict[str, int | float] = {}
    if after is not RunStatus.RUNNING:
        deltas.update({f"runs_{RunStatus.RUNNING.value}": -1, f"runs_{after.value}": 1})
    if step_number is not None and outcome is not None:
        prefix = f"step_{step_number}_"
        deltas.update(
            {
                prefix + "executed": 1,
                prefix + outcome.value: 1,
                prefix + "lateness_ms": int(max(0.0, lateness_seconds) * 1000),
            }
        )
    if email_sent:
        deltas["emails_sent"] = 1
    _add(team_id, pipeline_id, deltas)


def email_event(team_id: str, pipeline_id: str, event: str) -> None:
    _add(team_id, pipeline_id, {f"emails_{event}": 1})


def read(team_id: str, pipeline_id: str, steps: list[tuple[int, str]]) -> dict[str, Any]:
    """The API's Stats document for a pipeline whose latest steps are `steps`."""
    client = PipelineStats._get_connection().connection.client
    item = client.get_item(
        TableName=PipelineStats.Meta.table_name,
        Key={"team_id": {"S": team_id}, "sk": {"S": stats_sk(pipeline_id)}},
        ConsistentRead=True,
    ).get("Item", {})

    def counter(name: str) -> int:
        return max(0, int(float(item.get(name, {}).get("N", "0"))))

    runs = {"total": counter("runs_total"), **{s: counter(f"runs_{s}") for s in RUN_STATUSES}}
    ended = runs["completed"] + runs["failed"] + runs["cancelled"]
    step_rows = []
    executed_all = succeeded_all = 0
    for step_number, action_type in steps:
        prefix = f"step_{step_number}_"
        executed = counter(prefix + "executed")
        succeeded = counter(prefix + "succeeded")
        executed_all += executed
        succeeded_all += succeeded
        step_rows.append(
            {
                "step_number": step_number,
                "action_type": action_type,
                "executed": executed,
                "succeeded": succeeded,
                "failed": counter(prefix + "failed"),
                "skipped": counter(prefix + "skipped"),
                "avg_lateness_seconds": round(counter(prefix + "lateness_ms") / 1000 / executed, 3) if executed else 0.0,
            }
        )
    return {
        "runs": runs,
        "completion_rate": round(runs["completed"] / ended, 4) if ended else 0.0,
        "success_rate": round(succeeded_all / executed_all, 4) if executed_all else 0.0,
        "steps": step_rows,
        "emails": {event: counter(f"emails_{event}") for event in EMAIL_EVENTS},
    }
