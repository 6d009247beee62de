"""Parallelism backends behind one interface (`base.Engine`), chosen by the run's
`distributed=single|ddp|deepspeed`. Each lives in `engines/<name>.py` and exposes
`build_engine(trainer_config, config=None) -> Engine`; the trainer never asks which one it has."""

from __future__ import annotations

import importlib

from foundation.errors import UserError
from foundation.train.engines.base import Engine

__all__ = ["Engine", "build_engine"]


def build_engine(config, trainer_config) -> Engine:
    """`config`: the engine's name, or its config (a `DistributedConfig` from the Hydra group
    `distributed`, whose `name` picks the module)."""
    name = config if isinstance(config, str) else config.name
    try:
        module = importlib.import_module(f"foundation.train.engines.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"foundation.train.engines.{name}":
            raise
        raise UserError(f"distributed={name}: no such engine in this installation") from None
    return module.build_engine(trainer_config) if isinstance(config, str) else module.build_engine(trainer_config, config)
