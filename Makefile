# voiceload — the verbs everyone uses. Each target bootstraps .venv from pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help venv test test-fast lint fixtures emulator bench bench-ci clean

help:
	@echo "make test       run the test suite (creates .venv if missing or stale)"
	@echo "make lint       ruff + mypy --strict on src/"
	@echo "make fixtures   regenerate synthetic fixtures (needs espeak-ng and sox)"
	@echo "make emulator   start the bundled emulator on 127.0.0.1:8787"
	@echo "make bench      benchmark against the bundled emulator (USERS=, DURATION=, SCENARIO=, WORKERS=);"
	@echo "                exits non-zero when the run is invalid or an SLO fails"
	@echo "make bench-ci   CI gate: 40 s run, SLOs + validity, junit.xml (BASELINE=NAME compares)"

venv: $(STAMP)

# Re-install whenever pyproject.toml changes (stale venv) or .venv is missing.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not slow and not browser"

lint: $(STAMP)
	$(BIN)/ruff check src tests loadtests scripts
	$(BIN)/mypy --strict src

fixtures: $(STAMP)
	$(BIN)/python scripts/make_fixtures.py

emulator: $(STAMP)
	$(BIN)/voiceload emulate --host 127.0.0.1 --port 8787

# make bench [SCENARIO=default|smoke|flux-capacity] [USERS=N] [DURATION=90s] [WORKERS=N] [BENCH_ARGS=...]
# WORKERS=N: a Locust master and N worker processes on this machine (README: several machines).
SCENARIO ?= default
USERS    ?=
DURATION ?=
WORKERS  ?=
bench: $(STAMP)
	$(BIN)/voiceload run --scenario $(SCENARIO) $(if $(USERS),--users $(USERS)) \
		$(if $(DURATION),--duration $(DURATION)) $(if $(WORKERS),--workers $(WORKERS)) $(BENCH_ARGS)

# make bench-ci [BASELINE=NAME] [SLO=FILE] [CI_DURATION=40s] [CI_USERS=6] [CI_ARGS='-- --target URL']
# The CI gate: short run, report with SLO + validity check, optional baseline comparison.
CI_DURATION ?= 40s
CI_USERS    ?= 6
bench-ci: $(STAMP)
	$(BIN)/python scripts/bench_ci.py --duration $(CI_DURATION) --users $(CI_USERS) \
		$(if $(BASELINE),--baseline $(BASELINE)) $(if $(SLO),--slo $(SLO)) $(CI_ARGS)

.PHONY: perf
# The harness's own capacity and accuracy -> docs/PERFORMANCE.md (~30 min; PERF_QUICK=1: ~5 min).
perf: $(STAMP)
	cd scripts && $(CURDIR)/$(BIN)/python -m perf.run_perf

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
