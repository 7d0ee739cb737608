# pneumo — the two commands (see README):
#   make run [DATA=/path/to/chest_xray]   set up, then run notebooks 01-05 (bundled sample by default)
#   make test                             set up, then unit tests + nbval over the notebooks
# Other targets: lab (edit the notebooks), notebooks (refresh stored outputs), report, bench,
# train-full, lock, clean.

PYTHON ?= python3
VENV   ?= .venv
# Use the active virtual environment if there is one, else create ./.venv.
BIN    := $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV)/bin,$(VENV)/bin)
DATA   ?=
RUN    ?= $(if $(DATA),full,sample)
RUN_DIR ?= runs/$(RUN)
STAMP  := $(BIN)/.pneumo-installed
# Labelled new films (the external half): scored in 04 and 05 of a run on DATA, and by the
# shipped model's card, which chooses the site threshold on them.
EXTERNAL ?= $(wildcard ../shared/data/chest_xray_external)

export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install run test lab notebooks report bench train-full lock clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,dicom]"
	@touch $@

install: $(STAMP)

# Tests also exercise the JAX data-parallel engine (docs/scaling.md).
$(STAMP)-test: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,dicom,distributed]"
	@touch $@

run: install
	$(BIN)/pneumo run --run-dir $(RUN_DIR) $(if $(DATA),--data $(abspath $(DATA)) $(if $(EXTERNAL),--external $(EXTERNAL)))

# nbval re-executes every notebook in a fresh kernel on the bundled sample, writing into a
# throw-away run folder, and compares the cells marked NBVAL_CHECK_OUTPUT.
test: $(STAMP)-test
	rm -rf runs/nbval
	PNEUMO_RUN_DIR=$(CURDIR)/runs/nbval $(BIN)/python -m pytest tests notebooks \
		--nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

# JupyterLab on the project's environment. Notebooks are the source: jupytext (jupytext.toml)
# keeps each paired with its percent script in notebooks/ on every save.
lab: install
	$(BIN)/jupyter lab notebooks/

# Re-execute the notebooks on the bundled sample and store their outputs (what nbval compares);
# a script edited outside JupyterLab is brought into its notebook first.
notebooks: install
	$(BIN)/jupytext --sync notebooks/0*.ipynb
	rm -rf runs/store
	$(BIN)/pneumo run --run-dir runs/store --in-place
	$(BIN)/jupytext --sync notebooks/0*.ipynb

# Reviewer PDFs and the README results table. With DATA=..., first runs the five notebooks on it
# (full settings, runs/full); without, renders an existing run (RUN=full, RUN_DIR=...).
# Needs Chromium (Debian: apt-get install chromium), installed here when run as root.
report: install
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		{ [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium; } || \
		{ echo "make report needs Chromium: sudo apt-get install chromium"; exit 1; }
	$(BIN)/pneumo report $(RUN_DIR) $(if $(DATA),--data $(abspath $(DATA)) $(if $(EXTERNAL),--external $(EXTERNAL)))

# The shipped model: the full profile's recipe on the whole training split (benchmarks/
# results/train_full.json), its card, site threshold and LiteRT export, then the probabilities
# CI holds it to.
SHARED_DATA ?= ../shared/data/chest_xray
train-full: install
	$(BIN)/pneumo train --data $(if $(DATA),$(DATA),$(SHARED_DATA)) $(if $(EXTERNAL),--external $(EXTERNAL))
	$(BIN)/python tools/shipped_reference.py

# Speed figures and the chest-film gate's shares, printed and written as JSON to
# benchmarks/results/.
bench: install
	$(BIN)/python benchmarks/bench_pipeline.py --data $(if $(DATA),$(DATA),$(SHARED_DATA))
	$(BIN)/python benchmarks/bench_explain.py
	$(BIN)/python benchmarks/bench_model.py --data $(if $(DATA),$(DATA),$(SHARED_DATA))
	$(BIN)/python benchmarks/bench_gate.py --data $(dir $(SHARED_DATA))
	$(BIN)/python benchmarks/bench_transfer.py

lock: install
	$(BIN)/python -m pip freeze --exclude-editable > requirements-lock.txt

clean:
	rm -rf runs/sample runs/nbval runs/store .pytest_cache
