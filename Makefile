# Pitwall: `make demo` to see it run end to end, `make test` to check it.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Tools of the virtualenv first (dagster-dbt looks for `dbt` on PATH when it prepares the project).
export PATH := $(CURDIR)/$(BIN):$(PATH)
export PITWALL_DATA_DIR ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
include offline.env
export $(shell sed -n 's/^\([A-Z_][A-Z0-9_]*\)=.*/\1/p' offline.env)

# Five weeks: enough logged exposures (three weeks of labels) for the next-best-action model to train and be gated.
DEMO_ARGS ?= --customers 300 --technicians 40 --days 35 --seed 7
# dbt runs from inside its project, as dagster-dbt runs it: its partial-parse cache keeps file paths
# relative to the working directory (seeds fail to load when two places disagree).
DBT := cd dbt_project && $(CURDIR)/$(BIN)/dbt --no-use-colors

.PHONY: demo test test-fast lint dagster dashboards mlflow bench venv manifest clean-data validate screenshots spark-demo \
	chromium

$(BIN)/activate: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(BIN)/activate

venv: $(BIN)/activate

# GrowthBook's stats engine (gbstats 0.8.0 pins numpy<2, pandas<2) in a virtualenv of its own, only for
# tests/test_experiment_stats.py, which checks orchestration/experiments/stats.py against it.
GBSTATS_VENV := .venv-gbstats

.PHONY: gbstats-venv

