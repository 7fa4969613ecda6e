"""moto as a server in its own process, for `make bench`: calls travel over HTTP as they
do to AWS, and the emulator's CPU is not the client's.

DynamoDB is made atomic per item (dripline_local.moto_lock), as DynamoDB is; moto's
per-request backend lookup is cached (dripline_local.moto_tuning).

    python -m benchmarks.moto_server      # prints the port, serves until stdin closes
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


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
    sys.stdin.read()  # until the parent closes our stdin (or dies)
    server.stop()


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

    def __exit__(self, *exc: object) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


if __name__ == "__main__":
    serve()
