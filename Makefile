# Every target makes .venv and installs on first use, so a fresh clone needs nothing else.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint mutate screenshots clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,devices,osdp,hub,web,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/suishen demo

test: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# Refresh docs/screenshots from the browser tests (a plain `make test` writes them to a
# temporary directory and leaves the checkout as it was).
screenshots: $(STAMP)
	SUISHEN_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q tests/e2e/browser

# Mutation testing of the verifier and policy rules (not part of test or CI: CPU-heavy, one
# worker). Results stay in mutants/ (a re-run only re-checks what changed); the score per
# module is printed with and without message-text mutants. `mutmut browse` shows survivors.
mutate: $(STAMP)
	$(BIN)/mutmut run --max-children 1
	$(BIN)/python -m bench.mutation_score

clean:
	rm -rf $(VENV) build mutants *.egg-info src/*.egg-info
