# Two commands do everything on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.installed

.PHONY: setup test test-fast lint demo ui bench gpu-check constraints intensity-table clean

# System packages (Debian, apt-get as root), installed only when missing: a C compiler builds the
# simulated GPU (testing/carbon_testing/fake_nvml); Chromium drives the UI tests (Playwright cannot download its own
# browser here); the docker-compose client validates docker-compose.yml (no engine needed).
APT_PACKAGES := $(if $(shell command -v cc),,gcc libc6-dev) $(if $(wildcard /usr/bin/chromium),,chromium) \
	$(if $(shell command -v docker-compose),,docker-compose)

$(VENV)/.system:
	@if [ -n "$(strip $(APT_PACKAGES))" ]; then apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@touch $@

# The package with its extras, and the test harnesses (testing/: carbon_testing, development only).
$(STAMP): $(VENV)/.system pyproject.toml testing/pyproject.toml constraints.txt
	$(PIP) install -q -c constraints.txt -e '.[test,bench,cluster]' -e ./testing
	@touch $@

setup: $(STAMP)

# Every tier (unit, airflow, system: pyproject.toml's pytest markers), after the lint.
test: setup lint
	$(PY) -m pytest

# The unit tier only: no Airflow, no browser, no cluster (under a minute); the card property test
# generates 100 cards instead of 400 (CARD_EXAMPLES).
test-fast: setup
	CARD_EXAMPLES=$${CARD_EXAMPLES:-100} $(PY) -m pytest -m unit

lint: setup
	$(VENV)/bin/ruff check .

# The embedded default: SQLite metadata DB in .airflow/ (git-ignored), the example DAG run with
# `airflow dags test`, then its per-task energy and emissions.
DEMO_ENV := AIRFLOW_HOME=$(CURDIR)/.airflow AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__CORE__LOAD_EXAMPLES=False CARBON_DEMO_MODEL_DIR=$(CURDIR)/.airflow/model

demo: setup
	@mkdir -p .airflow
	$(DEMO_ENV) $(VENV)/bin/airflow db migrate > .airflow/migrate.log 2>&1 || { cat .airflow/migrate.log; exit 1; }
	$(DEMO_ENV) $(VENV)/bin/airflow dags test carbon_training > .airflow/dags-test.log 2>&1 || { tail -50 .airflow/dags-test.log; exit 1; }
	@echo "airflow dags test carbon_training: done (log: .airflow/dags-test.log)"
	@$(DEMO_ENV) $(VENV)/bin/airflow-carbon records carbon_training
	@echo; echo "Model card metadata written to .airflow/model/README.md:"; \
	 awk 'NR==1 && /^---/ {f=1; print; next} f {print} f && /^---/ {exit}' .airflow/model/README.md

# The demo's records in Airflow's UI (after `make demo`): Browse -> Carbon emissions. SimpleAuthManager's
# user is admin; Airflow writes its password to .airflow/simple_auth_manager_passwords.json.generated.
ui: setup
	@echo "http://127.0.0.1:8080/plugin/carbon  (user admin, password in .airflow/simple_auth_manager_passwords.json.generated)"
	$(DEMO_ENV) $(VENV)/bin/airflow api-server --host 127.0.0.1 --port 8080

bench: setup
	$(PY) bench/run.py

# On a machine with NVIDIA GPUs and no network: one JSON report, build/gpu-check.json, in about a minute
# (bench/README.md, "make gpu-check: reading the report"). It needs only `pip install -e .` (no extras; torch
# is used where importable), so it does not depend on `setup`, which downloads: this checkout's .venv if it
# has airflow-carbon, else the airflow-carbon on PATH. GPU_CHECK_SECONDS=S sets the load phase (default 20).
GPU_CHECK := $(if $(wildcard $(VENV)/bin/airflow-carbon),$(VENV)/bin/airflow-carbon,airflow-carbon)
gpu-check:
	@command -v $(GPU_CHECK) >/dev/null || { echo "airflow-carbon is not installed here: pip install -e . (no extras needed)"; exit 2; }
	$(GPU_CHECK) gpu-check --out build/gpu-check.json $(if $(GPU_CHECK_SECONDS),--seconds $(GPU_CHECK_SECONDS))

# Regenerate constraints.txt from a clean virtual environment.
constraints:
	rm -rf build/constraints-venv && $(PYTHON) -m venv build/constraints-venv
	build/constraints-venv/bin/pip install -q -e '.[test,bench,cluster]' -e ./testing
	{ echo "# Generated with 'make constraints' from a clean install on Python 3.11 (Airflow's constraint URLs are unreachable here)."; \
	  build/constraints-venv/bin/pip freeze --exclude-editable | grep -vi '^airflow-carbon'; } > constraints.txt

# Rebuild airflow_carbon/core/data/grid_intensity.json from the open inputs in ../shared/data.
intensity-table: setup
	$(PY) tools/build_intensity_table.py

clean:
	rm -rf build .pytest_cache bench/results.json
