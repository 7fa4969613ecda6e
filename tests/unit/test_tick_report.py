"""What a tick reports about lateness (the StepLatenessP99 metric)."""
from dripline.processor import RunOutcome, TickReport


def test_lateness_p99_is_the_nearest_rank_of_the_ticks_steps():
    report = TickReport()
    for seconds in range(1, 201):  # 1 s .. 200 s late
        report.add(RunOutcome("pending", ("StepsSucceeded",), float(seconds)))
    report.add(RunOutcome("lost"))  # a lost claim ran no step: no lateness

    assert report.lateness_p99() == 198.0
    assert report.outcomes == {"pending": 200, "lost": 1} and report.events["StepsSucceeded"] == 200


def test_a_tick_without_steps_has_no_lateness():
    assert TickReport().lateness_p99() == 0.0


def test_a_tick_emits_each_steps_lateness_its_backlog_and_failures_by_action_type(monkeypatch, capsys):
    """The EMF the dashboard and the alarms read: StepLateness once per step (CloudWatch
    takes p50/p99 over all of them), DueRunsLeft, and StepsFailed on a line of its own
    with the action_type dimension."""
    import json

    from dripline.observability import metrics

    metrics.clear_metrics()  # what earlier tests' handlers added (disabled metrics are never flushed)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    report = TickReport(due=5, left=3)
    report.add(RunOutcome("pending", ("StepsSucceeded", "EmailsSent"), 1.5))
    report.add(RunOutcome("pending", ("StepsSucceeded",), 61.0))
    report.add(RunOutcome("failed", ("StepsFailed",), 2.0, "send_email"))
    report.add(RunOutcome("failed", ("StepsFailed",), 4.0, "create_task"))
    report.add(RunOutcome("failed", ("StepsFailed",), 3.0, "send_email"))

    report.emit_metrics()
    metrics.flush_metrics()

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    by_action = {line["action_type"]: line["StepsFailed"] for line in lines if "action_type" in line}
    assert by_action == {"send_email": [2.0], "create_task": [1.0]}
    for line in (x for x in lines if "action_type" in x):
        assert [sorted(d) for d in line["_aws"]["CloudWatchMetrics"][0]["Dimensions"]] == [["action_type", "service"]]
    (tick,) = [line for line in lines if "DueRunsLeft" in line]
    assert tick["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
    one = {name: value[0] if isinstance(value, list) and len(value) == 1 else value for name, value in tick.items()}
    assert (one["DueRuns"], one["DueRunsLeft"], one["StepsFailed"], one["StepsSucceeded"]) == (5.0, 3.0, 3.0, 2.0)
    assert sorted(tick["StepLateness"]) == [1.5, 2.0, 3.0, 4.0, 61.0]
    assert one["RunsFailed"] == 3.0


def test_a_metric_the_dashboard_cannot_know_is_refused():
    import pytest

    from dripline.observability import add_metric_by, metrics

    with pytest.raises(ValueError, match="not declared"):
        metrics.add_metric(name="StepsFialed", unit="Count", value=1)
    with pytest.raises(ValueError, match="not declared"):
        add_metric_by("run_id", "r1", "StepsFailed", 1)  # an id is never a dimension
