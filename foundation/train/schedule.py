"""Learning-rate schedule: linear warm-up, then cosine decay to `min_lr`, a plateau schedule
(cut by `factor` when validation stalls for `patience` validations), or constant.

The rate is a pure function of the step (plus, for plateau, a small saved state), written into
the optimiser's param groups before each step; so resuming at step k gives exactly the rate an
uninterrupted run had at step k."""

from __future__ import annotations

import math

import torch


class Schedule:
    def __init__(self, optimizer: torch.optim.Optimizer, lr: float, max_steps: int,
                 warmup_steps: int = 0, kind: str = "cosine", min_lr: float = 0.0,
                 plateau_factor: float = 0.5, plateau_patience: int = 5):
        self.optimizer = optimizer
        self.lr, self.min_lr = lr, min_lr
        self.max_steps, self.warmup_steps = max_steps, warmup_steps
        self.kind = kind
        self.factor, self.patience = plateau_factor, plateau_patience
        self.plateau_scale = 1.0
        self.best = math.inf
        self.bad_evals = 0
        for group in optimizer.param_groups:  # a group may scale the base rate (lr_scale)
            group.setdefault("lr_scale", 1.0)

    def lr_at(self, step: int) -> float:
        """Rate for optimiser step `step` (1-based)."""
        if self.warmup_steps and step <= self.warmup_steps:
            return self.lr * step / self.warmup_steps
        if self.kind == "cosine":
            span = max(self.max_steps - self.warmup_steps, 1)
            progress = min((step - self.warmup_steps) / span, 1.0)
            return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * progress))
        if self.kind == "plateau":
            return max(self.lr * self.plateau_scale, self.min_lr)
        return self.lr

    def set_step(self, step: int) -> float:
        lr = self.lr_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        return lr

    def observe(self, metric: float) -> None:
        """Feed a validation metric (lower is better); only the plateau schedule reacts."""
        if self.kind != "plateau" or not math.isfinite(metric):
            return
        if metric < self.best:
            self.best, self.bad_evals = metric, 0
            return
        self.bad_evals += 1
        if self.bad_evals > self.patience:
            self.plateau_scale *= self.factor
            self.bad_evals = 0

    def state_dict(self) -> dict:
        return {"plateau_scale": self.plateau_scale, "best": self.best, "bad_evals": self.bad_evals}

    def load_state_dict(self, state: dict) -> None:
        self.plateau_scale = float(state["plateau_scale"])
        self.best = float(state["best"])
        self.bad_evals = int(state["bad_evals"])
