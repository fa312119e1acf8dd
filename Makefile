# Two set-up-to-result commands: `make demo` and `make test`. Each creates .venv when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint bench-deps clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/weft demo

test: $(STAMP) lint
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Peers that the benchmarks compare against (not needed by weft itself).
bench-deps: $(STAMP)
	$(PY) -m pip install -q -c constraints.txt -r benchmarks/requirements.txt

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
