"""Run the unchanged Lambda handlers in this process, configured from infra/template.yaml.

- `function_environment` resolves every function's Environment (Globals included) with
  the template's intrinsics (!Ref, !Sub, !GetAtt ...) pointing at local resources.
- `LocalFunction` loads a function's handler from its CodeUri by file path (every
  handler file is called app.py, so each gets its own module name), and invokes it with
  a Lambda-like context whose remaining time counts down from the template's Timeout,
  from the moment the event starts running.

Lambda runs one event at a time per execution environment, each environment with its
own copy of every module. Here all of a function's invocations share this process's
modules (one copy per process, not per environment: separate module state would need a
process per environment, and the virtual clock, fault injection and metering live in
this one). So a function runs at most as many events at once as it has environments
(`LocalFunction.environments`), and the others wait, as throttled events would retry:
- a function whose per-event state lives in shared objects gets one environment, i.e.
  its events are serialised:
  - behind the HTTP API: Powertools' event handler keeps the event it is serving in a
    class attribute (`BaseRouter.current_event`), one per process: two requests served
    at once would read each other's body and claims (tests/e2e/test_local_environments.py
    reproduces it);
  - fed by a DynamoDB stream: its module-level BatchProcessor holds the batch's records
    and failures (Lambda, too, hands one batch per shard at a time);
- any other function runs up to its ReservedConcurrentExecutions events at once
  (unbounded without one): overlapping invocations (two processor ticks, a tick's
  workers) must overlap here as they do in Lambda, and their code keeps per-event state
  in locals. What they do share here and not in Lambda is observability only: the
  Powertools logger's Lambda-context keys (each line is relabelled, dripline_local.logs)
  and the metrics buffer, flushed by whichever overlapping invocation ends first.
"""
from __future__ import annotations

import re
import secrets
import sys
import threading
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from dripline.settings import Settings
from dripline_local.lambda_runtime import LambdaContext, load_handler
from dripline_local.logs import labelled
from dripline_local.resources import TABLE_SETTINGS
from dripline_local.template import TEMPLATE_PATH, function_properties, load_template

ACCOUNT_ID = "123456789012"
STACK_NAME = "dripline-local"
# Template parameters the local stack sets instead of taking the default.
LOCAL_PARAMETERS = {"Stage": "local"}
# Functions fed by these event sources run one event at a time (see the module's docstring).
SERIALISED_EVENT_SOURCES = {"HttpApi", "DynamoDB"}
# The API's function may not be in the template (yet): this is where it lives by convention.
DEFAULT_FUNCTIONS = {"api": ("ApiFunction", 29), "enrollment": ("EnrollmentFunction", 60), "processor": ("ProcessorFunction", 120)}


class HandlerMissing(RuntimeError):
    """The function's handler file does not exist (yet)."""


# --- the template's intrinsics, resolved for the local stack ---------------------------


class Resolver:
    """Evaluates CloudFormation intrinsics with local physical names."""

    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        region: str,
        endpoint_url: str,
        parameters: Mapping[str, str] | None = None,
        account_id: str = ACCOUNT_ID,
    ) -> None:
        self.template = template
        self.region = region
        self.account_id = account_id
        self.endpoint_url = endpoint_url.rstrip("/")
        self.parameters = {**LOCAL_PARAMETERS, **(parameters or {})}

    # physical names ---------------------------------------------------------------
    def _resource(self, logical_id: str) -> dict[str, Any]:
        return self.template["Resources"][logical_id]

    def physical_name(self, logical_id: str) -> str:
        resource = self._resource(logical_id)
        kind = resource["Type"]
        props = resource.get("Properties", {})
        if kind == "AWS::DynamoDB::Table":
            if "TableName" in props:
                return str(self.resolve(props["TableName"]))
            return getattr(Settings(), TABLE_SETTINGS[logical_id])
        if kind == "AWS::SQS::Queue":
            # resources.create_resources names queues dripline-<logical id>.
            return str(self.resolve(props["QueueName"])) if "QueueName" in props else f"dripline-{logical_id}"
        if kind == "AWS::SES::ConfigurationSet" and "Name" in props:
            return str(self.resolve(props["Name"]))
        return f"{STACK_NAME}-{logical_id}"

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::StackName": STACK_NAME,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }
        if name in pseudo:
            return pseudo[name]
        template_params = self.template.get("Parameters", {})
        if name in template_params:
            if name in self.parameters:
                return str(self.parameters[name])
            if "Default" not in template_params[name]:
                raise KeyError(f"template parameter {name} has no default; pass it to the local stack")
            return str(template_params[name]["Default"])
        kind = self._resource(name)["Type"]
        if kind == "AWS::SQS::Queue":
            return f"{self.endpoint_url}/{self.account_id}/{self.physical_name(name)}"
        return self.physical_name(name)

    def get_att(self, logical_id: str, attribute: str) -> str:
        kind = self._resource(logical_id)["Type"]
        name = self.physical_name(logical_id)
        arn_prefix = f"arn:aws:{{}}:{self.region}:{self.account_id}"
        if kind == "AWS::DynamoDB::Table":
            arn = f"{arn_prefix.format('dynamodb')}:table/{name}"
            return {"Arn": arn, "StreamArn": f"{arn}/stream/local"}[attribute]
        if kind == "AWS::SQS::Queue":
            return {
                "Arn": f"{arn_prefix.format('sqs')}:{name}",
                "QueueName": name,
                "QueueUrl": self.ref(logical_id),
            }[attribute]
        if attribute == "Arn":
            service = kind.split("::")[1].lower()
            return f"{arn_prefix.format(service)}:{name}"
        raise KeyError(f"!GetAtt {logical_id}.{attribute} is not known locally")

    def sub(self, value: Any) -> str:
        text, variables = (value[0], value[1]) if isinstance(value, list) else (value, {})

        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"
            if expression in variables:
                return str(self.resolve(variables[expression]))
            if "." in expression:
                logical_id, attribute = expression.split(".", 1)
                return self.get_att(logical_id, attribute)
            return str(self.ref(expression))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
                return self.get_att(logical_id, attribute)
            if key == "Fn::Sub":
                return self.sub(arg)
            if key == "Fn::Join":
                separator, parts = arg
                return separator.join(str(self.resolve(p)) for p in self.resolve(parts))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key.startswith("Fn::"):
                raise NotImplementedError(f"{key} is not supported by the local stack")
        return {k: self.resolve(v) for k, v in value.items()}


