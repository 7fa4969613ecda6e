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
    # 25 contacts x 2 Welcome emails; 3 deals x (1 to the owner + 1 to each of its 2 contacts)
    assert "Emails sent (59)" in out and "Welcome, Ada!" in out and "Checking in" in out
    assert "New deal: Enigma audit" in out and "Our proposal" in out and "kim@dripline.example" in out
    assert "Tasks (28)" in out and "Intro call" in out and "Chase COBOL migration" in out
    assert "Deals (3)" in out and "deal pipeline: runs total 3, pending 0, running 0, completed 3" in out
    assert "Webhooks received (25): 25 signatures verified, 25 distinct Idempotency-Keys" in out
    assert "Runs by status (25)" in out and "completed" in out
    assert "Pipeline stats" in out and "completion rate 100%" in out
