"""Unit tests: the handlers' environment and settings come from infra/template.yaml."""
from __future__ import annotations

from dripline_local.lambdas import Resolver, function_environment, load_functions
from dripline_local.template import function_properties, load_template


def resolver() -> Resolver:
    return Resolver(load_template(), region="us-east-1", endpoint_url="http://127.0.0.1:5000")


def test_every_function_variable_is_resolved_to_a_local_value():
    env = function_environment(resolver())
    assert env["CONTACTS_TABLE"] == "dripline-contacts" and env["RUNS_TABLE"] == "dripline-runs"
    assert env["DUE_SHARDS"] == str(load_template()["Parameters"]["DueShards"]["Default"])
    assert env["POWERTOOLS_METRICS_NAMESPACE"]
    for value in env.values():
        assert "{{resolve:" not in value and "${" not in value  # no intrinsic or dynamic reference left


def test_generated_secrets_are_random_per_process_and_stable_within_it():
    template_env = [v for k, v in function_environment(resolver()).items() if k.endswith("_SECRET")]
    again = [v for k, v in function_environment(resolver()).items() if k.endswith("_SECRET")]
    assert template_env == again
    assert all(len(v) >= 32 for v in template_env)


def test_functions_are_found_by_their_code_uri_with_the_template_settings():
    functions = load_functions("us-east-1")
    assert {"api", "enrollment", "processor"} <= set(functions)
    processor = functions["processor"]
    props = function_properties(processor.logical_id)
    assert processor.timeout == props["Timeout"] and processor.path.name == "app.py"
    assert processor.context().get_remaining_time_in_millis() <= props["Timeout"] * 1000
