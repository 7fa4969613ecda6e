"""The due index's shards: how much is due in each, and which processor invocation
walks which shard right now (its lease).

A lease is one conditional write per shard (free, or its lease expired) and one
conditional delete when the walk ends. Two overlapping invocations therefore walk
disjoint shards; the run claims stay the guarantee that no step runs twice, the leases
only keep invocations from spending conditional writes on each other's runs.
"""
from __future__ import annotations

from datetime import datetime

from pynamodb.exceptions import DeleteError, PutError

from dripline.storage.models import PROCESSOR_PARTITION, PipelineRun, ShardLease
from dripline.storage.util import is_condition_failure


def names(due_shards: int) -> list[str]:
    return [f"due#{n}" for n in range(due_shards)]


def backlog(shard: str, now: datetime, cap: int) -> int:
    """Entries of `shard` due by `now`, counted up to `cap` (a Select=COUNT query: no
    items travel). Running runs are counted too: an estimate for planning, not a list."""
    return PipelineRun.due_index.count(shard, PipelineRun.next_step_at <= now, limit=cap)


def held(now: datetime) -> set[str]:
    """Shards whose lease is live: one query, so an invocation does not spend a refused
    conditional write on each shard another invocation is walking."""
    leases = ShardLease.query(PROCESSOR_PARTITION, ShardLease.sk.startswith("SHARD#"))
    return {lease.sk.removeprefix("SHARD#") for lease in leases if lease.lease_expires_at > now}


def _sk(shard: str) -> str:
    return f"SHARD#{shard}"


def acquire(shard: str, owner: str, now: datetime, until: datetime) -> bool:
    """Take `shard` for `owner` until `until`; False if another owner's lease is live."""
    lease = ShardLease(PROCESSOR_PARTITION, _sk(shard), lease_owner=owner, lease_expires_at=until)
    try:
        lease.save(condition=ShardLease.sk.does_not_exist() | (ShardLease.lease_expires_at <= now))
    except PutError as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def release(shard: str, owner: str) -> None:
    """Give `shard` back, if `owner` still holds it (a lease taken over is left alone)."""
    try:
        ShardLease(PROCESSOR_PARTITION, _sk(shard)).delete(condition=ShardLease.lease_owner == owner)
    except DeleteError as exc:
        if not is_condition_failure(exc):
            raise
