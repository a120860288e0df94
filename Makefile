# Two commands do everything on a fresh clone: `make reproduce` and `make test`.
# Each installs the project into .venv first (once; re-run when settings.ini changes).
SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch first and pinned to the version the tests ran on. From PyPI on Linux x86-64 it is the CUDA build (GBs of
# NVIDIA wheels, what a GPU machine wants); on a CPU-only machine use the CPU build:
#   make TORCH='torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu' install
TORCH ?= torch==2.13.0
# nbdev 2 (settings.ini, nbdev_test): this set resolves with ordinary pip (nbdev 2.4.7 needs fastcore>=1.8.14).
NBDEV := nbdev==2.4.7 execnb==0.1.16 fastcore==1.8.18 ghapi==1.0.6

.PHONY: install test reproduce export clean-nbs readme docs
install: $(STAMP)

$(STAMP): settings.ini setup.py
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q $(NBDEV)
	$(BIN)/pip install -q --no-build-isolation -e '.[dev,hf]'
	$(BIN)/pip check
	touch $(STAMP)

# Hash of a folder's files, to see whether a command changed them.
tree_hash = find $(1) -type f \( -name '*.py' -o -name '*.ipynb' \) -not -path '*/.ipynb_checkpoints/*' | sort | xargs md5sum | md5sum

test: $(STAMP)
	@before=$$($(call tree_hash,resm)); $(BIN)/nbdev_export; \
	  [ "$$before" = "$$($(call tree_hash,resm))" ] || { echo "FAIL: resm/ was out of date with nbs/ (nbdev_export changed it)"; exit 1; }
	@before=$$($(call tree_hash,nbs)); $(BIN)/nbdev_clean; \
	  [ "$$before" = "$$($(call tree_hash,nbs))" ] || { echo "FAIL: notebooks were not clean (nbdev_clean changed nbs/)"; exit 1; }
	$(BIN)/nbdev_test --n_workers 2 --timing
	$(BIN)/python -m pytest tests/ -q -p no:cacheprovider

reproduce: $(STAMP)
	$(BIN)/resm reproduce --profile mini

# Library notebooks are the documentation: re-execute them in place with their outputs (as nbdev_test runs them:
# IN_TEST=1, slow/gpu cells skipped), strip run metadata, then build the site into _docs/ (docs/build_site.py).
# NBS=nbs/00_tokenizer.ipynb re-executes just one.
NBS ?=
docs: $(STAMP)
	$(BIN)/python docs/run_notebooks.py $(NBS)
	$(BIN)/nbdev_clean
	$(BIN)/python docs/build_site.py --out _docs

export: $(STAMP)
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean

readme: $(STAMP)
	$(BIN)/jupyter nbconvert --to markdown nbs/index.ipynb --output-dir . --output README
