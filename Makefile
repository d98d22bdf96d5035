# Single entry points. Each bootstraps its own virtual environment in .venv on first use.
#   make run    start the server with the simulated Neo camera on http://127.0.0.1:8000
#   make test   run the whole test suite (TESTS=tests.test_api for one module)
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
SOURCES = $(shell find andor_twisted twisted client/andor -name '*.py' -o -path '*/static/*' -type f) \
	pyproject.toml client/pyproject.toml

.PHONY: run test clean

run: $(VENV)/.installed
	$(BIN)/twistd --nodaemon --pidfile= andor $(ARGS)

test: $(VENV)/.installed
	PYTHONPATH=$(CURDIR) $(BIN)/trial $(TRIAL_ARGS) $(or $(TESTS),tests)

# A regular (not editable) install, as in production: an editable one would hide a plugin
# missing from the package. Re-run whenever a source file changes.
$(VENV)/.installed: $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet './client[record,record-readers]' . tifffile astropy requests playwright
	rm -rf build client/build *.egg-info client/*.egg-info
	touch $@

clean:
	rm -rf $(VENV) _trial_temp tests/_trial_temp build client/build *.egg-info client/*.egg-info
