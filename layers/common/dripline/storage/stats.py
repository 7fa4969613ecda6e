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

Besides the per-pipeline item (`STATS#<pipeline>`), the same flush keeps a team's error
patterns: one item per hour (`ERRORS#<yyyy-mm-ddThh>`) counting failed, retried and
recovered steps by (error code, action type), with the first and last time seen and an
example run. `GET /stats/errors?since=` adds up the hours since then.
"""
from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dripline.domain import Outcome, RunStatus
from dripline.observability import MetricUnit, logger, metrics
from dripline.clock import iso
from dripline.storage.models import ERRORS_END, PipelineStats, errors_sk, stats_sk
from dripline.storage.util import CONDITION_FAILED, is_transient

RUN_STATUSES = [s.value for s in RunStatus]
EMAIL_EVENTS = ["sent", "delivered", "bounced", "complained", "opened", "clicked"]
# Email steps skipped because the address is suppressed: counted apart from other skips.
SUPPRESSED = "emails_suppressed"
TOKEN_SLOT_SECONDS = 300
TOKEN_SLOTS = 3
FLUSH_ATTEMPTS = 6  # on top of the SDK's own retries; backoff 0.2 s, 0.4 s ... 3.2 s
FLUSH_BACKOFF_SECONDS = 0.2
# Step lateness histogram: one counter per bucket, `lat_<upper bound in seconds>` (the
# last one, `lat_inf`, holds everything later), so a p99 needs no scan of runs.
LATENESS_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 900, 3600, 21600, 86400)
# Error patterns: what became of a step attempt that failed (or of a step that
# succeeded after failing: `recovered`), counted by (error code, action type).
ERROR_KINDS = ("failed", "retried", "recovered")
ERROR_CODE_CHARS = 64
ERRORS_KEEP_DAYS = 90


class Tally:
    """Counter changes of many run transitions, summed per pipeline; thread-safe.

    Create one per tick or batch, record each transition right after its run write
    succeeded, and call `flush()` at the end (`with Tally() as tally:` flushes on exit).
    """

    def __init__(self) -> None:
        # (team, item sk) -> counter changes; and values to SET on that item: the
        # first-seen ones only where absent, the last-seen ones always.
        self._deltas: dict[tuple[str, str], Counter] = defaultdict(Counter)
        self._first: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
        self._last: dict[tuple[str, str], dict[str, str | int]] = defaultdict(dict)
        self._lock = threading.Lock()

    def __enter__(self) -> "Tally":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.flush()

    def add(self, team_id: str, pipeline_id: str, deltas: dict[str, int]) -> None:
        self._add_to(team_id, stats_sk(pipeline_id), deltas)

    def _add_to(self, team_id: str, sk: str, deltas: dict[str, int], first: dict[str, str] | None = None,
                last: dict[str, str | int] | None = None) -> None:
        key = (team_id, sk)
        with self._lock:
            self._deltas[key].update(deltas)
            for name, value in (first or {}).items():
                self._first[key].setdefault(name, value)
            for name, value in (last or {}).items():
                self._last[key][name] = max(value, self._last[key].get(name, value))

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

    def step_error(self, team_id: str, kind: str, error: str | None, action_type: str, run_id: str, at: datetime) -> None:
        """A step attempt that failed (`failed` for good, or `retried`), or a step that
        succeeded after failing (`recovered`, under the error of its last failed attempt)."""
        group = error_group(error, action_type)
        when = iso(at)
        self._add_to(
            team_id,
            errors_sk(at),
            {f"n|{kind}|{group}": 1},
            first={f"f|{group}": when, f"x|{group}": run_id},
            # The hour's item expires (TTL) ERRORS_KEEP_DAYS after its hour.
            last={f"l|{group}": when, "expires_at": int((hour_of(at) + timedelta(days=ERRORS_KEEP_DAYS)).timestamp())},
        )

    def flush(self) -> int:
        """One idempotent write per item (pipeline counters, error hours); returns how
        many items were written.

        An item whose write still fails after the retries keeps its changes here (the
        next flush tries again), is logged and counted in the StatsFlushFailed metric.
        """
        with self._lock:
            batches = {
                key: ({k: v for k, v in deltas.items() if v}, self._first.pop(key, {}), self._last.pop(key, {}))
                for key, deltas in self._deltas.items()
            }
            self._deltas.clear()
        written = 0
        for (team_id, sk), (changes, first, last) in batches.items():
            if not changes:
                continue
            try:
                _add_once(team_id, sk, changes, token=uuid.uuid4().hex[:12], first=first, last=last)
                written += 1
            except Exception:  # noqa: BLE001 - the runs are written; the counters wait for the next flush
                logger.exception("stats flush failed", extra={"sk": sk, "deltas": changes})
                metrics.add_metric(name="StatsFlushFailed", unit=MetricUnit.Count, value=1)
                self._add_to(team_id, sk, changes, first, last)
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
        deltas[lateness_bucket(lateness_ms)] = 1
    if email_sent:
        deltas["emails_sent"] = 1
    return deltas


def lateness_bucket(lateness_ms: int) -> str:
    """The histogram counter a step's lateness falls in."""
    seconds = max(0, lateness_ms) / 1000
    return next((f"lat_{bound}" for bound in LATENESS_BUCKETS if seconds <= bound), "lat_inf")


