"""Per-pipeline counters, kept as runs move, so stats never scan runs.

Writers do not update counters one transition at a time: they record each transition
they wrote in a `Tally` (in memory), and `Tally.flush()` writes one ADD per pipeline,
at the end of a processor tick or an enrollment batch.

Exact under faults: each flush carries a fresh token, and its ADD is conditioned on the
token not being on the item yet (the token is added in the same write). An SDK retry
after a lost answer, or our own retry after a throttle or a 5xx, then either applies the
ADD or finds it applied (ConditionalCheckFailed means "already counted"). A failed
flush is retried with backoff inside the invocation, never dropped silently.

What the counters promise: every transition a writer made is counted once, once its
flush returned. A process that dies between its run writes and its flush leaves the
counters behind the runs by what it had not flushed (at most one tick's or one batch's
transitions); `reconcile` recounts a pipeline from its runs.

Tokens are kept in three rotating 5-minute slots (`flush_0..2`): a flush checks the
current and the previous slot and clears the next one, so the item holds only the last
5-10 minutes of tokens (13 bytes each) and a retry within 5 minutes is still recognised.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, defaultdict
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dripline.domain import Outcome, RunStatus
from dripline.observability import MetricUnit, logger, metrics
from dripline.storage.models import PipelineStats, stats_sk
from dripline.storage.util import CONDITION_FAILED, is_transient

RUN_STATUSES = [s.value for s in RunStatus]
EMAIL_EVENTS = ["sent", "delivered", "bounced", "complained", "opened", "clicked"]
# Email steps skipped because the address is suppressed: counted apart from other skips.
SUPPRESSED = "emails_suppressed"
TOKEN_SLOT_SECONDS = 300
TOKEN_SLOTS = 3
FLUSH_ATTEMPTS = 6  # on top of the SDK's own retries; backoff 0.2 s, 0.4 s ... 3.2 s
FLUSH_BACKOFF_SECONDS = 0.2


class Tally:
    """Counter changes of many run transitions, summed per pipeline; thread-safe.

    Create one per tick or batch, record each transition right after its run write
    succeeded, and call `flush()` at the end (`with Tally() as tally:` flushes on exit).
    """

    def __init__(self) -> None:
        self._deltas: dict[tuple[str, str], Counter] = defaultdict(Counter)
        self._lock = threading.Lock()

    def __enter__(self) -> "Tally":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.flush()

    def add(self, team_id: str, pipeline_id: str, deltas: dict[str, int]) -> None:
        with self._lock:
            self._deltas[(team_id, pipeline_id)].update(deltas)

    def run_created(self, team_id: str, pipeline_id: str, status: RunStatus) -> None:
        self.add(team_id, pipeline_id, {"runs_total": 1, f"runs_{status.value}": 1})

    def run_moved(self, team_id: str, pipeline_id: str, before: RunStatus, after: RunStatus) -> None:
        if before is not after:
            self.add(team_id, pipeline_id, {f"runs_{before.value}": -1, f"runs_{after.value}": 1})

    def step_finished(
        self,
        team_id: str,
        pipeline_id: str,
        *,
        after: RunStatus,
        step_number: int | None = None,
        outcome: Outcome | None = None,
        lateness_ms: int = 0,
        email_sent: bool = False,
        email_suppressed: bool = False,
    ) -> None:
        """A finished step attempt: the run leaves `running` for `after`; when the step
        was recorded (not merely retried) its counters move too."""
        deltas = step_deltas(after, step_number, outcome, lateness_ms, email_sent)
        if email_suppressed:
            deltas[SUPPRESSED] = 1
        self.add(team_id, pipeline_id, deltas)

    def email_event(self, team_id: str, pipeline_id: str, event: str) -> None:
        self.add(team_id, pipeline_id, {f"emails_{event}": 1})

    def flush(self) -> int:
        """One idempotent ADD per pipeline; returns how many pipelines were written.

        A pipeline whose write still fails after the retries keeps its deltas here (the
        next flush tries again), is logged and counted in the StatsFlushFailed metric.
        """
        with self._lock:
            batches = {key: {k: v for k, v in deltas.items() if v} for key, deltas in self._deltas.items()}
            self._deltas.clear()
        written = 0
        for (team_id, pipeline_id), changes in batches.items():
            if not changes:
                continue
            try:
                _add_once(team_id, pipeline_id, changes, token=uuid.uuid4().hex[:12])
                written += 1
            except Exception:  # noqa: BLE001 - the runs are written; the counters wait for the next flush
                logger.exception("stats flush failed", extra={"pipeline_id": pipeline_id, "deltas": changes})
                metrics.add_metric(name="StatsFlushFailed", unit=MetricUnit.Count, value=1)
                self.add(team_id, pipeline_id, changes)
        return written


def step_deltas(
    after: RunStatus, step_number: int | None, outcome: Outcome | None, lateness_ms: int, email_sent: bool
) -> dict[str, int]:
    deltas: dict[str, int] = {}
    if after is not RunStatus.RUNNING:
        deltas.update({f"runs_{RunStatus.RUNNING.value}": -1, f"runs_{after.value}": 1})
    if step_number is not None and outcome is not None:
        prefix = f"step_{step_number}_"
        deltas.update({prefix + "executed": 1, prefix + outcome.value: 1, prefix + "lateness_ms": max(0, lateness_ms)})
    if email_sent:
        deltas["emails_sent"] = 1
    return deltas


def email_event(team_id: str, pipeline_id: str, event: str) -> None:
    """One SES event, counted at once (its caller deduplicates events with a marker)."""
    with Tally() as tally:
        tally.email_event(team_id, pipeline_id, event)


def _add_once(team_id: str, pipeline_id: str, deltas: dict[str, int], token: str) -> None:
    """ADD `deltas` to the pipeline's counters unless the write carrying `token` is in."""
    # pynamodb has no typed API for dynamic attribute names; its botocore client does.
    client = PipelineStats._get_connection().connection.client
    for attempt in range(FLUSH_ATTEMPTS):
        slot = int(time.time() // TOKEN_SLOT_SECONDS)
        current, previous, stale = (f"flush_{(slot + k) % TOKEN_SLOTS}" for k in (0, -1, 1))
        names = {f"#a{i}": name for i, name in enumerate(deltas)}
        names.update({"#cur": current, "#prev": previous, "#stale": stale})
        values = {f":v{i}": {"N": str(value)} for i, value in enumerate(deltas.values())}
        values.update({":token": {"S": token}, ":tokens": {"SS": [token]}})
        adds = ", ".join(f"#a{i} :v{i}" for i in range(len(deltas)))
        try:
            client.update_item(
                TableName=PipelineStats.Meta.table_name,
                Key={"team_id": {"S": team_id}, "sk": {"S": stats_sk(pipeline_id)}},
                UpdateExpression=f"ADD {adds}, #cur :tokens REMOVE #stale",
                ConditionExpression="NOT contains(#cur, :token) AND NOT contains(#prev, :token)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
            return
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == CONDITION_FAILED:
                return  # an earlier attempt of this flush was applied; its answer was lost
            if not is_transient(exc) or attempt == FLUSH_ATTEMPTS - 1:
                raise
        except BotoCoreError:
            if attempt == FLUSH_ATTEMPTS - 1:
                raise
        time.sleep(FLUSH_BACKOFF_SECONDS * 2**attempt)


def reconcile(team_id: str, pipeline_id: str) -> dict[str, int]:
    """Recount one pipeline's run and step counters from its runs and overwrite them
    (SES's email event counters are kept). Returns the counts written.

    Exact when none of the pipeline's runs moved during the recount; a transition
    flushed meanwhile may be counted twice or not at all (run it again when quiet).
    """
    from dripline.storage import runs  # runs records into Tally: imported here, not at the top

    counts = runs.recount(team_id, pipeline_id)
    _overwrite(team_id, pipeline_id, counts)
    return counts


def _overwrite(team_id: str, pipeline_id: str, counts: dict[str, int]) -> None:
    client = PipelineStats._get_connection().connection.client
    key = {"team_id": {"S": team_id}, "sk": {"S": stats_sk(pipeline_id)}}
    item = client.get_item(TableName=PipelineStats.Meta.table_name, Key=key, ConsistentRead=True).get("Item", {})
    recounted = [n for n in item if n.startswith(("runs_", "step_")) or n == "emails_sent"]
    stale = [n for n in recounted if n not in counts]
    names = {f"#s{i}": n for i, n in enumerate(counts)} | {f"#r{i}": n for i, n in enumerate(stale)}
    values = {f":s{i}": {"N": str(v)} for i, v in enumerate(counts.values())}
    clauses = []
    if counts:
        clauses.append("SET " + ", ".join(f"#s{i} = :s{i}" for i in range(len(counts))))
    if stale:
        clauses.append("REMOVE " + ", ".join(f"#r{i}" for i in range(len(stale))))
    if not clauses:
        return
    extra = {"ExpressionAttributeValues": values} if values else {}
    client.update_item(
        TableName=PipelineStats.Meta.table_name,
        Key=key,
        UpdateExpression=" ".join(clauses),
        ExpressionAttributeNames=names,
        **extra,
    )


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
    ended = sum(runs[s.value] for s in RunStatus if not s.active)
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
        # Exits are the pipeline's conversions (its exit_when is its goal).
        "conversion_rate": round(runs[RunStatus.EXITED.value] / runs["total"], 4) if runs["total"] else 0.0,
        "success_rate": round(succeeded_all / executed_all, 4) if executed_all else 0.0,
        "steps": step_rows,
        "emails": {**{event: counter(f"emails_{event}") for event in EMAIL_EVENTS}, "suppressed": counter(SUPPRESSED)},
    }
