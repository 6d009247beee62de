"""One training run from Hydra overrides: compose the config, build the trainer, train, close.

What `foundation train OVERRIDES` does, and what every recipe, launcher and benchmark that trains
calls, so that they all train the same way (the CLI is a face over this, not its owner):

    from foundation.train import train
    result = train(["data.path=mine.xyz", "trainer.max_steps=100"], recipe="finetune")
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Sequence

from foundation.train.compose import load_run_config
from foundation.train.trainer import TrainResult, Trainer


def train(overrides: Sequence[str] = (), recipe: str | None = None, quiet: bool = False,
          verbose: bool = False) -> TrainResult:
    """Train `hydra_configs/train.yaml` + `recipe=<recipe>` (if given) + `overrides`.

    `verbose`: rank 0 prints the run's summary before and its result after (`foundation train`).
    `quiet`: the trainer's own output is swallowed. Otherwise only the one-line reason is printed
    when an early-stopping run wrote its start because no step beat it (also `result.note`).
    `result.status` is "interrupted" when a signal stopped the run after a checkpoint (a launcher
    that requeues, recipes/slurm/submit.py, asks for it)."""
    config = load_run_config(([f"recipe={recipe}"] if recipe else []) + list(overrides))
    trainer = Trainer(config)
    show = verbose and trainer.engine.is_rank0
    try:
        if show:
            print_summary(trainer)
        with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
            result = trainer.train()
    finally:
        trainer.close()
    if show:
        print_result(result, config)
    elif result.note and not quiet:  # early stopping wrote the start: no step beat it (issue 20)
        print(f"{config.name}: {result.note}", flush=True)
    return result


def print_summary(trainer: Trainer) -> None:
    """The model, data, start and device of a run, before its first step."""
    total, trainable = trainer.n_parameters
    data = trainer.data
    summary = data.summary() if callable(getattr(data, "summary", None)) else {}
    counts = ", ".join(f"{k.removesuffix('_structures')} {v}" for k, v in summary.items()
                       if k.endswith("_structures"))
    if trainer.resumed_from is not None:
        start = f"resuming from step {trainer.resumed_from}"
    else:
        start = f"from {trainer.config.init_from}" if trainer.config.init_from else "from scratch"
        start += " (resume=true found no checkpoint: a new run)" if trainer.run.resume else ""
    print(f"model: {trainer.model.config.name}, {total:,} parameters ({trainable:,} trainable), "
          f"heads {', '.join(trainer.model.heads)}, {start}")
    print(f"data: fidelities {', '.join(data.fidelities)}; elements {data.elements}"
          + (f"; structures: {counts}" if counts else ""))
    if trainer.resumed_from is None and not trainer.config.init_from:
        given = trainer.run.model if isinstance(trainer.run.model, dict) else vars(trainer.run.model)
        derived = [f"{k} {getattr(trainer.model.config, k):.4g}" for k, v in given.items() if v == "auto"]
        if derived:  # e.g. MACE's avg_num_neighbors, as mace_run_train computes it
            print(f"model settings from the training data: {', '.join(derived)}")
    print(f"device: {trainer.engine.device}, {trainer.config.dtype}; run dir: {trainer.run_dir}")
    if trainer.resplit:  # resumed on another number of ranks
        print(f"resuming on {trainer.engine.world_size} rank(s): {trainer.resplit}")
    sys.stdout.flush()


def print_result(result: TrainResult, config) -> None:
    """How the run ended, its validation errors and where the model is."""
    if result.status == "interrupted":
        print(f"stopped by signal at step {result.step}; checkpoint written. Continue with: "
              f"foundation train name={config.name} out_dir={config.out_dir} resume=true …")
        return
    shown = {k: v for k, v in result.metrics.items() if k.endswith(("energy_mae", "forces_mae"))}
    print(f"{result.status} at step {result.step}: "
          + ", ".join(f"{k.removeprefix('val/')} {v:.4g}" for k, v in shown.items()))
    if result.note:  # early stopping found no step better than the start, which was written
        print(result.note)
    print(f"model: {result.model_path}")
    sys.stdout.flush()
