"""infra/template.yaml transformed by the SAM translator, the way CloudFormation will."""
import copy

import pytest
from samtranslator.translator.transform import transform

from dripline_local.template import load_template


class _NoManagedPolicies:
    def load(self):
        return {}


@pytest.fixture(scope="session")
def resources():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        template = copy.deepcopy(load_template())
        # `sam package` replaces local code paths with S3 URIs before the transform.
        for resource in template["Resources"].values():
            props = resource.get("Properties", {})
            for key in ("CodeUri", "ContentUri"):
                if key in props:
                    props[key] = "s3://bucket/code.zip"
        yield transform(template, {}, _NoManagedPolicies())["Resources"]
