"""samconfig.toml: `sam build` reads infra/template.yaml and `sam deploy` the BUILT template.

Deploying infra/template.yaml itself would upload the layer's source without its
pip-installed dependencies (every function would fail to import). Seen with the SAM CLI's
--debug: "Using SAM Template at .../infra/template.yaml" when template_file was global.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_build_reads_the_source_template_and_deploy_the_built_one():
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())["default"]
    assert "template_file" not in config["global"]["parameters"]
    assert config["build"]["parameters"]["template_file"] == "infra/template.yaml"
    assert config["deploy"]["parameters"]["template_file"] == ".aws-sam/build/template.yaml"
    assert config["deploy"]["parameters"]["capabilities"] == "CAPABILITY_IAM"
    assert (ROOT / config["build"]["parameters"]["template_file"]).exists()
