"""The dashboard and the alarms in infra/template.yaml chart and watch metrics the code
really emits, with the dimensions it emits them with (dripline.observability.METRICS),
or AWS's own metrics of resources in the stack."""
import ast
import json
import re
from pathlib import Path

import pytest

from dripline import email_events, processor
from dripline.domain import Outcome
from dripline.observability import METRICS
from dripline_local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
CODE = [*ROOT.joinpath("layers/common/dripline").rglob("*.py"), *ROOT.joinpath("functions").rglob("*.py")]

# AWS metrics the template may name, and the dimension that must name one of our resources.
AWS_METRICS = {
    ("AWS/Lambda", "Errors"): ("FunctionName", "AWS::Serverless::Function"),
    ("AWS/Lambda", "Throttles"): ("FunctionName", "AWS::Serverless::Function"),
    ("AWS/Lambda", "Duration"): ("FunctionName", "AWS::Serverless::Function"),
    ("AWS/Lambda", "IteratorAge"): ("FunctionName", "AWS::Serverless::Function"),
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible"): ("QueueName", "AWS::SQS::Queue"),
    ("AWS/SES", "Reputation.BounceRate"): (None, None),
    ("AWS/SES", "Reputation.ComplaintRate"): (None, None),
}
# Queues SAM adds in the transform (the SES events rule's dead-letter queue).
SAM_QUEUES = {"SesEventsFunctionSesEventsQueue"}


def emitted_by_the_code() -> set[str]:
    """Metric names the source emits: literal `name="..."` arguments, and the names the
    processor and the SES events handler build from their outcomes."""
    names: set[str] = set()
    for path in CODE:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                for kw in node.keywords:
                    if func == "add_metric" and kw.arg == "name" and isinstance(kw.value, ast.Constant):
                        names.add(kw.value.value)
                if func == "append" and node.args and isinstance(node.args[0], ast.Constant) and "processor.py" in path.name:
                    names.add(node.args[0].value)  # a step's events: DeliveryUnknown, EmailsSent
                if func == "add_metric_by" and len(node.args) >= 3 and isinstance(node.args[2], ast.Constant):
                    names.add(node.args[2].value)
    names |= set(processor.OUTCOME_METRICS.values())
    names |= {f"Steps{o.value.capitalize()}" for o in Outcome}  # processor: f"Steps{outcome}"
    names |= {f"Emails{kind.title()}" for kind in email_events.COUNTERS.values()}  # ses_events
    source = ROOT.joinpath("layers/common/dripline/email_events.py").read_text(encoding="utf-8")
    names |= {f"EmailEvents{o.title().replace('_', '')}" for o in re.findall(r'EmailEventReport\("(\w+)"', source)}
    return names


def _sub_text(value) -> str:
    """The text of a !Sub, its ${...} references kept as they are."""
    return value["Fn::Sub"] if isinstance(value, dict) else value


