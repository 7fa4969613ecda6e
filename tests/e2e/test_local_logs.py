"""The local stack's handler output: each line names the handler that wrote it, and the
default file is this stack's own, appended to."""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import threading

from aws_lambda_powertools import Logger

from dripline_local.lambda_runtime import LambdaContext
from dripline_local.logs import ThreadRoutedStream, default_lambda_log_path, labelled
from dripline_local.stack import lambda_output_file


def context(name: str) -> LambdaContext:
    return LambdaContext(f"dripline-local-{name}", 512, f"arn:aws:lambda:us-east-1:123456789012:function:dripline-local-{name}", 60)


def test_concurrent_handlers_sharing_one_powertools_logger_each_name_themselves():
    # given one Powertools logger shared by two handlers, as in the local stack's process
    sink = io.StringIO()
    router = ThreadRoutedStream(main=io.StringIO(), other=sink)
    logger = Logger(service="dripline", logger_handler=logging.StreamHandler(router))
    both_started = threading.Barrier(2)

    def handler(name: str, service: str) -> None:
        ctx = context(name)
        with labelled(ctx, service):
            logger.structure_logs(append=True, function_name=ctx.function_name, function_request_id=ctx.aws_request_id)
            both_started.wait()  # the other handler's keys are now the logger's
            both_started.wait()
            logger.info(f"{name} line")
            print(json.dumps({"_aws": {"CloudWatchMetrics": []}, "service": "dripline", "M": [1]}))  # EMF, via print

    # when both run at once
    with contextlib.redirect_stdout(router):
        threads = [threading.Thread(target=handler, args=a) for a in (("ApiFunction", "api"), ("EnrollmentFunction", "enrollment"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # then every line carries its own handler's name, request id and service
    lines = [json.loads(line) for line in sink.getvalue().splitlines()]
    logs = {line["message"]: line for line in lines if "message" in line}
    assert logs["ApiFunction line"]["function_name"] == "dripline-local-ApiFunction" and logs["ApiFunction line"]["service"] == "api"
    assert logs["EnrollmentFunction line"]["function_name"] == "dripline-local-EnrollmentFunction"
    assert logs["EnrollmentFunction line"]["service"] == "enrollment"
    metrics = [line for line in lines if "_aws" in line]
    assert sorted(m["function_name"] for m in metrics) == ["dripline-local-ApiFunction", "dripline-local-EnrollmentFunction"]
    assert all(m["service"] == "dripline" for m in metrics)  # a metric dimension stays as emitted


def test_the_default_log_file_is_this_stacks_own_and_is_appended_to(tmp_path):
    assert str(os.getpid()) in os.path.basename(default_lambda_log_path())
    path = tmp_path / "lambda.log"
    path.write_text("an earlier stack's line\n")
    out = lambda_output_file(str(path))
    out.write("this stack's line\n")
    out.close()
    assert path.read_text() == "an earlier stack's line\nthis stack's line\n"


def test_lines_of_the_local_stack_name_their_handler(local_stack, stack_log):
    api = local_stack.client("logs-team")
    api.call("POST", "/pipelines", {"name": "P", "automatic": True, "steps": [
        {"step_number": 1, "action_type": "create_task", "delay_seconds": 0, "message": "hi", "data": {"title": "t"}}]}, expect=201)
    api.call("POST", "/contacts", {"email": "logs@example.com", "first_name": "L"}, expect=201)
    api.call("POST", "/_local/clock", {"advance_seconds": 120})
    lines = [json.loads(line) for line in local_stack.lambda_log_path.read_text().splitlines() if line.startswith("{")]
    by_message: dict[str, set[str]] = {}
    for line in lines:
        if "message" in line:
            by_message.setdefault(line["message"], set()).add(line["function_name"])
    assert by_message["tick finished"] == {"dripline-local-ProcessorFunction"}
    enrollment = {m for m in by_message if m.startswith("enrollment")}
    assert enrollment and all(by_message[m] == {"dripline-local-EnrollmentFunction"} for m in enrollment)
