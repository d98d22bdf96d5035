# Single entry points. Each bootstraps its own virtual environment in .venv on first use.
#   make run    start the server with the simulated Neo camera on http://127.0.0.1:8000
#   make test   the checkers (make lint), then the whole test suite (TESTS=tests.test_api for one module)
#   make lint   ruff and mypy (strict on andor_twisted/protocol and camera), as CI runs them
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
SOURCES = $(shell find andor_twisted twisted client/andor -name '*.py' -o -path '*/static/*' -type f) \
	pyproject.toml client/pyproject.toml

.PHONY: run test lint clean

run: $(VENV)/.installed
	$(BIN)/twistd --nodaemon --pidfile= andor $(ARGS)

test: lint
	PYTHONPATH=$(CURDIR) $(BIN)/trial $(TRIAL_ARGS) $(or $(TESTS),tests)

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/mypy --strict andor_twisted/protocol andor_twisted/camera

# A regular (not editable) install, as in production: an editable one would hide a plugin
# missing from the package. Re-run whenever a source file changes.
$(VENV)/.installed: $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet './client[record,record-readers]' ".[dev]"
	rm -rf build client/build *.egg-info client/*.egg-info
	touch $@

clean:
	rm -rf $(VENV) _trial_temp tests/_trial_temp build client/build *.egg-info client/*.egg-info .mypy_cache .ruff_cache
