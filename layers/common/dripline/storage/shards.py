"""The due index's shards: how much is due in each, and which processor invocation
walks which shard right now (its lease).

All leases are attributes of one item (`#processor` / `SHARDS`, in the pipelines table,
under a partition no team can have): `due#3 = {owner, until}`. Taking a set of shards is
one conditional UpdateItem (each named shard free or expired), giving them back another
(each still ours), so a tick pays about two write units for its leases however many
shards it walks. Two overlapping invocations therefore walk disjoint shards; the run
claims stay the guarantee that no step runs twice, the leases only keep invocations
from spending conditional writes on each other's runs.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from botocore.exceptions import ClientError

from dripline.storage.models import PROCESSOR_PARTITION, PipelineRun, ShardLeases
from dripline.storage.util import CONDITION_FAILED

LEASES_SK = "SHARDS"
# A lost race means the item changed between our read and our write: read, try again.
ATTEMPTS = 4


def names(due_shards: int) -> list[str]:
    return [f"due#{n}" for n in range(due_shards)]


def backlog(shard: str, now: datetime, cap: int) -> int:
    """Entries of `shard` due by `now`, counted up to `cap` (a Select=COUNT query: no
    items travel). Running runs are counted too: an estimate for planning, not a list."""
    return PipelineRun.due_index.count(shard, PipelineRun.next_step_at <= now, limit=cap)


def held(now: datetime, *, consistent: bool = False) -> dict[str, str]:
    """Shards whose lease is live, and their owners (one GetItem)."""
    item = _client().get_item(TableName=_table(), Key=_KEY, ConsistentRead=consistent).get("Item", {})
    live = {}
    for shard, value in item.items():
        lease = value.get("M")
        if lease and int(lease["until"]["N"]) > _ms(now):
            live[shard] = lease["owner"]["S"]
    return live


def acquire(shards: Sequence[str], owner: str, now: datetime, until: datetime) -> list[str]:
    """Take every shard of `shards` that no live lease holds, for `owner` until `until`.
    Returns the shards taken."""
    wanted = list(dict.fromkeys(shards))
    for _ in range(ATTEMPTS):
        if not wanted:
            return []
        names_ = {f"#s{i}": shard for i, shard in enumerate(wanted)}
        free = " AND ".join(f"(attribute_not_exists(#s{i}) OR #s{i}.#until <= :now)" for i in range(len(wanted)))
        if _update(
            "SET " + ", ".join(f"#s{i} = :lease" for i in range(len(wanted))),
            free,
            {**names_, "#until": "until"},
            {":now": {"N": str(_ms(now))}, ":lease": {"M": {"owner": {"S": owner}, "until": {"N": str(_ms(until))}}}},
        ):
            return wanted
        busy = held(now, consistent=True)
        wanted = [s for s in wanted if s not in busy]
    return []


def release(shards: Sequence[str], owner: str) -> None:
    """Give back those of `shards` that `owner` still holds (a lease that expired and
    was taken over is left to its new owner)."""
    mine = list(dict.fromkeys(shards))
    for _ in range(ATTEMPTS):
        if not mine:
            return
        names_ = {f"#s{i}": shard for i, shard in enumerate(mine)}
        ours = " AND ".join(f"#s{i}.#owner = :owner" for i in range(len(mine)))
        if _update("REMOVE " + ", ".join(names_), ours, {**names_, "#owner": "owner"}, {":owner": {"S": owner}}):
            return
        current = _client().get_item(TableName=_table(), Key=_KEY, ConsistentRead=True).get("Item", {})
        mine = [s for s in mine if current.get(s, {}).get("M", {}).get("owner", {}).get("S") == owner]


_KEY = {"team_id": {"S": PROCESSOR_PARTITION}, "sk": {"S": LEASES_SK}}


def _update(expression: str, condition: str, names_: dict, values: dict) -> bool:
    # pynamodb has no typed API for dynamic attribute names; its botocore client does.
    try:
        _client().update_item(
            TableName=_table(),
            Key=_KEY,
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeNames=names_,
            ExpressionAttributeValues=values,
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == CONDITION_FAILED:
            return False
        raise
    return True


def _client():
    return ShardLeases._get_connection().connection.client


def _table() -> str:
    return ShardLeases.Meta.table_name


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
