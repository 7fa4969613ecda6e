"""The emulator's partitioned Query (dripline_local.moto_indexes) answers exactly as moto's
own full-table scan does.

Random writes (PutItem, UpdateItem that moves items between index partitions or out of a
sparse index, DeleteItem, BatchWriteItem, TransactWriteItems that commit or roll back)
are interleaved with random queries on the table and on two indexes (hash + range,
hash-only; ALL, KEYS_ONLY and INCLUDE projections) with every key condition, both
directions, limits, filters and projections, paginated to the end. Each query is asked
twice at the same state: through the partitions, and through moto's unpatched scan
(`bypassed()`); pages, counts and LastEvaluatedKeys must be identical.
"""
from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from dripline_local.moto_indexes import bypassed, index_queries
from dripline_local.moto_lock import serialise_dynamodb

TABLE = "things"
PKS = ["a", "b", "c"]
SKS = ["s1", "s2", "s3", "s10", "t1", "t2"]
GROUPS = ["g1", "g2", "g3"]


@pytest.fixture(scope="module", autouse=True)
def _patched():
    serialise_dynamodb()
    index_queries()


def _create(client) -> None:
    client.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": kind}
            for name, kind in (("pk", "S"), ("sk", "S"), ("grp", "S"), ("rank", "N"), ("tag", "S"))
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {  # sparse, hash + range, like the `due` index
                "IndexName": "by_group",
                "KeySchema": [{"AttributeName": "grp", "KeyType": "HASH"}, {"AttributeName": "rank", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["note"]},
            },
            {  # hash only
                "IndexName": "by_tag",
                "KeySchema": [{"AttributeName": "tag", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                "IndexName": "by_group_all",
                "KeySchema": [{"AttributeName": "grp", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
    )


keys = st.fixed_dictionaries({"pk": st.sampled_from(PKS), "sk": st.sampled_from(SKS)})
ranks = st.integers(min_value=-3, max_value=6)


@st.composite
def items(draw):
    item = {"pk": {"S": draw(st.sampled_from(PKS))}, "sk": {"S": draw(st.sampled_from(SKS))}}
    if draw(st.booleans()):
        item["grp"] = {"S": draw(st.sampled_from(GROUPS))}
    if draw(st.booleans()):
        item["rank"] = {"N": str(draw(ranks))}
    if draw(st.booleans()):
        item["tag"] = {"S": draw(st.sampled_from(["x", "y"]))}
    item["note"] = {"S": draw(st.sampled_from(["n1", "n2", "n3"]))}
    item["qty"] = {"N": str(draw(st.integers(min_value=0, max_value=9)))}
    return item


def _key(k):
    return {"pk": {"S": k["pk"]}, "sk": {"S": k["sk"]}}


updates = st.sampled_from(
    [
        ("SET grp = :g", {":g": {"S": "g1"}}),
        ("SET grp = :g", {":g": {"S": "g2"}}),
        ("SET grp = :g, #r = :r", {":g": {"S": "g3"}, ":r": {"N": "2"}}),
        ("REMOVE grp", {}),
        ("SET #r = :r", {":r": {"N": "5"}}),
        ("REMOVE #r", {}),
        ("SET tag = :t", {":t": {"S": "y"}}),
        ("REMOVE tag", {}),
        ("ADD qty :one", {":one": {"N": "1"}}),
    ]
)
writes = st.one_of(
    st.tuples(st.just("put"), items(), st.booleans()),
    st.tuples(st.just("update"), keys, updates, st.booleans()),
    st.tuples(st.just("delete"), keys),
    st.tuples(st.just("batch"), st.lists(st.one_of(items(), keys), min_size=1, max_size=4)),
    st.tuples(st.just("transact"), st.lists(st.tuples(keys, updates), min_size=1, max_size=3), st.booleans()),
)


def _write(client, op) -> None:
    kind = op[0]
    try:
        if kind == "put":
            _, item, only_new = op
            extra = {"ConditionExpression": "attribute_not_exists(pk)"} if only_new else {}
            client.put_item(TableName=TABLE, Item=item, **extra)
        elif kind == "update":
            _, key, (expression, values), only_existing = op
            extra = {"ConditionExpression": "attribute_exists(pk)"} if only_existing else {}
            client.update_item(
                TableName=TABLE, Key=_key(key), UpdateExpression=expression,
                **({"ExpressionAttributeValues": values} if values else {}),
                **({"ExpressionAttributeNames": {"#r": "rank"}} if "#r" in expression else {}),
                **extra,
            )
        elif kind == "delete":
            client.delete_item(TableName=TABLE, Key=_key(op[1]))
        elif kind == "batch":
            requests, seen = [], set()
            for entry in op[1]:
                key = (entry["pk"]["S"], entry["sk"]["S"]) if "note" in entry else (entry["pk"], entry["sk"])
                if key in seen:
                    continue
                seen.add(key)
                requests.append({"PutRequest": {"Item": entry}} if "note" in entry else {"DeleteRequest": {"Key": _key(entry)}})
            client.batch_write_item(RequestItems={TABLE: requests})
        elif kind == "transact":
            _, changes, fail = op
            transaction, seen = [], set()
            for key, (expression, values) in changes:
                if (key["pk"], key["sk"]) in seen:
                    continue
                seen.add((key["pk"], key["sk"]))
                update = {"TableName": TABLE, "Key": _key(key), "UpdateExpression": expression}
                if values:
                    update["ExpressionAttributeValues"] = values
                if "#r" in expression:
                    update["ExpressionAttributeNames"] = {"#r": "rank"}
                transaction.append({"Update": update})
            if fail:  # the last one's condition fails: the whole transaction rolls back
                transaction[-1]["Update"]["ConditionExpression"] = "attribute_exists(never)"
            client.transact_write_items(TransactItems=transaction)
    except ClientError as error:
        assert error.response["Error"]["Code"] in {"ConditionalCheckFailedException", "TransactionCanceledException"}


@st.composite
def queries(draw):
    index = draw(st.sampled_from([None, "by_group", "by_tag", "by_group_all"]))
    names, values = {}, {}
    if index is None:
        condition = "pk = :h"
        values[":h"] = {"S": draw(st.sampled_from(PKS))}
        range_name, range_kind = "sk", "S"
    elif index == "by_tag":
        condition = "tag = :h"
        values[":h"] = {"S": draw(st.sampled_from(["x", "y", "z"]))}
        range_name = None
    else:
        condition = "grp = :h"
        values[":h"] = {"S": draw(st.sampled_from(GROUPS))}
        range_name, range_kind = ("rank", "N") if index == "by_group" else ("sk", "S")
    if range_name is not None:
        operator = draw(st.sampled_from([None, "=", "<", "<=", ">", ">=", "between", "begins_with"]))
        if range_kind == "N" and operator == "begins_with":
            operator = None
        if operator is not None:
            names["#k"] = range_name

            def value():
                return {"N": str(draw(ranks))} if range_kind == "N" else {"S": draw(st.sampled_from(SKS + ["s", "t", "u"]))}

            if operator == "between":
                low, high = sorted([value(), value()], key=lambda v: int(v["N"]) if "N" in v else v["S"])
                values.update({":lo": low, ":hi": high})
                condition += " AND #k BETWEEN :lo AND :hi"
            elif operator == "begins_with":
                values[":p"] = {"S": draw(st.sampled_from(["s", "t", "s1"]))}
                condition += " AND begins_with(#k, :p)"
            else:
                values[":r"] = value()
                condition += f" AND #k {operator} :r"
    request = {"TableName": TABLE, "KeyConditionExpression": condition, "ScanIndexForward": draw(st.booleans())}
    if index:
        request["IndexName"] = index
    if draw(st.booleans()):
        request["Limit"] = draw(st.integers(min_value=1, max_value=4))
    if draw(st.booleans()):
        request["FilterExpression"] = "#s >= :min"
        names["#s"] = "qty"
        values[":min"] = {"N": str(draw(st.integers(min_value=0, max_value=9)))}
    if draw(st.booleans()):
        request["ProjectionExpression"] = "pk, sk, note"
    if draw(st.booleans()):
        request["Select"] = "COUNT"
        request.pop("ProjectionExpression", None)
    if names:
        request["ExpressionAttributeNames"] = names
    request["ExpressionAttributeValues"] = values
    return request


def _pages(client, request) -> list[dict]:
    pages, start = [], None
    while True:
        page = client.query(**request, **({"ExclusiveStartKey": start} if start else {}))
        page.pop("ResponseMetadata")
        pages.append(page)
        start = page.get("LastEvaluatedKey")
        if not start or len(pages) > 40:
            return pages


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(writes, queries()), min_size=1, max_size=40), st.lists(queries(), min_size=3, max_size=8))
def test_partitioned_queries_answer_as_motos_scan(operations, final_queries):
    # given random writes interleaved with queries
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        _create(client)
        for op in [*operations, *final_queries]:
            if isinstance(op, tuple):
                _write(client, op)
                continue
            # when the same query is answered through the partitions and by moto's scan
            ours = _pages(client, op)
            with bypassed():
                motos = _pages(client, op)
            # then every page is identical
            assert ours == motos, op


def test_a_query_reads_only_its_partition():
    """Not a timing: moto's full listing of the table is never built for a keyed query."""
    from moto.dynamodb.models.table import Table

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        _create(client)
        for n in range(30):
            client.put_item(TableName=TABLE, Item={"pk": {"S": f"p{n}"}, "sk": {"S": "s"}, "grp": {"S": GROUPS[n % 3]}, "rank": {"N": str(n)}})
        listed = []
        original = Table.all_items

        def counting(self):
            result = original(self)
            listed.append(len(result))
            return result

        Table.all_items = counting
        try:
            page = client.query(TableName=TABLE, IndexName="by_group", KeyConditionExpression="grp = :g",
                                ExpressionAttributeValues={":g": {"S": "g1"}})
            table_page = client.query(TableName=TABLE, KeyConditionExpression="pk = :p",
                                      ExpressionAttributeValues={":p": {"S": "p4"}})
        finally:
            Table.all_items = original
        assert page["Count"] == 10 and table_page["Count"] == 1
        assert listed == [10, 1]  # the partition's items, not the table's 30