$(GBSTATS_VENV)/.installed: tests/gbstats/requirements.txt
	$(PYTHON) -m venv $(GBSTATS_VENV)
	$(GBSTATS_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -r tests/gbstats/requirements.txt
	touch $@

gbstats-venv: $(GBSTATS_VENV)/.installed

# The instance's sqlite storages are created here, once: processes that open a fresh home together (the daemon,
# the webserver, a run) each create them and stamp alembic_version twice ("more than one head present").
$(DAGSTER_HOME)/dagster.yaml: orchestration/instance/dagster.yaml | venv
	mkdir -p $(DAGSTER_HOME)
	cp $< $@
	$(BIN)/python -c 'import dagster; dagster.DagsterInstance.get().dispose()'

# dagster-dbt loads dbt's manifest when the code location is imported: parse first.
manifest: venv
	$(DBT) --quiet parse --project-dir . --profiles-dir .

demo: venv manifest $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m simulator --out $(PITWALL_DATA_DIR)/landing $(DEMO_ARGS)
	# A run killed earlier in this DAGSTER_HOME may still hold the warehouse pool's slot: free it, and say so.
	$(BIN)/python -m orchestration.instance.slots
	# The partners' simulated API serves on 127.0.0.1 while the pipeline runs (their env vars set for it).
	$(BIN)/python -m simulator.partners run --world $(PITWALL_DATA_DIR)/landing/partners/world.json -- \
		$(BIN)/dg launch --job pitwall_pipeline -m orchestration.definitions
	$(BIN)/python -m orchestration.report

# The whole suite (CI): two pytest-xdist workers, each test module kept on one worker (its module fixtures
# are built once), modules started in the conftest's order (STARTING_ORDER; xdist would otherwise sort them by
# their number of tests); the gbstats comparison must run, not skip.
test: venv manifest $(DAGSTER_HOME)/dagster.yaml gbstats-venv
	PITWALL_REQUIRE_GBSTATS=1 $(BIN)/python -m pytest -n 2 --dist loadscope --no-loadscope-reorder --durations 25

# The development loop: every module's logic on small data, without the end-to-end worlds (tests marked
# slow); minutes, not tens of minutes.
test-fast: venv manifest $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m pytest -m "not slow" -n 2 --dist loadscope --no-loadscope-reorder -q

# ruff over the Python, sqlfluff over the dbt project's SQL (pyproject.toml [tool.ruff], .sqlfluff).
lint: venv
	$(BIN)/ruff check .
	$(BIN)/sqlfluff lint dbt_project/models dbt_project/tests dbt_project/macros
	@# DuckDB 2.0 keeps a result read with fetchone() open, and the connection's next con.sql() then fails with
	@# "unfinished result from execute()": read whole results (fetchall) instead.
	@! grep -rn --include='*.py' '\.fetchone()' pitwall orchestration dashboards models_ml simulator benchmarks tests \
		|| { echo 'lint: use .fetchall()[0] instead of .fetchone() (DuckDB 2.0 leaves the result open)'; exit 1; }

validate: venv manifest $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster definitions validate -m orchestration.definitions

# The same pipeline's transformations on Apache Spark (local, in process; Java 17+), one env var apart
# (docs/scale-out.md): a small world lands, Dagster ingests it and builds the portable dbt models on Spark
# with their data tests, DuckDB builds the same models from the same raw layer, and the two are compared
# table by table. Its own data root, beside the demo's.
SPARK_DEMO_DIR ?= $(PITWALL_DATA_DIR)/spark-demo
SPARK_DEMO_ARGS ?= --customers 120 --technicians 16 --days 7 --seed 7
spark-demo: venv manifest $(DAGSTER_HOME)/dagster.yaml
	rm -rf $(SPARK_DEMO_DIR)
	$(BIN)/python -m simulator --out $(SPARK_DEMO_DIR)/landing $(SPARK_DEMO_ARGS)
	PITWALL_DATA_DIR=$(SPARK_DEMO_DIR) PITWALL_ENGINE=spark \
		$(BIN)/dg launch --job pitwall_pipeline -m orchestration.definitions
	cd dbt_project && PITWALL_DATA_DIR=$(SPARK_DEMO_DIR) $(CURDIR)/$(BIN)/dbt --no-use-colors --quiet \
		build --selector portable --project-dir . --profiles-dir .
	PITWALL_DATA_DIR=$(SPARK_DEMO_DIR) $(BIN)/python -m orchestration.scale_out

dagster: venv manifest $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -m orchestration.definitions --host 127.0.0.1 --port 3000

# MLflow's UI on the project's store (runs, the pitwall-nba registry and its @champion), on this machine only.
MLFLOW_PORT ?= 5000
mlflow: venv
	$(BIN)/mlflow server --backend-store-uri sqlite:///$(PITWALL_DATA_DIR)/mlflow/mlflow.db \
		--default-artifact-root $(PITWALL_DATA_DIR)/mlflow/artifacts --host 127.0.0.1 --port $(MLFLOW_PORT) --workers 1

# On this machine only (127.0.0.1): the support console signs in the demo agent in development mode. A deployment
# configures a sign-in ([auth] in .streamlit/secrets.toml) or the proxy secret instead (docs/support-console.md).
PITWALL_SUPPORT_DEV_USER ?= sam.agent@example.com
dashboards: venv
	@echo "support console: development sign-in as $(PITWALL_SUPPORT_DEV_USER) (PITWALL_SUPPORT_DEV_USER=... to change)"
	PITWALL_SUPPORT_DEV_MODE=1 PITWALL_SUPPORT_DEV_USER=$(PITWALL_SUPPORT_DEV_USER) \
		$(BIN)/streamlit run dashboards/app.py --server.address 127.0.0.1 --server.headless true

# A PNG of every dashboard page, taken by Debian's Chromium (installed here when missing) on the
# published file of PITWALL_DATA_DIR (`make demo` first). Playwright never downloads a browser.
# Debian's Chromium, for the screenshots and the browser test (tests/test_browser.py skips without it).
chromium:
	test -x /usr/bin/chromium || (apt-get update -q && apt-get install -y -q chromium)

screenshots: venv chromium
	# The support console shot signs in as the demo agent in development mode (no auth proxy on a laptop).
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PITWALL_SUPPORT_DEV_MODE=1 PITWALL_SUPPORT_DEV_USER=sam.agent@example.com \
		$(BIN)/python -m dashboards.screenshots --out docs/screenshots

# Each part appends its tables to docs/benchmarks.md: ingestion, the whole pipeline landing → published (a small
# world, 1M and 5M events) with one more day after it, the warehouse build and the dashboard pages, the NBA model,
# serving lookups, flags, a partner REST sync, Spark against DuckDB.
bench: venv manifest
	$(BIN)/python -m benchmarks.ingestion
	$(BIN)/python -m benchmarks.incremental
	$(BIN)/python -m benchmarks.incremental --target-events 1000000 --days 30
	$(BIN)/python -m benchmarks.incremental --target-events 5000000 --days 30
	$(BIN)/python -m benchmarks.warehouse
	$(BIN)/python -m benchmarks.nba
	$(BIN)/python -m benchmarks.serving
	$(BIN)/python -m benchmarks.flags
	$(BIN)/python -m benchmarks.partners
	$(BIN)/python -m benchmarks.scale_out --sizes 1000000 3000000

clean-data:
	rm -rf $(PITWALL_DATA_DIR)/landing $(PITWALL_DATA_DIR)/raw $(PITWALL_DATA_DIR)/quarantine $(PITWALL_DATA_DIR)/warehouse.duckdb
