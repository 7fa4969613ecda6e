"""The SAM template, transformed the way CloudFormation will, says what the design says."""
import json


def of_type(resources, kind):
    return {k: v for k, v in resources.items() if v["Type"] == kind}


def test_stream_mapping_reports_partial_failures_and_ends_in_a_queue(resources):
    (mapping,) = of_type(resources, "AWS::Lambda::EventSourceMapping").values()
    props = mapping["Properties"]
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BisectBatchOnFunctionError"] is True
    assert 0 < props["MaximumRetryAttempts"] <= 10
    assert 60 <= props["MaximumRecordAgeInSeconds"] <= 86400
    assert props["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": "EnrollmentFailureQueue.Arn"}
    assert props["EventSourceArn"] == {"Fn::GetAtt": "ContactsTable.StreamArn"}


def test_contacts_table_streams_both_images(resources):
    spec = resources["ContactsTable"]["Properties"]["StreamSpecification"]
    assert spec["StreamViewType"] == "NEW_AND_OLD_IMAGES"


def test_runs_table_has_the_sharded_due_index(resources):
    props = resources["RunsTable"]["Properties"]
    (due,) = [i for i in props["GlobalSecondaryIndexes"] if i["IndexName"] == "due"]
    assert [k["AttributeName"] for k in due["KeySchema"]] == ["due_shard", "next_step_at"]


def test_every_table_has_point_in_time_recovery(resources):
    for name, table in of_type(resources, "AWS::DynamoDB::Table").items():
        assert table["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], name


def test_functions_run_python313_on_arm64(resources):
    for name, function in of_type(resources, "AWS::Lambda::Function").items():
        assert function["Properties"]["Runtime"] == "python3.13", name
        assert function["Properties"]["Architectures"] == ["arm64"], name


def test_processor_fires_every_minute(resources):
    rules = of_type(resources, "AWS::Events::Rule")
    schedules = [r["Properties"]["ScheduleExpression"] for r in rules.values() if "ScheduleExpression" in r["Properties"]]
    assert schedules == ["rate(1 minute)"]


def test_stream_read_rights_name_the_contacts_stream_only(resources):
    role = resources["EnrollmentFunctionRole"]["Properties"]
    assert not any("DynamoDBExecutionRole" in json.dumps(arn) for arn in role["ManagedPolicyArns"])
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    (stream,) = [s for s in statements if "dynamodb:GetRecords" in s["Action"]]
    assert stream["Resource"] == {"Fn::GetAtt": "ContactsTable.StreamArn"}


# Actions IAM cannot scope to a resource: "*" is their only valid form.
UNSCOPABLE = {"dynamodb:ListStreams"}


def test_no_policy_grants_a_wildcard_resource(resources):
    for name, role in of_type(resources, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                if set(actions) <= UNSCOPABLE:
                    continue
                targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                assert "*" not in targets, f"{name}: {statement}"


def test_processor_may_send_raw_email(resources):
    # SES authorizes SendEmail with Raw content (ours: List-Unsubscribe headers) as SendRawEmail.
    role = json.dumps(resources["ProcessorFunctionRole"])
    assert "ses:SendEmail" in role and "ses:SendRawEmail" in role


def test_ses_events_reach_their_function_through_eventbridge(resources):
    destination = resources["EmailEventsDestination"]["Properties"]
    assert destination["ConfigurationSetName"] == {"Ref": "EmailConfigurationSet"}
    assert {"delivery", "bounce", "complaint"} <= set(destination["EventDestination"]["MatchingEventTypes"])
    (rule,) = [r for r in of_type(resources, "AWS::Events::Rule").values() if "EventPattern" in r["Properties"]]
    assert rule["Properties"]["EventPattern"]["source"] == ["aws.ses"]
    tags = rule["Properties"]["EventPattern"]["detail"]["mail"]["tags"]
    assert tags["ses:configuration-set"] == [{"Ref": "EmailConfigurationSet"}]  # this stack's emails only
    assert rule["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": ["SesEventsFunction", "Arn"]}
    assert resources["SesEventsFunction"]["Properties"]["DeadLetterConfig"]["TargetArn"] == {
        "Fn::GetAtt": "SesEventsFailureQueue.Arn"}