def hour_of(at: datetime) -> datetime:
    """The start of the UTC hour of `at`: error patterns are counted per hour."""
    return at.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def error_group(error: str | None, action_type: str) -> str:
    """`<error code>|<action type>`: the code is what an error string starts with, up to
    its first colon (`Throttling: Rate exceeded` -> `Throttling`, `delivery_unknown`).

    An error without a code (prose, e.g. a custom action's message) has its numbers
    replaced by `N`: the groups of an hour are one item's attributes, so they must stay
    few (`the subject is 1,204 characters` and `... 998 ...` are one pattern)."""
    head = (error or "unknown").split(":", 1)[0].strip()
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", head):
        head = re.sub(r"\d+(?:[.,]\d+)*", "N", head)
    code = re.sub(r"[^A-Za-z0-9_.-]+", "_", head).strip("_")[:ERROR_CODE_CHARS] or "unknown"
    return f"{code}|{action_type}"


def email_event(team_id: str, pipeline_id: str, event: str) -> None:
    """One SES event, counted at once (its caller deduplicates events with a marker)."""
    with Tally() as tally:
        tally.email_event(team_id, pipeline_id, event)


def _add_once(
    team_id: str, sk: str, deltas: dict[str, int], token: str, first: dict[str, str] | None = None,
    last: dict[str, str | int] | None = None,
) -> None:
    """ADD `deltas` to the item's counters (and SET `first` where absent, `last` always)
    unless the write carrying `token` is in."""
    # pynamodb has no typed API for dynamic attribute names; its botocore client does.
    client = PipelineStats._get_connection().connection.client
    first, last = first or {}, last or {}
    for attempt in range(FLUSH_ATTEMPTS):
        slot = int(time.time() // TOKEN_SLOT_SECONDS)
        current, previous, stale = (f"flush_{(slot + k) % TOKEN_SLOTS}" for k in (0, -1, 1))
        names = {f"#a{i}": name for i, name in enumerate(deltas)}
        names.update({f"#f{i}": name for i, name in enumerate(first)} | {f"#l{i}": name for i, name in enumerate(last)})
        names.update({"#cur": current, "#prev": previous, "#stale": stale})
        values = {f":v{i}": {"N": str(value)} for i, value in enumerate(deltas.values())}
        values.update({f":f{i}": {"S": value} for i, value in enumerate(first.values())})
        values.update({f":l{i}": {"N" if isinstance(value, int) else "S": str(value)} for i, value in enumerate(last.values())})
        values.update({":token": {"S": token}, ":tokens": {"SS": [token]}})
        adds = ", ".join(f"#a{i} :v{i}" for i in range(len(deltas)))
        sets = [f"#f{i} = if_not_exists(#f{i}, :f{i})" for i in range(len(first))]
        sets += [f"#l{i} = :l{i}" for i in range(len(last))]
        set_clause = f" SET {', '.join(sets)}" if sets else ""
        try:
            client.update_item(
                TableName=PipelineStats.Meta.table_name,
                Key={"team_id": {"S": team_id}, "sk": {"S": sk}},
                UpdateExpression=f"ADD {adds}, #cur :tokens{set_clause} REMOVE #stale",
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
    recounted = [n for n in item if n.startswith(("runs_", "step_", "lat_")) or n == "emails_sent"]
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
    return summarize(item, steps)


def read_many(team_id: str, pipeline_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The raw counter items of several pipelines (at most 100), by pipeline id; one
    BatchGetItem (plus one per page DynamoDB leaves unprocessed). Summarize each with
    `summarize` and `comparison`."""
    if not pipeline_ids:
        return {}
    client = PipelineStats._get_connection().connection.client
    table = PipelineStats.Meta.table_name
    request = {table: {"Keys": [{"team_id": {"S": team_id}, "sk": {"S": stats_sk(p)}} for p in dict.fromkeys(pipeline_ids)],
                       "ConsistentRead": True}}
    found: dict[str, dict[str, Any]] = {}
    for attempt in range(FLUSH_ATTEMPTS):
        answer = client.batch_get_item(RequestItems=request)
        for item in answer.get("Responses", {}).get(table, []):
            found[item["sk"]["S"].removeprefix(stats_sk(""))] = item
        request = answer.get("UnprocessedKeys") or {}
        if not request:
            return found
        time.sleep(FLUSH_BACKOFF_SECONDS * 2**attempt)
    raise RuntimeError("stats read: DynamoDB kept keys unprocessed")


def _counter(item: dict[str, Any], name: str) -> int:
    return max(0, int(float(item.get(name, {}).get("N", "0"))))


def summarize(item: dict[str, Any], steps: list[tuple[int, str]]) -> dict[str, Any]:
    """The Stats document of one pipeline's counter item (`steps`: its latest version's
    (step_number, action_type))."""

    def counter(name: str) -> int:
        return _counter(item, name)

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


def comparison(item: dict[str, Any], steps: list[tuple[int, str]]) -> dict[str, Any]:
    """One pipeline's row of `GET /stats/pipelines`: its Stats document plus the rates and
    lateness figures that put pipelines side by side. Lateness covers every recorded step,
    including those of older versions (the counters are by step number)."""
    stats = summarize(item, steps)
    runs, emails = stats["runs"], stats["emails"]
    executed = sum(_counter(item, name) for name in item if name.startswith("step_") and name.endswith("_executed"))
    lateness_ms = sum(_counter(item, name) for name in item if name.startswith("step_") and name.endswith("_lateness_ms"))
    histogram = [{"le_seconds": bound, "count": _counter(item, f"lat_{bound}")} for bound in LATENESS_BUCKETS]
    histogram.append({"le_seconds": None, "count": _counter(item, "lat_inf")})
    return {
        **stats,
        "enrolled": runs["total"],
        "active": runs["pending"] + runs["running"],
        "open_rate": round(emails["opened"] / emails["delivered"], 4) if emails["delivered"] else 0.0,
        "click_rate": round(emails["clicked"] / emails["delivered"], 4) if emails["delivered"] else 0.0,
        "avg_lateness_seconds": round(lateness_ms / 1000 / executed, 3) if executed else 0.0,
        "p99_lateness_seconds": percentile_bound(histogram, 0.99),
        "lateness_histogram": histogram,
    }


def percentile_bound(histogram: list[dict[str, Any]], quantile: float) -> float | None:
    """The upper bound of the bucket holding the `quantile` (nearest rank): the
    percentile is at most this. 0.0 with no steps; None when it is past the last bound."""
    total = sum(bucket["count"] for bucket in histogram)
    if not total:
        return 0.0
    rank, seen = max(1, -(-int(quantile * total * 1000) // 1000)), 0
    for bucket in histogram:
        seen += bucket["count"]
        if seen >= rank:
            return None if bucket["le_seconds"] is None else float(bucket["le_seconds"])
    return None


def read_errors(team_id: str, since: datetime) -> list[dict[str, Any]]:
    """The team's error patterns from the hour of `since` on: one row per (error code,
    action type), most frequent first. Reads the hourly items (one Query), no runs."""
    client = PipelineStats._get_connection().connection.client
    rows: dict[str, dict[str, Any]] = {}
    # Hours come oldest first: the first and the example of a group are its earliest hour's.
    for item in _query_items(client, team_id, errors_sk(since), ERRORS_END):
        for name, value in item.items():
            tag, _, group = name.partition("|")
            if tag == "n":
                kind, _, group = group.partition("|")
                _row(rows, group)[kind] += int(float(value["N"]))
            elif tag in ("f", "x"):
                row = _row(rows, group)
                field = "first_seen" if tag == "f" else "example_run_id"
                row[field] = row[field] or value["S"]
            elif tag == "l":
                row = _row(rows, group)
                row["last_seen"] = max(row["last_seen"] or "", value["S"])
    return sorted(rows.values(), key=lambda r: (-(r["failed"] + r["retried"]), r["error_code"], r["action_type"]))


def _row(rows: dict[str, dict[str, Any]], group: str) -> dict[str, Any]:
    if group not in rows:
        code, _, action_type = group.partition("|")
        rows[group] = {"error_code": code, "action_type": action_type, **{kind: 0 for kind in ERROR_KINDS},
                       "first_seen": None, "last_seen": None, "example_run_id": None}
    return rows[group]


def _query_items(client: Any, team_id: str, low: str, high: str) -> Iterable[dict[str, Any]]:
    start: dict[str, Any] | None = None
    while True:
        extra = {"ExclusiveStartKey": start} if start else {}
        page = client.query(
            TableName=PipelineStats.Meta.table_name,
            KeyConditionExpression="team_id = :team AND sk BETWEEN :low AND :high",
            ExpressionAttributeValues={":team": {"S": team_id}, ":low": {"S": low}, ":high": {"S": high}},
            **extra,
        )
        yield from page.get("Items", [])
        start = page.get("LastEvaluatedKey")
        if not start:
            return
