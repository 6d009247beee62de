"""`foundation train [overrides…]`: compose the Hydra config, build the trainer, train, close.

    foundation train data.path=mine.xyz data.energy_key=E trainer.max_steps=100
    foundation train experiment=smoke data.path=tiny.xyz
    foundation train name=my_run resume=true
"""

from __future__ import annotations

import argparse
import sys

EPILOG = """overrides (Hydra syntax, key=value):
  model=ani|painn data=extxyz|shards trainer=default logger=csv|wandb experiment=<name>
  data.path=FILE data.energy_key=KEY data.forces_key=KEY data.fidelity=NAME
  trainer.max_steps=N trainer.lr=X trainer.device=auto|cpu|cuda trainer.init_from=MODEL
  trainer.freeze='[networks.*.layers.0.*]' name=RUN out_dir=DIR resume=true
configs live in hydra_configs/ (or $FOUNDATION_HYDRA_CONFIGS); --show-config prints the result."""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train or fine-tune a model (Hydra overrides)",
        usage="foundation train [--show-config] [KEY=VALUE ...]",
        description="Train a model. Configuration comes from hydra_configs/train.yaml and the overrides.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--show-config", action="store_true", help="print the composed config and exit")
    parser.set_defaults(func=run, accepts_overrides=True)


def run(args) -> int:
    from foundation.train.compose import compose_dict

    overrides = list(getattr(args, "overrides", []) or [])
    if args.show_config:
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(OmegaConf.create(compose_dict(overrides))), end="")
        return 0
    train(overrides)
    return 0


def train(overrides: list[str]):
    """What `foundation train OVERRIDES` does (rank 0 prints), returning the `TrainResult`: its
    `status` is "interrupted" when a signal stopped the run after a checkpoint (a launcher that
    requeues, recipes/slurm/submit.py, asks for it)."""
    from foundation.train.compose import load_run_config
    from foundation.train.trainer import Trainer

    config = load_run_config(overrides)
    trainer = Trainer(config)
    if trainer.engine.is_rank0:
        _print_summary(trainer)
    result = trainer.train()
    if trainer.engine.is_rank0:
        _print_result(result, config)
    return result


def _print_summary(trainer) -> None:
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


def _print_result(result, config) -> None:
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
