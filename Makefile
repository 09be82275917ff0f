VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3.11

.PHONY: demo test lint bench clean hub-cluster

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/fedbox simulate examples/digits --clients 3

test: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks examples scripts
	$(VENV)/bin/mypy src
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks examples scripts
	$(VENV)/bin/ruff format --check src tests benchmarks examples scripts

bench: $(VENV)/.installed
	$(PY) benchmarks/rpc_latency.py

clean:
	rm -rf $(VENV) build *.egg-info

# N PostgreSQL-backed hub processes + a moto S3 server on this machine (HUBS=2 by default).
hub-cluster: $(VENV)/.installed
	$(PY) scripts/hub_cluster.py --hubs $(or $(HUBS),2)
