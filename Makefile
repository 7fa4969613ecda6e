# The two commands of the README: `make run` (local stack) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export AWS_ACCOUNT_ID_ENDPOINT_MODE := disabled

.PHONY: run test demo lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/dripline local --seed-demo

demo: $(STAMP)
	$(BIN)/dripline demo

test: $(STAMP)
	$(BIN)/cfn-lint infra/template.yaml
	$(BIN)/pytest -n 2 --dist loadfile

# Numbers in docs/performance.md come from here: the run rewrites its tables.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.step_path
	$(BIN)/python -m benchmarks.report --write docs/performance.md

clean:
	rm -rf $(VENV) .pytest_cache
