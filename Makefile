# Two commands: `make run` (set up and serve on SQLite) and `make test` (set up and pass the tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
ADMIN ?= admin@example.com
# The demo data a fresh database gets on `make run`: 1 = full size, 0.2 = a fifth, 0 = none.
DEMO ?= 1

.PHONY: run test quick lint format bench clean

$(INSTALLED): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "metacrm needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(INSTALLED)

run: $(INSTALLED)
	$(BIN)/metacrm init --admin-email $(ADMIN) $(if $(filter 0,$(DEMO)),,--demo $(DEMO))
	@echo "API token: $$($(BIN)/metacrm token create --user $(ADMIN) --name make-run)"
	$(BIN)/metacrm serve

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q -p no:cacheprovider -n 2 --dist worksteal

# The suite without the tests marked `slow` (a clean install of the wheel, fuzzing, property
# tests): a quick pass while developing; `make test` (and CI) runs everything.
quick: lint
	$(BIN)/pytest -q -p no:cacheprovider -n 2 -m "not slow"

format: $(INSTALLED)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(INSTALLED)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .metacrm metacrm.db metacrm.db-wal metacrm.db-shm
