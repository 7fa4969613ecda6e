"""A DynamoDB stream event source mapping, as Lambda runs one, for the local stack.

Reads each shard of the stream in order and hands Lambda-shaped batches to a handler:

- batches of the mapping's BatchSize, records in sequence order per shard;
- with ReportBatchItemFailures, a response `{"batchItemFailures": [{"itemIdentifier":
  <SequenceNumber>}]}` checkpoints before the lowest failed sequence number and the
  records from there are retried; an empty/missing identifier, or one that is not in
  the batch, fails the whole batch (as Lambda does);
- an exception (or a whole-batch failure) with BisectBatchOnFunctionError splits the
  batch in two and retries the first half, until the failing record is alone;
- a record (or unsplittable batch) still failing after MaximumRetryAttempts retries is
  discarded and described on the on-failure destination with an invocation record
  (`DDBStreamBatchInfo`, as Lambda writes it). Locally the body also carries the
  records themselves under `localRecords`, so the queue is readable on its own.

Not emulated: MaximumBatchingWindowInSeconds (records are handed over as soon as they
are read), MaximumRecordAgeInSeconds, ParallelizationFactor (shards are read one after
another; the emulator has one shard per table anyway).
"""
from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError

# MaximumRetryAttempts -1 means "until the record expires"; locally: AWS's maximum.
UNLIMITED_RETRIES = 10_000


@dataclass(frozen=True)
class EventSourceConfig:
    batch_size: int = 100
    maximum_retry_attempts: int = -1
    bisect_on_error: bool = False
    report_batch_item_failures: bool = False
    starting_position: str = "TRIM_HORIZON"

    @classmethod
    def from_template(cls, props: Mapping[str, Any]) -> "EventSourceConfig":
        """From the Properties of a SAM `Type: DynamoDB` event."""
        return cls(
            batch_size=int(props.get("BatchSize", 100)),
            maximum_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
            bisect_on_error=bool(props.get("BisectBatchOnFunctionError", False)),
            report_batch_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
            starting_position=str(props.get("StartingPosition", "TRIM_HORIZON")),
        )

    @property
    def retries(self) -> int:
        return UNLIMITED_RETRIES if self.maximum_retry_attempts < 0 else self.maximum_retry_attempts


@dataclass
class _Shard:
    shard_id: str
    iterator: str | None = None
    last_sequence: str | None = None
    pending: list[dict[str, Any]] = field(default_factory=list)
    window: int = 0  # the current (bisected) batch size
    attempts: dict[str, int] = field(default_factory=dict)  # failed invocations per head record


@dataclass
class _Outcome:
    kind: str  # ok | partial | error
    index: int = 0  # partial: position of the lowest failed record
    error: str | None = None
    unhandled: bool = False  # the handler raised


