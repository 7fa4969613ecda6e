"""The floor: the least a step (or an enrollment) can cost, executed directly with boto3.

A step is a claim (conditional update), the action (SES SendEmail), a finish
(conditional update) and its share of the due-index query that found it; a run is an
item of five small attributes in a table with one KEYS_ONLY due index. An enrollment
is a read of the contact, one query of its runs and one conditional put per run. The
floor carries none of Dripline's history, stats, leases or listings: our ÷ floor says
what those cost.
"""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

TABLE = "bench-floor"
INDEX = "due"
SENDER = "no-reply@example.com"


def create_table(dynamodb: Any) -> None:
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "sh", "at")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": INDEX,
                "KeySchema": [{"AttributeName": "sh", "KeyType": "HASH"}, {"AttributeName": "at", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def seed_due(dynamodb: Any, count: int, due_at: datetime, shards: int) -> None:
    """`count` runs due at `due_at`, spread over the shards (BatchWriteItem)."""
    items = [
        {
            "pk": {"S": f"run#{uuid.uuid4().hex}"},
            "sk": {"S": "run"},
            "sh": {"S": f"due#{i % shards}"},
            "at": {"S": _iso(due_at)},
            "st": {"S": "pending"},
            "to": {"S": f"floor{i}@example.com"},
        }
        for i in range(count)
    ]
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        dynamodb.batch_write_item(RequestItems={TABLE: batch})


def run_steps(dynamodb: Any, sesv2: Any, now: datetime, shards: int, workers: int, *, last_step: bool, delay: int = 0) -> int:
    """Execute every due floor run once: query each shard, then claim, send, finish on
    `workers` threads. `last_step` completes the run (it leaves the due index); otherwise
    the next step is scheduled `delay` seconds on (its index entry moves). Returns steps."""

    def due(shard: str) -> list[dict]:
        items, start = [], None
        while True:
            page = dynamodb.query(
                TableName=TABLE,
                IndexName=INDEX,
                KeyConditionExpression="sh = :s AND #at <= :now",
                ExpressionAttributeNames={"#at": "at"},
                ExpressionAttributeValues={":s": {"S": shard}, ":now": {"S": _iso(now)}},
                **({"ExclusiveStartKey": start} if start else {}),
            )
            items += page["Items"]
            start = page.get("LastEvaluatedKey")
            if not start:
                return items

    def step(key: dict) -> bool:
        lease = uuid.uuid4().hex
        claimed = dynamodb.update_item(
            TableName=TABLE,
            Key={"pk": key["pk"], "sk": key["sk"]},
            UpdateExpression="SET st = :running, lease = :lease",
            ConditionExpression="st = :pending AND #at <= :now",
            ExpressionAttributeNames={"#at": "at"},
            ExpressionAttributeValues={
                ":running": {"S": "running"}, ":pending": {"S": "pending"}, ":lease": {"S": lease}, ":now": {"S": _iso(now)},
            },
            ReturnValues="ALL_NEW",
        )["Attributes"]
        sesv2.send_email(
            FromEmailAddress=SENDER,
            Destination={"ToAddresses": [claimed["to"]["S"]]},
            Content={"Simple": {"Subject": {"Data": "Hello"}, "Body": {"Text": {"Data": "Hello from the floor"}}}},
        )
        if last_step:
            update = "SET st = :done REMOVE lease, sh, #at"
            values = {":done": {"S": "completed"}, ":lease": {"S": lease}}
        else:
            update = "SET st = :pending, #at = :next REMOVE lease"
            values = {":pending": {"S": "pending"}, ":next": {"S": _iso(now + timedelta(seconds=delay))}, ":lease": {"S": lease}}
        dynamodb.update_item(
            TableName=TABLE,
            Key={"pk": key["pk"], "sk": key["sk"]},
            UpdateExpression=update,
            ConditionExpression="lease = :lease",
            ExpressionAttributeNames={"#at": "at"},
            ExpressionAttributeValues=values,
        )
        return True

    names = [f"due#{n}" for n in range(shards)]
    with ThreadPoolExecutor(max_workers=min(8, shards)) as pool:
        keys = [key for page in pool.map(due, names) for key in page]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return sum(pool.map(step, keys))


def enroll(dynamodb: Any, contacts_table: str, team: str, contact_ids: list[str], pipelines: int, now: datetime, shards: int) -> int:
    """Per contact: read it, query its runs, put one run per automatic pipeline
    (conditional: at most one). Returns the runs created."""
    created = 0
    for contact_id in contact_ids:
        dynamodb.get_item(TableName=contacts_table, Key={"team_id": {"S": team}, "contact_id": {"S": contact_id}}, ConsistentRead=True)
        owner = f"contact#{contact_id}"
        dynamodb.query(
            TableName=TABLE, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": owner}}, ConsistentRead=True
        )
        for p in range(pipelines):
            dynamodb.put_item(
                TableName=TABLE,
                Item={
                    "pk": {"S": owner},
                    "sk": {"S": f"pipeline{p}"},
                    # Its own shards: the step floor's queries never meet these runs.
                    "sh": {"S": f"enrolled#{(created + p) % shards}"},
                    "at": {"S": _iso(now)},
                    "st": {"S": "pending"},
                    "to": {"S": f"{contact_id}@example.com"},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        created += pipelines
    return created


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
