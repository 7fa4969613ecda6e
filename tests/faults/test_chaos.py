"""The chaos run (dripline_local.chaos) on a small seed set: CI's share of it.

The README's 2,000-contact run is `make chaos CONTACTS=2000`; `pytest -m chaos_slow`
runs a bigger set here too.
"""
import pytest

from dripline_local.chaos import run_chaos


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chaos_seed_set_keeps_every_invariant(seed):
    report = run_chaos(seed, contacts=12, fault_rate=0.1, kill_rate=0.05)
    print(report.line())
    assert report.faults > 0 and report.emails > 0
    assert report.violations == 0, report.details[:20]


@pytest.mark.chaos_slow
@pytest.mark.parametrize("seed", [11, 12])
def test_chaos_bigger_run_keeps_every_invariant(seed):
    report = run_chaos(seed, contacts=300, fault_rate=0.1)
    print(report.line())
    assert report.violations == 0, report.details[:20]
