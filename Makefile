# The README's two commands: `make demo` and `make test`. Both bootstrap .venv themselves.
SHELL := /bin/bash
ROOT := $(CURDIR)
PYTHON ?= python3
VENV := $(ROOT)/.venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9

export AIRFLOW_HOME := $(ROOT)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(ROOT)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(ROOT)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN := sqlite:///$(ROOT)/.airflow/airflow.db
export CATALOG_HOME := $(ROOT)/data
# `airflow dags test` (the demo) cannot finish a run of a DAG with deadline alerts in Airflow 3.3.2
export AIRFLOW__OPERATORS__CATALOG_DEADLINE := False
export AIRFLOW__OPENLINEAGE__NAMESPACE ?= catalog
export AIRFLOW__OPENLINEAGE__TRANSPORT ?= {"type": "file", "log_file_path": "$(ROOT)/.airflow/openlineage/events.jsonl", "append": true}
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: demo demo-openai test lint venv ocr browser bench-quality bench demo-prepare clean

venv: $(STAMP)

$(STAMP): constraints.txt setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e '.[test]'
	@touch $(STAMP)

# Debian packages the tests use: tesseract (the quality gate's OCR text check) and chromium (the UI
# plugin's browser test). Installed where we may (root with apt-get, as on CI); elsewhere the
# checks that need them report "skipped". $(1) command, $(2) package, $(3) what is skipped without it.
define apt_ensure
@command -v $(1) >/dev/null 2>&1 || { \
  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2)) >/dev/null 2>&1 \
      || echo "$(2) could not be installed: $(3) will be skipped"; \
  else echo "$(1) not found (install $(2)): $(3) will be skipped"; fi; }
endef

ocr:
	$(call apt_ensure,tesseract,tesseract-ocr,OCR checks)

browser:
	$(call apt_ensure,chromium,chromium,browser tests)

demo-prepare: $(STAMP) ocr
	@mkdir -p $(AIRFLOW_HOME)/openlineage
	$(BIN)/airflow db migrate >$(AIRFLOW_HOME)/db-migrate.log 2>&1 || (cat $(AIRFLOW_HOME)/db-migrate.log; exit 1)
	$(BIN)/python -m operators.samples $(CATALOG_HOME)/samples --with-broken

demo: demo-prepare
	$(BIN)/python -m operators.demo

# `make demo` with the `openai` backend pointed at the local edit service (started on a free
# loopback port for the run and stopped after it; see docs/backends.md).
demo-openai: demo-prepare
	$(BIN)/python -m operators.service.demo

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) ocr browser lint
	$(BIN)/python -m pytest -q

# quality-gate metric speed (one core) and agreement with scikit-image's reference implementations
bench-quality: $(STAMP)
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(BIN)/python -m operators.quality.bench

# the edit stage on the local edit service (2 s per edit, 600 requests/min enforced): throughput vs the
# rate limit, orchestration overhead, peak RSS at 1,000 vs 5,000 images, beside one image per mapped task
# and a sequential loop; prints the figures and writes $(CATALOG_HOME)/bench/throughput.json (~7 min)
bench: $(STAMP)
	$(BIN)/python -m operators.bench.throughput

clean:
	rm -rf $(AIRFLOW_HOME) $(ROOT)/data
