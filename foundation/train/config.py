"""Typed configs of a training run. Hydra fills them from `hydra_configs/` (`trainer/`, `logger/`);
each validates itself on construction, so a bad value fails before any data is read, with one
line naming the key."""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any

from foundation.errors import UserError

SCHEDULES = ("cosine", "plateau", "constant")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float32", "float64")
ENGINES = ("single", "ddp", "deepspeed")


@dataclasses.dataclass
class TrainerConfig:
    """Optimisation, validation and checkpointing of one run. Steps count optimiser steps."""

    max_steps: int = 1000
    lr: float = 1e-3  # peak learning rate of AdamW, reached after warm-up
    weight_decay: float = 1e-5  # AdamW decay, on weight matrices only (not biases)
    warmup_steps: int = 100  # linear warm-up from lr/warmup_steps to lr
    schedule: str = "cosine"  # after warm-up: cosine to min_lr | plateau | constant
    min_lr: float = 1e-5
    plateau_factor: float = 0.5  # plateau: lr *= factor when the metric stalls ...
    plateau_patience: int = 5  # ... for this many validations
    ema_decay: float = 0.999  # exponential moving average of weights; 0 turns it off
    grad_clip: float | None = 10.0  # max global gradient norm; null turns clipping off
    energy_weight: float = 1.0  # on the MSE of per-atom energies, (eV/atom)^2
    forces_weight: float = 1.0  # on the MSE of force components, (eV/Å)^2
    fidelity_weights: dict[str, float] | None = None  # default 1 each; null in the YAML (see l2sp_by_name)
    size_weighting: float = 0.0  # per-atom energy errors weighted by (n_atoms / batch mean)^this (train/loss.py)
    val_every: int = 100
    val_at_start: bool = True  # validate before the first step (shows where a fine-tune starts)
    ckpt_every: int = 500
    keep_checkpoints: int = 3  # the newest K training checkpoints are kept
    log_every: int = 10
    seed: int = 0
    device: str = "auto"  # auto picks cuda when there is one
    dtype: str = "float32"  # of the model weights; energies are always accumulated in float64
    freeze: list[str] = dataclasses.field(default_factory=list)  # parameter-name patterns, see freeze.py
    init_from: str | None = None  # a model to start from (weights only, a fresh run): not a resume
    init_member: int | None = None  # init_from is an ensemble: start from this member (0-based)
    new_head_from: str | None = None  # head that initialises heads init_from lacks (default: its first)
    refit_reference_energies: bool = False  # refit heads that init_from already has references for
    reference_ridge: float = 1e-4  # refit from a prior: ridge toward it, relative (models/reference.py)
    early_stopping_patience: int = 0  # stop after this many validations without improvement; 0: off
    early_stopping_metric: str = "val/loss"  # a key, a weighted sum, or val/<fid>/auto (train/selection.py)
    allow_worse: bool = False  # early stopping: may keep weights worse than the start's (step 0)
    # Early stopping: a step beats the start only when lower than the start's value by more than
    # this many of its standard errors (bootstrap over validation molecules and their structures,
    # train/significance.py), so a number that moved by chance is no improvement; 0: any lower
    significance: float = 1.0
    bootstrap_draws: int = 200  # resamples of the validation set for that standard error
    max_nonfinite_steps: int = 10  # consecutive NaN/inf steps tolerated (each skipped) before stopping
    accumulate: int = 1  # batches per optimiser step and rank: the global batch is world × accumulate × batch
    l2sp: float = 0.0  # pull toward the start's weights, strength/2 * sum (w - w0)^2 (train/anchor.py); 0: off
    # strengths of their own for the weights whose names match, {pattern: strength} (the first match
    # decides; patterns as in `freeze`), e.g. {networks.N.*: 1e-2}; the rest take l2sp
    # (null in the YAML, so that `trainer.l2sp_by_name={...}` sets it whole: struct mode refuses new keys)
    l2sp_by_name: dict[str, float] | None = None
    # CPU seconds this process may spend in the loop (validations included) before it ends as at
    # max_steps: a fine-tune that must keep a CPU budget (foundation adapt); null: no limit
    cpu_seconds: float | None = None

    def __post_init__(self):
        check_types(self, "trainer")
        _positive(self, "trainer", "max_steps", "lr", "val_every", "ckpt_every", "log_every",
                  "keep_checkpoints", "max_nonfinite_steps", "accumulate")
        _non_negative(self, "trainer", "weight_decay", "warmup_steps", "min_lr", "energy_weight",
                      "forces_weight", "size_weighting", "plateau_patience", "early_stopping_patience", "reference_ridge", "l2sp",
                      "significance")
        if self.cpu_seconds is not None and self.cpu_seconds <= 0:
            raise UserError(f"trainer.cpu_seconds={self.cpu_seconds}: must be above 0 (or null: no limit)")
        if self.bootstrap_draws < 2:
            raise UserError(f"trainer.bootstrap_draws={self.bootstrap_draws}: must be 2 or more")
        _choice(self, "trainer", "schedule", SCHEDULES)
        _choice(self, "trainer", "device", DEVICES)
        _choice(self, "trainer", "dtype", DTYPES)
        if not 0.0 <= self.ema_decay < 1.0:
            raise UserError(f"trainer.ema_decay={self.ema_decay}: must be in [0, 1)")
        if not 0.0 < self.plateau_factor < 1.0:
            raise UserError(f"trainer.plateau_factor={self.plateau_factor}: must be in (0, 1)")
        if self.grad_clip is not None and self.grad_clip <= 0:
            self.grad_clip = None
        if self.min_lr > self.lr:
            raise UserError(f"trainer.min_lr={self.min_lr} is above trainer.lr={self.lr}")
        self.l2sp_by_name = dict(self.l2sp_by_name or {})
        for pattern, w in self.l2sp_by_name.items():
            if not isinstance(w, (int, float)) or isinstance(w, bool) or w < 0:
                raise UserError(f"trainer.l2sp_by_name.{pattern}={w!r}: must be a number >= 0")
        self.fidelity_weights = dict(self.fidelity_weights or {})
        for fid, w in self.fidelity_weights.items():
            if not isinstance(w, (int, float)) or w < 0:
                raise UserError(f"trainer.fidelity_weights.{fid}={w!r}: must be a number >= 0")
        if self.init_from is not None:
            self.init_from = os.path.expanduser(self.init_from)