class StreamPoller:
    """Polls one stream and drives one handler; `drain()` runs everything pending now."""

    def __init__(
        self,
        *,
        stream_arn: str,
        client: Any,
        handler: Callable[[dict[str, Any]], Any],
        config: EventSourceConfig,
        on_failure: Callable[[dict[str, Any]], None],
        region: str = "us-east-1",
        function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:enrollment",
        log: Callable[[str], None] | None = None,
        release_iterator: Callable[[str], None] | None = None,
        idle_seconds: float = 0.25,
    ) -> None:
        self.stream_arn = stream_arn
        self.client = client
        self.handler = handler
        self.config = config
        self.on_failure = on_failure
        self.region = region
        self.function_arn = function_arn
        self.log = log or (lambda message: None)
        # The emulator keeps every iterator it ever handed out; let it forget used ones.
        self.release_iterator = release_iterator or (lambda iterator: None)
        self.idle_seconds = idle_seconds
        self._shards: dict[str, _Shard] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.invocations = 0
        self.discarded = 0

    # --- public ---------------------------------------------------------------------
    def drain(self) -> int:
        """Read and process every record in the stream; returns how many were handled."""
        handled = 0
        with self._lock:
            while True:
                read = self._read_all()
                handled += self._process_all()
                if read == 0:
                    return handled

    def poll_once(self) -> int:
        with self._lock:
            read = self._read_all()
            self._process_all()
            return read

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="stream-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                read = self.poll_once()
            except Exception as exc:  # keep polling; the emulator may be shutting down
                if self._stop.is_set():
                    return
                self.log(f"stream poller error: {exc!r}")
                read = 0
            if read == 0:
                self._stop.wait(self.idle_seconds)

    # --- reading --------------------------------------------------------------------
    def _read_all(self) -> int:
        description = self.client.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        read = 0
        for shard_info in description.get("Shards", []):
            shard_id = shard_info["ShardId"]
            shard = self._shards.get(shard_id)
            if shard is None:
                shard = self._shards[shard_id] = _Shard(shard_id, window=self.config.batch_size)
            read += self._read_shard(shard)
        return read

    def _read_shard(self, shard: _Shard) -> int:
        read = 0
        while True:
            if shard.iterator is None:
                shard.iterator = self._iterator(shard)
            try:
                response = self.client.get_records(ShardIterator=shard.iterator, Limit=1000)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("ExpiredIteratorException", "TrimmedDataAccessException"):
                    shard.iterator = None
                    continue
                raise
            self.release_iterator(shard.iterator)
            shard.iterator = response.get("NextShardIterator")
            records = response.get("Records", [])
            for record in records:
                shard.pending.append(self._lambda_record(record))
                shard.last_sequence = record["dynamodb"]["SequenceNumber"]
            read += len(records)
            if not records or shard.iterator is None:
                return read

    def _iterator(self, shard: _Shard) -> str:
        args: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard.shard_id}
        if shard.last_sequence is not None:
            args.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=shard.last_sequence)
        else:
            args.update(ShardIteratorType=self.config.starting_position)
        return self.client.get_shard_iterator(**args)["ShardIterator"]

    def _lambda_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """A GetRecords record as Lambda delivers it (ARN and region added, epoch times)."""
        change = dict(record["dynamodb"])
        created = change.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            change["ApproximateCreationDateTime"] = int(created.timestamp())
        for key in ("Keys", "NewImage", "OldImage"):
            if key in change:
                change[key] = {name: _wire_value(value) for name, value in change[key].items()}
        return {
            "eventID": record.get("eventID"),
            "eventName": record.get("eventName"),
            "eventVersion": record.get("eventVersion", "1.1"),
            "eventSource": "aws:dynamodb",
            "awsRegion": self.region,
            "dynamodb": change,
            "eventSourceARN": self.stream_arn,
        }

    # --- processing -----------------------------------------------------------------
    def _process_all(self) -> int:
        return sum(self._process(shard) for shard in self._shards.values())

    def _process(self, shard: _Shard) -> int:
        handled = 0
        while shard.pending:
            batch = shard.pending[: max(1, shard.window)]
            outcome = self._invoke(batch)
            if outcome.kind == "ok":
                del shard.pending[: len(batch)]
                shard.window = self.config.batch_size
                shard.attempts.clear()
                handled += len(batch)
                continue
            if outcome.kind == "partial":
                # Checkpoint before the lowest failed record; retry from it.
                del shard.pending[: outcome.index]
                handled += outcome.index
                shard.window = self.config.batch_size
                head = _sequence(shard.pending[0])
                shard.attempts = {head: shard.attempts.get(head, 0) + 1}
                if shard.attempts[head] > self.config.retries:
                    self._discard(shard, shard.pending[:1], shard.attempts[head], outcome)
                    del shard.pending[:1]
                    shard.attempts.clear()
                    handled += 1
                continue
            # The whole batch failed.
            if self.config.bisect_on_error and len(batch) > 1:
                shard.window = len(batch) // 2
                self.log(f"enrol   ↳ bisecting: retrying {shard.window} of {len(batch)} records")
                continue
            head = _sequence(batch[0])
            shard.attempts = {head: shard.attempts.get(head, 0) + 1}
            if shard.attempts[head] > self.config.retries:
                self._discard(shard, batch, shard.attempts[head], outcome)
                del shard.pending[: len(batch)]
                shard.attempts.clear()
                shard.window = self.config.batch_size
                handled += len(batch)
        return handled

    def _invoke(self, batch: list[dict[str, Any]]) -> _Outcome:
        self.invocations += 1
        started = time.monotonic()
        summary = _summary(batch)
        try:
            response = self.handler({"Records": batch})
        except Exception as exc:  # the function errored: the whole batch failed
            error = one_line(exc)
            self.log(f"enrol   {summary} → error {error} ({_ms(started)})")
            return _Outcome("error", error=error, unhandled=True)
        outcome = self._judge(batch, response)
        if outcome.kind == "ok":
            self.log(f"enrol   {summary} → ok ({_ms(started)})")
        elif outcome.kind == "partial":
            failed = len(response.get("batchItemFailures") or [])
            self.log(f"enrol   {summary} → {failed} failed, retrying from record {outcome.index + 1} ({_ms(started)})")
        else:
            self.log(f"enrol   {summary} → whole batch failed: {outcome.error} ({_ms(started)})")
        return outcome

    def _judge(self, batch: list[dict[str, Any]], response: Any) -> _Outcome:
        if not self.config.report_batch_item_failures or not isinstance(response, dict):
            return _Outcome("ok")
        failures = response.get("batchItemFailures")
        if not failures:
            return _Outcome("ok")
        positions = {_sequence(record): i for i, record in enumerate(batch)}
        indexes = []
        for failure in failures:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if not identifier or identifier not in positions:
                return _Outcome("error", error=f"invalid itemIdentifier {identifier!r}")
            indexes.append(positions[identifier])
        return _Outcome("partial", index=min(indexes), error="reported in batchItemFailures")

    def _discard(self, shard: _Shard, records: list[dict[str, Any]], invocations: int, outcome: _Outcome) -> None:
        self.discarded += len(records)
        first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
        message: dict[str, Any] = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.function_arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": invocations,
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
            "version": "1.0",
            "timestamp": _iso(datetime.now(timezone.utc)),
            "DDBStreamBatchInfo": {
                "shardId": shard.shard_id,
                "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso_epoch(first.get("ApproximateCreationDateTime")),
                "approximateArrivalOfLastRecord": _iso_epoch(last.get("ApproximateCreationDateTime")),
                "batchSize": len(records),
                "streamArn": self.stream_arn,
            },
            "localRecords": records,
            "localError": outcome.error,
        }
        if outcome.unhandled:
            message["responseContext"]["functionError"] = "Unhandled"
        self.on_failure(message)
        seqs = first["SequenceNumber"] if len(records) == 1 else f"{first['SequenceNumber']}…{last['SequenceNumber']}"
        self.log(f"enrol   record {seqs} → on-failure queue after {invocations} attempts ({outcome.error})")


