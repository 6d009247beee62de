"""One process, one device: the reference engine the others must match step for step."""

from __future__ import annotations

import torch
from torch import nn

from foundation.train.engines.base import Engine, LocalOptimizer, resolve_device


class SingleEngine(LocalOptimizer, Engine):
    def __init__(self, device: str = "auto"):
        self.device = resolve_device(device)

    def wrap(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> nn.Module:
        self._model, self._optimizer = model, optimizer
        return model

    def all_reduce(self, values: dict[str, float], op: str = "mean", uneven: bool = False) -> dict[str, float]:
        return {k: float(v) for k, v in values.items()}


def build_engine(trainer_config, config=None) -> SingleEngine:
    return SingleEngine(trainer_config.device)