@dataclasses.dataclass
class LoggerConfig:
    """Where metrics go. `metrics.csv` in the run directory is always written; wandb is optional
    (`logger=wandb`), and `wandb_mode=offline` needs no network."""

    progress_bar: bool = True
    wandb: bool = False
    wandb_project: str = "foundation"
    wandb_entity: str | None = None
    wandb_mode: str = "offline"  # online | offline | disabled

    def __post_init__(self):
        check_types(self, "logger")
        _choice(self, "logger", "wandb_mode", ("online", "offline", "disabled"))


@dataclasses.dataclass
class RunConfig:
    """One `foundation train` invocation: the parts' configs and where the run lives.
    `data` is the config its group names by `_target_` (a dataclass with `build()`); `model` is a
    model config dataclass, or the plain dict `foundation.models.build_model` takes (what the CLI
    passes: `elements` and `heads` may be left unset and are then filled from the data)."""

    model: Any
    data: Any
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    logger: LoggerConfig = dataclasses.field(default_factory=LoggerConfig)
    name: str = "run"
    out_dir: str = "runs"
    resume: bool = False
    distributed: Any = "single"  # an engine name, or its config (group `distributed`, engines/distributed_env.py)

    def __post_init__(self):
        if not callable(getattr(self.data, "build", None)):
            raise UserError(f"data: config {type(self.data).__name__} has no build()")
        if not isinstance(self.model, dict) and not callable(getattr(self.model, "build", None)):
            raise UserError(f"model: config {type(self.model).__name__} has no build()")
        if not self.name or "/" in self.name or self.name in (".", ".."):
            raise UserError(f"name={self.name!r}: must be a plain directory name")
        engine = getattr(self.distributed, "name", self.distributed)
        if engine not in ENGINES:
            raise UserError(f"distributed={engine!r}: must be one of {', '.join(ENGINES)}")

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir).expanduser() / self.name


def check_types(config, prefix: str) -> None:
    """Check each field against its annotation (int, float, str, bool, optional, list, dict) so
    `trainer.max_steps=ten` is one clear error rather than a crash deep in the loop. Ints are
    accepted (and converted) where floats are expected."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        ok, value = _conforms(value, hints[field.name])
        if not ok:
            raise UserError(f"{prefix}.{field.name}={value!r}: expected {_type_name(hints[field.name])}")
        setattr(config, field.name, value)


def _conforms(value, hint) -> tuple[bool, Any]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(hint):
            ok, converted = _conforms(value, arm)
            if ok:
                return True, converted
        return False, value
    if hint is type(None):
        return value is None, value
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        return False, value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint in (str, bool):
        return isinstance(value, hint), value
    if origin is list:
        return isinstance(value, (list, tuple)), list(value) if isinstance(value, (list, tuple)) else value
    if origin is dict:
        return isinstance(value, dict), dict(value) if isinstance(value, dict) else value
    return True, value


def _type_name(hint) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def _positive(config, prefix, *names):
    for name in names:
        if getattr(config, name) <= 0:
            raise UserError(f"{prefix}.{name}={getattr(config, name)}: must be > 0")


def _non_negative(config, prefix, *names):
    for name in names:
        if getattr(config, name) < 0:
            raise UserError(f"{prefix}.{name}={getattr(config, name)}: must be >= 0")


def _choice(config, prefix, name, choices):
    value = getattr(config, name)
    if value not in choices:
        key = f"{prefix}.{name}" if prefix else name
        raise UserError(f"{key}={value!r}: must be one of {', '.join(choices)}")
