# The two commands of the README: `make demo` and `make test`. Each creates .venv when it is
# missing, installs torch first (pinned: a local CPU wheel here, pip's default build elsewhere;
# override with TORCH_SPEC, e.g. for a CUDA index), then the project, then runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
# One thread per process by default: on small shared machines oversubscription costs 10x.
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: install demo test test-all bench bench-peers clean

$(STAMP): pyproject.toml setup.py Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e '.[dev,hub,distributed,wandb,slurm,mace]'
	touch $(STAMP)

install: $(STAMP)

# Typed again: the finished result at once, or a fresh run; DEMO_ARGS=--fresh always runs afresh.
demo: install
	$(BIN)/python -m foundation.recipes.demo $(DEMO_ARGS)

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-all: install
	$(BIN)/python -m pytest -q -p no:cacheprovider -m ''

bench: install
	$(BIN)/python -m benchmarks.run_all

# mace-torch's own mace_run_train against our model=mace (and ANI, PaiNN) on the embedded data:
# ~40 minutes on 2 cores, so not in `make bench`.
# The DFT trainings are kept in runs/bench/ (the transfer comparison starts from them; a second run
# with the same inputs reuses them).
bench-peers: install
	FOUNDATION_BENCH_WORK=runs/bench $(BIN)/python -m benchmarks.run_all --only peers_mace peers_mace_transfer

clean:
	rm -rf $(VENV) outputs runs
