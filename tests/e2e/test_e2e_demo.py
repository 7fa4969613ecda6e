"""`dripline demo` runs to the end and prints what happened."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_runs_to_the_end(child_env):
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "dripline_local.cli", "demo"], cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=180
    )
    elapsed = time.monotonic() - started
    print(f"\ndripline demo wall time: {elapsed:.1f} s")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Creating contacts" in out and "25/25" in out
    assert "Emails sent (50)" in out and "Welcome, Ada!" in out and "Checking in" in out
    assert "Tasks (25)" in out and "Intro call" in out
    assert "Webhooks received (25): 25 signatures verified, 25 distinct Idempotency-Keys" in out
    assert "Runs by status (25)" in out and "completed" in out
    assert "Pipeline stats" in out and "completion rate 100%" in out
