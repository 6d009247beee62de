"""`foundation train [overrides…]`: compose the Hydra config, build the trainer, train, close
(`foundation.train.run.train`; this module only parses the command line).

    foundation train data.path=mine.xyz data.energy_key=E trainer.max_steps=100
    foundation train experiment=smoke data.path=tiny.xyz
    foundation train name=my_run resume=true
"""

from __future__ import annotations

import argparse

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
    overrides = list(getattr(args, "overrides", []) or [])
    if args.show_config:
        from omegaconf import OmegaConf

        from foundation.train.compose import compose_dict

        print(OmegaConf.to_yaml(OmegaConf.create(compose_dict(overrides))), end="")
        return 0
    from foundation.train.run import train  # here: `foundation --help` and --show-config load no trainer

    train(overrides, verbose=True)
    return 0
