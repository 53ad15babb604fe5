# deepser: `make demo` (install + run the workflow on the demo corpus), `make test` (every test)
# and `make test-fast` (the unit tier: in-process, no workflow run, about a minute).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: demo test test-fast lint bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[train,export,test]'
	$(BIN)/python -m pip install --quiet 'pyaudio==0.2.14' || \
		echo "note: PyAudio not installed (needs: apt-get install portaudio19-dev); live microphone input is off"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --cores all
	@echo
	@echo "Done. Report: $(abspath results/experiments/demo/report.html)"
	@echo "      Model bundle: results/experiments/demo/final/ (model card: $(BIN)/deepser card results/experiments/demo/final)"
	@echo "      Databases: results/db/  Logs: results/logs/"

test: $(STAMP)
	$(BIN)/python -m pytest -q -ra --durations=15

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -ra tests/unit

lint: $(STAMP)
	$(BIN)/ruff check src scripts tests $(wildcard benchmarks) $(wildcard tools)
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_original_features.py
	$(BIN)/python benchmarks/bench_logmel.py
	$(BIN)/python benchmarks/bench_database_memory.py
	$(BIN)/python benchmarks/bench_functionals.py
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_dryrun.py
	test -f results/experiments/demo/final/bundle.json || $(BIN)/snakemake --cores all
	$(BIN)/python benchmarks/bench_recognizer.py --bundle results/experiments/demo/final
	$(BIN)/python benchmarks/bench_light_recognizer.py --bundle results/experiments/demo/final

clean:
	rm -rf results .snakemake data/demo data/demo-unseen