def serverless_functions(template: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    template = template or load_template()
    return {name: res for name, res in template["Resources"].items() if res["Type"] == "AWS::Serverless::Function"}


def function_environment(resolver: Resolver) -> dict[str, str]:
    """The union of every function's resolved Environment.Variables (Globals first).

    All handlers share this one process (and `dripline.runtime`'s cached settings), so
    they share one environment; the per-function service names are left to the
    Lambda context (function_name) in the JSON logs.
    """
    env: dict[str, str] = {}
    for logical_id in serverless_functions(resolver.template):
        env.update(one_function_environment(resolver, logical_id))
    if not serverless_functions(resolver.template):
        for key, value in resolver.template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}).items():
            env[key] = str(resolver.resolve(value))
    env["POWERTOOLS_SERVICE_NAME"] = "dripline"
    return env


def one_function_environment(resolver: Resolver, logical_id: str) -> dict[str, str]:
    """One function's resolved Environment.Variables (Globals first), as Lambda gives it."""
    variables = function_properties(logical_id).get("Environment", {}).get("Variables", {})
    resolved = {key: resolver.resolve(value) for key, value in variables.items()}
    return {key: str(value) for key, value in resolved.items() if value is not None}


# --- invoking handlers -----------------------------------------------------------------


class LocalFunction:
    """One function of the template, run in-process."""

    def __init__(
        self,
        logical_id: str,
        code_dir: Path,
        handler: str = "app.lambda_handler",
        *,
        timeout: float = 3,
        memory: int = 128,
        reserved_concurrency: int | None = None,
        one_environment: bool = False,
        region: str = "us-east-1",
        service: str | None = None,
    ) -> None:
        self.logical_id = logical_id
        self.service = service or code_dir.name  # its POWERTOOLS_SERVICE_NAME in Lambda
        self.code_dir = code_dir
        self.module_file, _, self.attribute = handler.rpartition(".")
        self.timeout = float(timeout)
        self.memory = int(memory)
        self.name = f"{STACK_NAME}-{logical_id}"
        self.arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{self.name}"
        self._handler: Callable[[dict, Any], Any] | None = None
        self._load_lock = threading.Lock()
        # How many events may run at once (None: no bound); see the module's docstring.
        self.environments = 1 if one_environment else reserved_concurrency or None
        self._slots = threading.BoundedSemaphore(self.environments) if self.environments else None

    @property
    def path(self) -> Path:
        return self.code_dir / (self.module_file.replace(".", "/") + ".py")

    def handler(self) -> Callable[[dict, Any], Any]:
        if self._handler is None:
            with self._load_lock:
                if self._handler is None:
                    self._handler = self._load()
        return self._handler

    def _load(self) -> Callable[[dict, Any], Any]:
        if not self.path.exists():
            raise HandlerMissing(f"{self.path} does not exist")
        return load_handler(self.code_dir, f"{self.module_file}.{self.attribute}", f"dripline_local_fn_{self.logical_id.lower()}")

    def context(self) -> LambdaContext:
        return LambdaContext(self.name, self.memory, self.arn, self.timeout)

    def invoke(self, event: dict[str, Any]) -> Any:
        handler = self.handler()
        with self._slots or nullcontext():
            context = self.context()  # its time counts from when an environment takes the event
            with labelled(context, self.service):  # its output lines name this function
                return handler(event, context)


def load_functions(region: str, template_path: Path = TEMPLATE_PATH) -> dict[str, LocalFunction]:
    """The template's functions keyed by code directory name (api, enrollment, processor)."""
    template = load_template(template_path)
    root = template_path.parent
    functions: dict[str, LocalFunction] = {}
    for logical_id in serverless_functions(template):
        props = function_properties(logical_id, template_path)
        code_uri = props.get("CodeUri")
        if not isinstance(code_uri, str):
            continue
        code_dir = (root / code_uri).resolve()
        functions[code_dir.name] = LocalFunction(
            logical_id,
            code_dir,
            props.get("Handler", "app.lambda_handler"),
            timeout=props.get("Timeout", 3),
            memory=props.get("MemorySize", 128),
            reserved_concurrency=props.get("ReservedConcurrentExecutions"),
            one_environment=bool(SERIALISED_EVENT_SOURCES & {e.get("Type") for e in (props.get("Events") or {}).values()}),
            region=region,
            service=props.get("Environment", {}).get("Variables", {}).get("POWERTOOLS_SERVICE_NAME"),
        )
    project = root.parent
    for key, (logical_id, timeout) in DEFAULT_FUNCTIONS.items():
        if key not in functions:
            functions[key] = LocalFunction(
                logical_id, project / "functions" / key, timeout=timeout, memory=512, one_environment=key in ("api", "enrollment"), region=region
            )
    return functions