def _resolve(value, resources) -> str:
    """A dimension value: a literal, or the logical id a Ref / GetAtt / ${X.Attr} names."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return (target.split(".") if isinstance(target, str) else target)[0]
    match = re.fullmatch(r"\$\{(\w+)(?:\.\w+)?\}", value)
    return match.group(1) if match else value


def dashboard_metrics():
    """(namespace, name, {dimension: value}) of every metric a dashboard widget draws,
    including those a SEARCH expression finds."""
    template = load_template()
    body = _sub_text(template["Resources"]["Dashboard"]["Properties"]["DashboardBody"])
    # ${Param} and ${Resource.Attr} are CloudFormation's; the rest is JSON.
    widgets = json.loads(re.sub(r"\$\{BacklogAlarmThreshold\}", "1000", body))["widgets"]
    found = []
    for widget in widgets:
        for line in widget["properties"]["metrics"]:
            if isinstance(line[0], dict):
                for namespace, dims, name in re.findall(r"\{(\w+),([\w,]+)\} MetricName=\\?\"(\w+)", line[0]["expression"]):
                    found.append((namespace, name, dict.fromkeys(dims.split(","), "*")))
                continue
            parts = [p for p in line if not isinstance(p, dict)]
            assert "." not in parts, "spell every metric out (no '.' shorthand): the test reads them"
            namespace, name, *dims = parts
            found.append((namespace, name, dict(zip(dims[::2], dims[1::2]))))
    return widgets, found


def alarm_metrics():
    """(alarm, namespace, name, {dimension: value}) of every metric an alarm reads."""
    found = []
    for logical_id, resource in load_template()["Resources"].items():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        props = resource["Properties"]
        stats = [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
        if "MetricName" in props:
            stats.append(props)
        assert stats, logical_id
        for metric in stats:
            dims = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
            found.append((logical_id, metric["Namespace"], metric["MetricName"], dims))
    return found


def _check(namespace, name, dims, resources, where):
    if namespace == "Dripline":
        assert name in METRICS, f"{where}: {name} is not a metric the code declares"
        services, dimension_sets = METRICS[name]
        assert tuple(sorted(dims)) in {tuple(sorted(d)) for d in dimension_sets}, f"{where}: {name} by {sorted(dims)}"
        assert dims["service"] in services or dims["service"] == "*", f"{where}: {name} is not emitted by {dims['service']}"
        return
    assert (namespace, name) in AWS_METRICS, f"{where}: {namespace} {name}"
    dimension, resource_type = AWS_METRICS[(namespace, name)]
    if dimension is None:
        assert dims == {}, where
        return
    target = _resolve(dims[dimension], resources)
    assert target in SAM_QUEUES or resources[target]["Type"] == resource_type, f"{where}: {dimension}={target}"


def test_every_declared_metric_is_emitted_by_the_code():
    assert set(METRICS) <= emitted_by_the_code(), set(METRICS) - emitted_by_the_code()


def test_the_code_emits_no_metric_it_does_not_declare():
    assert emitted_by_the_code() <= set(METRICS), emitted_by_the_code() - set(METRICS)


def test_every_dashboard_metric_is_one_the_code_or_aws_emits():
    resources = load_template()["Resources"]
    _, found = dashboard_metrics()
    assert len(found) > 30
    for namespace, name, dims in found:
        _check(namespace, name, dims, resources, f"dashboard {name}")


def test_every_alarm_metric_is_one_the_code_or_aws_emits():
    resources = load_template()["Resources"]
    for alarm, namespace, name, dims in alarm_metrics():
        _check(namespace, name, {k: _resolve(v, resources) for k, v in dims.items()}, resources, alarm)


def test_the_dashboard_charts_what_the_issue_lists():
    widgets, found = dashboard_metrics()
    names = {name for _, name, _ in found}
    assert {"StepsSucceeded", "StepsFailed", "RunsEnrolled", "RunsCompleted", "StepLateness", "DueRunsLeft"} <= names
    assert {"EmailsSent", "EmailsDelivered", "EmailsBounced", "EmailsComplained", "EmailsOpened", "EmailsClicked"} <= names
    assert {"ApproximateNumberOfMessagesVisible", "IteratorAge", "Errors", "Throttles", "Duration"} <= names
    by_title = {w["properties"]["title"]: w["properties"] for w in widgets}
    rate = by_title["Step success rate (%)"]["metrics"][0][0]["expression"]
    assert "succeeded" in rate and "failed" in rate  # metric math over the two counters
    lateness = {m[-1]["stat"] for m in by_title["Step lateness (s)"]["metrics"]}
    assert lateness == {"p50", "p99"}
    assert any(name == "StepsFailed" and "action_type" in dims for _, name, dims in found)
    # every dead-letter queue of the stack is charted (SAM's rule queue included)
    queues = {_resolve(d["QueueName"], {}) for _, n, d in found if n == "ApproximateNumberOfMessagesVisible"}
    assert queues == {k for k, r in load_template()["Resources"].items() if r["Type"] == "AWS::SQS::Queue"} | SAM_QUEUES
    functions = {_resolve(d["FunctionName"], {}) for _, n, d in found if n == "Errors"}
    assert functions == {k for k, r in load_template()["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}


def _alarms():
    return {k: r["Properties"] for k, r in load_template()["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}


@pytest.mark.parametrize(
    "alarm, metric, threshold",
    [
        ("ProcessorErrorsAlarm", "Errors", 0),
        ("BacklogAlarm", "DueRunsLeft", {"Ref": "BacklogAlarmThreshold"}),
        ("LatenessAlarm", "StepLateness", 120),
        ("StepFailureRateAlarm", "StepsFailed", 5),
        ("DeliveryUnknownAlarm", "DeliveryUnknown", 0),
        ("StreamIteratorAgeAlarm", "IteratorAge", 300000),
        ("SesBounceRateAlarm", "Reputation.BounceRate", 0.04),
        ("SesComplaintRateAlarm", "Reputation.ComplaintRate", 0.0008),
    ],
)
def test_each_alarm_the_issue_lists_has_its_threshold(alarm, metric, threshold):
    props = _alarms()[alarm]
    assert props["Threshold"] == threshold
    assert props["ComparisonOperator"] == "GreaterThanThreshold"
    assert metric in {name for a, _, name, _ in alarm_metrics() if a == alarm}


def test_the_backlog_alarm_waits_five_minutes_and_lateness_is_the_p99():
    backlog, lateness = _alarms()["BacklogAlarm"], _alarms()["LatenessAlarm"]
    assert backlog["Period"] * backlog["EvaluationPeriods"] == 300 and backlog["DatapointsToAlarm"] == 5
    assert lateness["ExtendedStatistic"] == "p99"


def test_every_dead_letter_queue_has_an_alarm_and_every_alarm_notifies_the_topic():
    queues = {k for k, r in load_template()["Resources"].items() if r["Type"] == "AWS::SQS::Queue"} | SAM_QUEUES
    watched = {_resolve(d["QueueName"], {}) for _, ns, _, d in alarm_metrics() if ns == "AWS/SQS"}
    assert watched == queues
    for name, props in _alarms().items():
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert props["TreatMissingData"] == "notBreaching", name


def test_the_email_subscription_exists_only_when_an_address_is_given(resources):
    template = load_template()
    subscription = template["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert template["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""
    assert subscription["Properties"] == {"TopicArn": {"Ref": "AlarmTopic"}, "Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}
    assert "Dashboard" in template["Outputs"]["DashboardUrl"]["Value"]["Fn::Sub"]
    assert resources["SesEventsFunctionSesEventsQueue"]["Type"] == "AWS::SQS::Queue"  # the queue SAM_QUEUES names


def test_metric_dimensions_are_low_cardinality():
    # `service` and `action_type` only: a handful of values each, never an id.
    for name, (_, dimension_sets) in METRICS.items():
        for dims in dimension_sets:
            assert set(dims) <= {"service", "action_type"}, name


def test_every_function_log_group_expires():
    template = load_template()
    groups = {k: r for k, r in template["Resources"].items() if r["Type"] == "AWS::Logs::LogGroup"}
    for name, function in template["Resources"].items():
        if function["Type"] == "AWS::Serverless::Function":
            group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
            assert groups[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
    assert template["Parameters"]["LogRetentionDays"]["Default"] == 30
