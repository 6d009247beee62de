"""Exponential moving average of the trainable weights: what is validated and exported.

Only parameters that train are averaged; frozen ones are never touched, so they stay
bit-identical (x*d + x*(1-d) need not round back to x). The decay ramps up as
min(decay, (1 + n) / (10 + n)) over the first updates, so a short run's average is not dominated
by its random initialisation."""

from __future__ import annotations

import contextlib

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = float(decay)
        self.num_updates = 0
        self.shadow = {name: p.detach().clone() for name, p in model.named_parameters()
                       if p.requires_grad}

    @property
    def enabled(self) -> bool:
        return self.decay > 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for name, p in model.named_parameters():
            if name not in self.shadow:
                continue
            if self.enabled:
                self.shadow[name].lerp_(p.detach(), 1.0 - d)
            else:  # no averaging: the shadow is the weights themselves
                self.shadow[name].copy_(p)

    @contextlib.contextmanager
    def applied(self, model: nn.Module):
        """Within the block the model holds the averaged weights; the training weights are put back
        exactly (copied, not recomputed) when it ends."""
        params = dict(model.named_parameters())
        backup = {name: params[name].detach().clone() for name in self.shadow}
        with torch.no_grad():
            for name, value in self.shadow.items():
                params[name].copy_(value)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, value in backup.items():
                    params[name].copy_(value)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        for name, value in self.shadow.items():
            params[name].copy_(value)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict) -> None:
        missing = set(self.shadow) ^ set(state["shadow"])
        if missing:
            raise KeyError(f"EMA state does not match the model's trainable parameters: {sorted(missing)[:5]}")
        self.num_updates = int(state["num_updates"])
        for name, value in state["shadow"].items():
            self.shadow[name].copy_(value)
