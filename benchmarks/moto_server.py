"""moto as a server in its own process, for `make bench`: calls travel over HTTP as they
do to AWS, and the emulator's CPU is not the client's.

DynamoDB is made atomic per item (dripline_local.moto_lock), as DynamoDB is; moto's
per-request backend lookup is cached (dripline_local.moto_tuning) and its queries read
only the queried partition (dripline_local.moto_indexes). werkzeug closes the connection
after every answer (AWS keeps it alive), so each call here pays a new connection: both
ours and the floor, on the client's CPU.

Seeding (never measured) has a side door: a JSON line on stdin puts items straight into a
table, without 4,000 HTTP BatchWriteItem round trips for 100k finished runs (no stream
records, as for items that were written long ago).

    python -m benchmarks.moto_server      # prints the port, serves until stdin closes
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"


def serve() -> None:
    from moto.server import ThreadedMotoServer

    from dripline_local.logs import quiet_library_noise
    from dripline_local.moto_indexes import index_queries
    from dripline_local.moto_lock import serialise_dynamodb
    from dripline_local.moto_tuning import cache_backend_lookup

    quiet_library_noise()
    serialise_dynamodb()
    index_queries()
    cache_backend_lookup()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    for line in sys.stdin:  # until the parent closes our stdin (or dies)
        command = json.loads(line)
        print(json.dumps({"put": _put_items(command["table"], command["items"])}), flush=True)
    server.stop()


def _put_items(table_name: str, items: list[dict[str, Any]]) -> int:
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict

    from dripline_local.moto_indexes import placed
    from dripline_local.moto_lock import lock

    with lock():
        table = dynamodb_backends[ACCOUNT][REGION].get_table(table_name)
        for attributes in items:
            hash_key = DynamoType(attributes[table.hash_key_attr])
            range_key = DynamoType(attributes[table.range_key_attr]) if table.range_key_attr else None
            # Item() re-sizes the whole item for every attribute it sets (moto's 400 KB
            # check): quadratic, and most of a 100k seeding. These items are small.
            item = Item.__new__(Item)
            item.hash_key, item.range_key = hash_key, range_key
            item.attrs = LimitedSizeDict()
            dict.update(item.attrs, {name: DynamoType(value) for name, value in attributes.items()})
            if range_key is None:
                table.items[hash_key] = item
            else:
                table.items[hash_key][range_key] = item
            placed(table, (hash_key, range_key))
    return len(items)


class MotoServer:
    """The server subprocess, as a context manager yielding its endpoint URL."""

    def __enter__(self) -> str:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.moto_server"],
            cwd=Path(__file__).resolve().parents[1],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        port = self.process.stdout.readline().strip()
        if not port.isdigit():
            self.process.kill()
            raise RuntimeError("the moto server did not start")
        return f"http://127.0.0.1:{port}"

    def put_items(self, table: str, items: list[dict[str, Any]]) -> None:
        """Seed `items` (DynamoDB JSON) into `table`, unmetered and without HTTP."""
        self.process.stdin.write(json.dumps({"table": table, "items": items}) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        if answer.get("put") != len(items):
            raise RuntimeError(f"the moto server did not seed {table}: {answer}")

    def __exit__(self, *exc: object) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


if __name__ == "__main__":
    serve()
