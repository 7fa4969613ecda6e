"""The SAM template, transformed the way CloudFormation will, says what the design says."""
import json


def of_type(resources, kind):
    return {k: v for k, v in resources.items() if v["Type"] == kind}


RECORD_TABLES = ("ContactsTable", "DealsTable")  # one per model type (README, "Model types")


def test_stream_mapping_reports_partial_failures_and_ends_in_a_queue(resources):
    mappings = of_type(resources, "AWS::Lambda::EventSourceMapping").values()
    by_stream = {m["Properties"]["EventSourceArn"]["Fn::GetAtt"]: m["Properties"] for m in mappings}
    assert set(by_stream) == {f"{table}.StreamArn" for table in RECORD_TABLES}
    props = by_stream["ContactsTable.StreamArn"]
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BisectBatchOnFunctionError"] is True
    assert 0 < props["MaximumRetryAttempts"] <= 10
    assert 60 <= props["MaximumRecordAgeInSeconds"] <= 86400
    assert props["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": "EnrollmentFailureQueue.Arn"}
    assert props["FunctionName"] == {"Ref": "EnrollmentFunction"}


def test_every_record_stream_is_read_with_the_contacts_streams_settings(resources):
    mappings = [m["Properties"] for m in of_type(resources, "AWS::Lambda::EventSourceMapping").values()]
    settings = [{k: v for k, v in props.items() if k != "EventSourceArn"} for props in mappings]
    assert len(settings) == len(RECORD_TABLES) and all(s == settings[0] for s in settings)


def test_record_tables_stream_both_images(resources):
    for table in RECORD_TABLES:
        spec = resources[table]["Properties"]["StreamSpecification"]
        assert spec["StreamViewType"] == "NEW_AND_OLD_IMAGES", table


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


def test_stream_read_rights_name_the_record_streams_only(resources):
    role = resources["EnrollmentFunctionRole"]["Properties"]
    assert not any("DynamoDBExecutionRole" in json.dumps(arn) for arn in role["ManagedPolicyArns"])
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    (stream,) = [s for s in statements if "dynamodb:GetRecords" in s["Action"]]
    assert stream["Resource"] == [{"Fn::GetAtt": f"{table}.StreamArn"} for table in RECORD_TABLES]


# Actions IAM cannot scope to a resource: "*" is their only valid form.
UNSCOPABLE = {"dynamodb:ListStreams"}


def test_no_policy_grants_a_wildcard_resource(resources):
    documents = [
        (name, policy["PolicyDocument"])
        for name, role in of_type(resources, "AWS::IAM::Role").items()
        for policy in role["Properties"].get("Policies", [])
    ] + [(name, p["Properties"]["PolicyDocument"]) for name, p in of_type(resources, "AWS::IAM::ManagedPolicy").items()]
    for name, document in documents:
        for statement in document["Statement"]:
            if set(actions_of(statement)) <= UNSCOPABLE:
                continue
            targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert "*" not in targets, f"{name}: {statement}"


def role_statements(resources, role_id):
    """Every statement a role grants: its inline policies and the managed ones it names."""
    role = resources[role_id]["Properties"]
    statements = [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    for arn in role.get("ManagedPolicyArns", []):
        if isinstance(arn, dict) and "Ref" in arn and arn["Ref"] in resources:
            statements += resources[arn["Ref"]]["Properties"]["PolicyDocument"]["Statement"]
    return statements


def actions_of(statement):
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


def test_processor_and_workers_may_send_raw_email(resources):
    # SES authorizes SendEmail with Raw content (ours: List-Unsubscribe headers) as SendRawEmail.
    for role in ("ProcessorFunctionRole", "ProcessorWorkerFunctionRole"):
        actions = {a for s in role_statements(resources, role) for a in actions_of(s)}
        assert {"ses:SendEmail", "ses:SendRawEmail"} <= actions, role


def test_the_processor_starts_workers_asynchronously_and_only_it_may(resources):
    env = resources["ProcessorFunction"]["Properties"]["Environment"]["Variables"]
    assert env["WORKER_FUNCTION"] == {"Ref": "ProcessorWorkerFunction"}
    assert env["MAX_RUNS_PER_TICK"] == {"Ref": "RunsPerInvocation"}
    (invoke,) = [s for s in role_statements(resources, "ProcessorFunctionRole") if "lambda:InvokeFunction" in actions_of(s)]
    assert invoke["Resource"] == {"Fn::GetAtt": "ProcessorWorkerFunction.Arn"}
    worker_actions = {a for s in role_statements(resources, "ProcessorWorkerFunctionRole") for a in actions_of(s)}
    assert not any(a.startswith("lambda:") for a in worker_actions)  # a worker starts nothing
    # The worker's lease outlives its timeout plus its time in Lambda's async queue.
    config = resources["ProcessorWorkerFunctionEventInvokeConfig"]["Properties"]
    worker = resources["ProcessorWorkerFunction"]["Properties"]
    assert config["MaximumRetryAttempts"] == 0
    assert int(env["SHARD_LEASE_SECONDS"]) >= worker["Timeout"] + config["MaximumEventAgeInSeconds"]
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": "ProcessorWorkerFailureQueue.Arn"}


def test_the_local_stack_finds_every_record_stream_in_the_template():
    """It starts one stream poller per event source (dripline_local.stack), configured from it."""
    from dripline_local.resources import TABLE_SETTINGS
    from dripline_local.template import stream_event_sources

    sources = stream_event_sources()
    assert set(sources) == set(RECORD_TABLES) and set(RECORD_TABLES) <= set(TABLE_SETTINGS)
    assert sources["DealsTable"]["BatchSize"] == sources["ContactsTable"]["BatchSize"]
