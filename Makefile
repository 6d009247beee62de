# The commands of the README: `make demo`, `make test` and `make test-all`. Each creates .venv when it is
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

TEST_WORKERS ?= auto
# pytest's exit code passes through; 5 means it collected no tests, an error here too, said in words.
pytest = $(BIN)/python -m pytest -q -p no:cacheprovider $(1) $(PYTEST_ARGS) || { status=$$?; \
	if [ $$status -eq 5 ]; then echo "make: pytest collected no tests (exit 5)" >&2; fi; exit $$status; }

.PHONY: install demo test test-all bench bench-peers clean

# No pip cache: the wheels are installed once per venv, and a cached copy doubles what a small CI
# disk must hold (a CI run once failed here with "No space left on device" while installing).
$(STAMP): pyproject.toml setup.py Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --no-cache-dir --upgrade pip
	$(BIN)/python -m pip install -q --no-cache-dir "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q --no-cache-dir -e '.[dev,hub,distributed,wandb,slurm,mace]'
	touch $(STAMP)

install: $(STAMP)

# Typed again: the finished result at once, or a fresh run; DEMO_ARGS=--fresh always runs afresh.
demo: install
	$(BIN)/python -m foundation.recipes.demo $(DEMO_ARGS)

# The fast tier (pyproject.toml's addopts leave out `integration` and `slow`), one worker per core:
# under 6 minutes on 2 cores. Every run ends with its 15 slowest tests (addopts: --durations=15).
test: install
	$(call pytest,-n $(TEST_WORKERS) --dist loadgroup)

# Everything, as CI runs it (.ci/run). The integration tests share one worker (tests/conftest.py
# groups them), so two torchruns never compete for the cores; the fast tier runs on the others.
test-all: install
	$(call pytest,-m '' -n $(TEST_WORKERS) --dist loadgroup)

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
