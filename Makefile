VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3.11

.PHONY: demo test lint bench clean hub-cluster

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	# pip compiles what it installs, but not an editable install's sources: without this,
	# under PYTHONDONTWRITEBYTECODE every fedbox process compiled ~100 modules at start.
	$(PY) -m compileall -q src
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/fedbox simulate examples/digits --clients 3

# s3rver, an S3 server that checks presigned URLs (tests/hub/test_hub_direct_signed.py,
# which skips without it, except under CI).
S3RVER := tests/s3rver/node_modules/.bin/s3rver
$(S3RVER): tests/s3rver/package.json tests/s3rver/package-lock.json
	npm ci --prefix tests/s3rver --no-audit --no-fund
	touch $@

test: $(VENV)/.installed
	if command -v npm >/dev/null; then $(MAKE) $(S3RVER); fi
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