def sqs_destination(sqs_client: Any, queue_url: str) -> Callable[[dict[str, Any]], None]:
    """An on-failure destination that sends the invocation record to an SQS queue."""

    def send(message: dict[str, Any]) -> None:
        sqs_client.send_message(QueueUrl=queue_url, MessageBody=json.dumps(message, default=str))

    return send


def one_line(exc: BaseException, limit: int = 200) -> str:
    """`Type: first line of the message`, for one-line logs."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _sequence(record: Mapping[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


def _wire_value(value: Any) -> Any:
    """boto3 decodes B/BS to bytes; Lambda events carry them base64-encoded."""
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for kind, inner in value.items():
        if kind == "B" and isinstance(inner, (bytes, bytearray)):
            out[kind] = base64.b64encode(inner).decode()
        elif kind == "BS":
            out[kind] = [base64.b64encode(v).decode() if isinstance(v, (bytes, bytearray)) else v for v in inner]
        elif kind == "M":
            out[kind] = {k: _wire_value(v) for k, v in inner.items()}
        elif kind == "L":
            out[kind] = [_wire_value(v) for v in inner]
        else:
            out[kind] = inner
    return out


def _summary(batch: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for record in batch:
        counts[record.get("eventName", "?")] = counts.get(record.get("eventName", "?"), 0) + 1
    kinds = ", ".join(f"{n} {name}" for name, n in counts.items())
    noun = "record" if len(batch) == 1 else "records"
    return f"{len(batch)} {noun} ({kinds})"


def _ms(started: float) -> str:
    return f"{(time.monotonic() - started) * 1000:.0f} ms"


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso_epoch(epoch: Any) -> str | None:
    if epoch is None:
        return None
    return _iso(datetime.fromtimestamp(float(epoch), timezone.utc))
