"""`make build` (sam build) produces functions that import and run under python3.13.

The setup runs `make build` itself (installing the SAM CLI into .venv-sam when missing),
so CI runs this test; it is skipped, with the reason, only where there is no python3.13 or
the SAM CLI cannot be installed. Each built function is imported from the build directory
by python3.13 (run with -I -S: no site-packages at all, every dependency comes from the built
layer) and invoked on its events/ sample against a fresh emulator.

The template builds for arm64 (Graviton). On an x86_64 machine the layer's aarch64 wheels
(pydantic-core, markupsafe) cannot load, so here the test builds a copy of the template
for x86_64 (`make build ARCH=x86_64` -> .aws-sam/build-x86_64): the same code and
dependency versions, built for the machine's architecture.
"""
from __future__ import annotations

import json
import platform
import subprocess
import time
from pathlib import Path

import pytest

from dripline_local.invoke import default_python313, fresh_emulator, invoke

ROOT = Path(__file__).resolve().parents[2]
# Where the machine's architecture differs from the template's arm64, build a copy for it.
ARCH = {"x86_64": "x86_64", "amd64": "x86_64"}.get(platform.machine().lower(), "")
BUILD_DIR = ROOT / ".aws-sam" / (f"build-{ARCH}" if ARCH else "build")

# Each function and the events/ sample it is invoked on, with what its answer must hold.
SAMPLES = {
    "ApiFunction": ("api_health.json", lambda r: r["statusCode"] == 200 and json.loads(r["body"]) == {"status": "ok"}),
    "EnrollmentFunction": ("contact_insert.json", lambda r: r == {"batchItemFailures": []}),
    "ProcessorFunction": ("processor_scheduled.json", lambda r: r["due"] == 0),
    "SesEventsFunction": ("ses_delivery.json", lambda r: "outcome" in r),
}


def make(*targets: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *targets], cwd=ROOT, capture_output=True, text=True, timeout=1500)


@pytest.fixture(scope="module")
def built() -> tuple[Path, str]:
    python313 = default_python313()
    if python313 is None:
        pytest.skip("no python3.13 (pyenv's 3.13 or one on PATH): sam build cannot build for Lambda's runtime")
    installed = make(".venv-sam/.installed")
    if installed.returncode != 0:
        pytest.skip(f"the SAM CLI could not be installed (pip install aws-sam-cli):\n{installed.stderr[-2000:]}")
    started = time.monotonic()
    build = make("build", f"ARCH={ARCH}")
    assert build.returncode == 0, f"make build failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    print(f"\nmake build ARCH={ARCH or '(template: arm64)'}: {time.monotonic() - started:.1f} s")
    return BUILD_DIR, python313


@pytest.fixture(scope="module")
def emulator():
    with fresh_emulator() as endpoint:
        yield endpoint


def test_the_build_has_every_function_of_the_template_and_the_layer(built):
    build_dir, _ = built
    template = (build_dir / "template.yaml").read_text()
    for logical_id in SAMPLES:
        assert (build_dir / logical_id / "app.py").exists(), logical_id
        assert f"CodeUri: {logical_id}" in template
    layer = build_dir / "CommonLayer" / "python"
    assert (layer / "dripline" / "processor.py").exists() and (layer / "pynamodb").is_dir()
    wheels = {p.name for p in layer.rglob("*.so")}
    assert wheels and all(("x86_64" if ARCH else "aarch64") in name for name in wheels), sorted(wheels)


@pytest.mark.parametrize("logical_id", sorted(SAMPLES))
def test_each_built_function_imports_under_python313_and_answers_its_sample(built, emulator, logical_id):
    build_dir, python313 = built
    sample, expected = SAMPLES[logical_id]
    result = invoke(logical_id, (ROOT / "events" / sample).read_text(), endpoint=emulator, build_dir=build_dir, python=python313)
    print(f"\n{logical_id} on events/{sample}: {result.duration_ms} ms (process start, cold imports, handler)")
    assert not result.failed, f"{result.response}\n{result.logs}"
    assert expected(result.response), result.response
