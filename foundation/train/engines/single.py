"""One process, one device: the reference engine the others must match step for step."""

from __future__ import annotations

import torch
from torch import nn

from foundation.train.engines.base import Engine, resolve_device


class SingleEngine(Engine):
    def __init__(self, device: str = "auto"):
        self.device = resolve_device(device)
        self._model: nn.Module | None = None
        self._optimizer: torch.optim.Optimizer | None = None

    def wrap(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> nn.Module:
        self._model, self._optimizer = model, optimizer
        return model

    @property
    def model(self) -> nn.Module:
        return self._model

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self._optimizer

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def clip_grad_norm(self, max_norm: float | None) -> torch.Tensor:
        params = [p for p in self._model.parameters() if p.grad is not None]
        if not params:
            return torch.zeros((), device=self.device)
        return torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm else float("inf"))

    def step(self) -> None:
        self._optimizer.step()
        self._optimizer.zero_grad(set_to_none=True)

    def skip_step(self) -> None:
        self._optimizer.zero_grad(set_to_none=True)

    def all_reduce(self, values: dict[str, float], op: str = "mean") -> dict[str, float]:
        return {k: float(v) for k, v in values.items()}

    def state_dict(self) -> dict:
        return {"model": self._model.state_dict(), "optimizer": self._optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self._model.load_state_dict(state["model"])
        self._optimizer.load_state_dict(state["optimizer"])


def build_engine(trainer_config, config=None) -> SingleEngine:
    return SingleEngine(trainer_config.device)
