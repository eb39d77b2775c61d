# moakg: set up, run the main job, test. The virtual environment lives outside the repo so that
# later sessions and CI reuse it and pip's cache.
VENV ?= $(HOME)/.venvs/moakg
PY := $(VENV)/bin/python
MOAKG := $(VENV)/bin/moakg
PYTHON ?= python3.11

.PHONY: setup demo results test lint bench

setup:  ## venv + Python deps + Neo4j jars (Maven, cached in ~/.m2)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(MOAKG) neo4j build

demo:  ## the main job on the bundled demo data: ingest, train, explain, summary (local Neo4j or NEO4J_URI)
	@if [ -z "$$NEO4J_URI" ]; then $(MOAKG) neo4j start; else echo "using Neo4j at $$NEO4J_URI"; fi
	$(MOAKG) db init
	$(MOAKG) pipeline --config demo/sources.toml

results:  ## every results table of the README (demo/results.toml) on the graph `make demo` loaded; hours on 2 cores
	$(MOAKG) results

test:  ## the test suite (starts its own Neo4j on free ports); pytest's exit 5 (no tests) fails too
	$(PY) -m pytest -q || { rc=$$?; [ $$rc -ne 5 ] || echo "pytest collected no tests" >&2; exit $$rc; }

lint:
	$(VENV)/bin/ruff check .

bench:
	$(PY) benchmarks/bench_writer.py
