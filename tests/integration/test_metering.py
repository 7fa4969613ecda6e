"""The meter applies DynamoDB's sizing rules to what the calls wrote and read."""
from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from dripline_local.metering import Meter, item_size, read_units, value_size, write_units

BIG = "z" * 3000  # 3 KB: 3 write units, 1 read unit


def test_sizes_follow_dynamodbs_rules():
    assert value_size({"S": "héllo"}) == 6
    assert value_size({"N": "12345"}) == 4  # 5 significant digits: 3 bytes + 1
    assert value_size({"N": "-0.00100"}) == 2
    assert value_size({"BOOL": True}) == 1
    assert value_size({"L": [{"S": "ab"}, {"NULL": True}]}) == 3 + (1 + 2) + (1 + 1)
    assert value_size({"M": {"k": {"S": "v"}}}) == 3 + 1 + 1 + 1
    assert item_size({"pk": {"S": "a"}, "n": {"N": "7"}}) == (2 + 1) + (1 + 2)
    assert write_units(1024) == 1 and write_units(1025) == 2 and write_units(0) == 1
    assert read_units(4097, consistent=True) == 2 and read_units(10, consistent=False) == 0.5


@pytest.fixture
def table():
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "g", "AttributeType": "S"}],
            GlobalSecondaryIndexes=[
                {"IndexName": "all", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}], "Projection": {"ProjectionType": "ALL"}},
                {"IndexName": "keys", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}], "Projection": {"ProjectionType": "KEYS_ONLY"}},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield


def test_writes_count_the_table_and_each_index(table):
    with Meter() as meter:
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.put_item(TableName="t", Item={"pk": {"S": "a"}, "g": {"S": "x"}, "big": {"S": BIG}})
        put = meter.usage()
        # base 3 + ALL index 3 + KEYS_ONLY index 1
        assert put.write_units == {"t": 3, "t/index/all": 3, "t/index/keys": 1} and put.total_write_units == 7
        assert put.calls["dynamodb:PutItem"] == 1

        client.update_item(TableName="t", Key={"pk": {"S": "a"}}, UpdateExpression="SET note = :v",
                           ExpressionAttributeValues={":v": {"S": "1"}}, ReturnValues="ALL_NEW")
        unprojected = meter.usage() - put
        # base 3 + ALL index rewrite 3 + KEYS_ONLY untouched 0
        assert unprojected.write_units == {"t": 3, "t/index/all": 3}

        before = meter.usage()
        client.update_item(TableName="t", Key={"pk": {"S": "a"}}, UpdateExpression="SET g = :g",
                           ExpressionAttributeValues={":g": {"S": "y"}})
        moved = meter.usage() - before
        # base 3 + ALL delete 3 + put 3 + KEYS_ONLY delete 1 + put 1
        assert moved.write_units == {"t": 3, "t/index/all": 6, "t/index/keys": 2}

        before = meter.usage()
        with pytest.raises(client.exceptions.ConditionalCheckFailedException):
            client.put_item(TableName="t", Item={"pk": {"S": "a"}}, ConditionExpression="attribute_not_exists(pk)")
        refused = meter.usage() - before
        assert refused.write_units == {"t": 3} and refused.refused == {"dynamodb:PutItem": 1}  # paid, wasted


def test_reads_are_sized_per_item_or_page(table):
    client = boto3.client("dynamodb", region_name="us-east-1")
    for pk in "abc":
        client.put_item(TableName="t", Item={"pk": {"S": pk}, "g": {"S": "x"}, "big": {"S": BIG}})
    with Meter() as meter:
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.get_item(TableName="t", Key={"pk": {"S": "a"}}, ConsistentRead=True)  # 1
        client.get_item(TableName="t", Key={"pk": {"S": "nope"}})  # 0.5
        client.query(TableName="t", IndexName="all", KeyConditionExpression="g = :g",
                     ExpressionAttributeValues={":g": {"S": "x"}})  # 9 KB page: 3 units, eventual: 1.5
        client.batch_get_item(RequestItems={"t": {"Keys": [{"pk": {"S": "a"}}, {"pk": {"S": "b"}}, {"pk": {"S": "zz"}}]}})  # 3 x 0.5
        usage = meter.usage()
    assert usage.read_units["t"] == 1 + 0.5 + 1.5 + 1.5
    assert usage.calls == {"dynamodb:GetItem": 2, "dynamodb:Query": 1, "dynamodb:BatchGetItem": 1}
    assert usage.write_units == {}
