"""`make bench`'s harness works end to end (tiny sizes; the numbers are the bench's job)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.e2e.conftest import ROOT, subprocess_env

pytestmark = pytest.mark.e2e


def test_a_quick_finished_runs_row_meters_ours_and_the_floor(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run(
        [sys.executable, "-m", "benchmarks.step_path", "--quick", "--only", "finished", "--out", str(out)],
        cwd=ROOT, env=subprocess_env(), check=True, capture_output=True, timeout=300,
    )
    (row,) = json.loads(out.read_text())["rows"]
    steps = row["units"]
    assert steps == 16  # every due run of the tick sent its email
    assert row["ours"]["calls_by_operation"]["sesv2:SendEmail"] == 1.0
    floor = row["floor"]
    # The floor per step: claim + finish + SendEmail, and 8 shard queries shared by 16 steps.
    assert floor["calls_by_operation"] == {"dynamodb:Query": 0.5, "dynamodb:UpdateItem": 2.0, "sesv2:SendEmail": 1.0}
    # Claim 1, finish 1 + its due-index entry deleted 1.
    assert floor["write_units"] == 3.0
    assert row["ours"]["cpu_ms"] > 0 and row["ours_over_floor"]["calls"] > 1
