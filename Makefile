# The two commands of the README: `make run` (local stack) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Lambda's Python: the unit and integration suites run on it too (skipped, saying so, if absent).
PYTHON313 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python) $(shell command -v python3.13 2>/dev/null))
VENV313 := .venv313
STAMP313 := $(VENV313)/.installed
# checkov pins its own dependencies: it gets a venv of its own.
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov

export AWS_ACCOUNT_ID_ENDPOINT_MODE := disabled

.PHONY: run test test-313 demo lint bench clean

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

test: $(STAMP) $(CHECKOV)
	$(BIN)/cfn-lint infra/template.yaml
	# Offline: no policy download, no platform calls. Every suppression is in the template with its reason.
	$(CHECKOV) -f infra/template.yaml --framework cloudformation --skip-download --compact --quiet
	$(BIN)/pytest -n 2 --dist loadfile
	$(MAKE) --no-print-directory test-313

# Email headers and templates behave differently across Python versions: unit and
# integration suites again on 3.13, the Lambda runtime's.
test-313:
ifeq ($(strip $(PYTHON313)),)
	@echo "SKIPPED: the Python 3.13 run (no ~/.pyenv/versions/3.13*/bin/python or python3.13 on PATH; set PYTHON313=...)"
else
	$(MAKE) --no-print-directory $(STAMP313)
	$(VENV313)/bin/pytest tests/unit tests/integration -n 2 --dist loadfile
endif

bench: $(STAMP)
	$(BIN)/python -m benchmarks.processor_tick

clean:
	rm -rf $(VENV) $(VENV313) $(CHECKOV_VENV) .pytest_cache
