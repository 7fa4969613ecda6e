# The two commands of the README: `make run` (local stack) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export AWS_ACCOUNT_ID_ENDPOINT_MODE := disabled

.PHONY: run test demo lint bench chaos clean

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

# The chaos run (README: Guarantees and how they are tested). Exit status 1 on a violation.
SEED ?= 1
CONTACTS ?= 200
FAULT_RATE ?= 0.1
chaos: $(STAMP)
	$(BIN)/dripline chaos --seed $(SEED) --contacts $(CONTACTS) --fault-rate $(FAULT_RATE)

bench: $(STAMP)
	$(BIN)/python -m benchmarks.processor_tick

clean:
	rm -rf $(VENV) .pytest_cache
