# The two commands of the README: `make run` (local stack) and `make test`; `make build` is sam build.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Lambda's python3.13 (sam build, and the 3.13 test run): one given as PYTHON313=..., else pyenv's, else one on PATH that runs
# (pyenv's shim on PATH exists even when 3.13 is not the selected version).
ifndef PYTHON313
PYTHON313 := $(shell for p in $(HOME)/.pyenv/versions/3.13*/bin/python3.13 $$(command -v python3.13); do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && echo "$$p" && break; done)
endif
VENV313 := .venv313
STAMP313 := $(VENV313)/.installed
# checkov pins its own dependencies: it gets a venv of its own.
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov

export AWS_ACCOUNT_ID_ENDPOINT_MODE := disabled

.PHONY: run test test-313 browser demo lint bench chaos clean build

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(STAMP313): pyproject.toml
	$(PYTHON313) -m venv $(VENV313)
	$(VENV313)/bin/pip install --quiet --upgrade pip
	$(VENV313)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP313)

$(CHECKOV):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov>=3.2,<4'

run: $(STAMP)
	$(BIN)/dripline local --seed-demo

demo: $(STAMP)
	$(BIN)/dripline demo

test: $(STAMP) $(CHECKOV) browser
	$(BIN)/cfn-lint infra/template.yaml
	# Offline: no policy download, no platform calls. Every suppression is in the template with its reason.
	$(CHECKOV) -f infra/template.yaml --framework cloudformation --skip-download --compact --quiet
	$(BIN)/pytest -n 2 --dist loadfile
	$(MAKE) --no-print-directory test-313

# The unsubscribe pages are checked in headless Chromium (Debian's package); installed here
# when missing and apt-get can (root), otherwise that one test says it skipped and why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
		  echo "make test: headless Chromium not installed; the unsubscribe page test will skip"; }

# Email headers and templates behave differently across Python versions: unit and
# integration suites again on 3.13, the Lambda runtime's.
test-313:
ifeq ($(strip $(PYTHON313)),)
	@echo "SKIPPED: the Python 3.13 run (no ~/.pyenv/versions/3.13*/bin/python or python3.13 on PATH; set PYTHON313=...)"
else
	$(MAKE) --no-print-directory $(STAMP313)
	$(VENV313)/bin/pytest tests/unit tests/integration -n 2 --dist loadfile
endif

# The chaos run (README: Guarantees and how they are tested). Exit status 1 on a violation.
SEED ?= 1
CONTACTS ?= 200
FAULT_RATE ?= 0.1
chaos: $(STAMP)
	$(BIN)/dripline chaos --seed $(SEED) --contacts $(CONTACTS) --fault-rate $(FAULT_RATE)

# Numbers in docs/performance.md come from here: the run rewrites its tables.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.step_path
	$(BIN)/python -m benchmarks.report --write docs/performance.md

clean:
	rm -rf $(VENV) $(VENV313) $(CHECKOV_VENV) $(SAM_VENV) .pytest_cache

# --- sam build --------------------------------------------------------------------------
# The SAM CLI lives in its own venv: its pins would fight the dev ones.
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_STAMP := $(SAM_VENV)/.installed
# ARCH=x86_64 builds a copy of the template for x86_64 (the build test, on an x86_64 machine:
# the template's arm64 wheels cannot load there). Empty: the template as it is (arm64).
ARCH ?=
ifeq ($(ARCH),)
BUILD_TEMPLATE := infra/template.yaml
BUILD_DIR := .aws-sam/build
else
BUILD_TEMPLATE := .aws-sam/template-$(ARCH).yaml
BUILD_DIR := .aws-sam/build-$(ARCH)
endif
export SAM_CLI_TELEMETRY := 0

$(SAM_STAMP):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli
	touch $(SAM_STAMP)

print-python313:  # for `dripline invoke --build-dir`: the python3.13 this Makefile would use
	@echo $(PYTHON313)

build: $(SAM_STAMP)
	@if [ -z "$(PYTHON313)" ]; then \
		echo "make build: no python3.13 found (looked for PYTHON313=..., ~/.pyenv/versions/3.13*/bin, PATH)." >&2; \
		echo "  Lambda runs python3.13 and sam build needs it: 'pyenv install 3.13' or pass PYTHON313=/path/to/python3.13." >&2; \
		exit 1; fi
ifneq ($(ARCH),)
	@mkdir -p .aws-sam
	sed -E 's/(Architectures: \[)arm64(\])/\1$(ARCH)\2/; s/(BuildArchitecture: )arm64/\1$(ARCH)/' \
		infra/template.yaml > $(BUILD_TEMPLATE)
endif
	PATH="$(dir $(PYTHON313)):$$PATH" $(SAM) build --template-file $(BUILD_TEMPLATE) --build-dir $(BUILD_DIR)
