"""Small pieces of run state: the trainer's counters (saved in every checkpoint) and the plain,
serialisable form of configs (for `config.yaml`, checkpoints and the wandb run)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any
from foundation.files import write_text_atomic


@dataclasses.dataclass
class TrainState:
    step: int = 0  # optimiser steps taken (skipped non-finite steps included)
    best_metric: float = math.inf  # best early-stopping metric so far (lower is better)
    best_step: int = 0  # the step that reached it
    best_metrics: dict = dataclasses.field(default_factory=dict)  # its validation metrics
    bad_evals: int = 0  # validations since it last improved
    start_metric: float = math.nan  # the metric at step 0 (the start: a pretrained model, refit references)
    start_error: float = 0.0  # its bootstrap standard error (train/significance.py): the floor's margin
    best_trained_metric: float = math.inf  # the best after a step was taken, and its step
    best_trained_step: int = 0
    nonfinite_total: int = 0
    nonfinite_run: int = 0  # consecutive non-finite steps


def plain(value: Any) -> Any:
    """Dataclasses, paths and containers as dicts, lists, strings and numbers (JSON/YAML-ready);
    a config dataclass gains a `_target_` naming its class, as in hydra_configs."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        out = {"_target_": f"{cls.__module__}.{cls.__qualname__}"}
        out.update({f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)})
        return out
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def write_config(path: Path, config: dict) -> None:
    """The resolved run config as YAML, written atomically."""
    from omegaconf import OmegaConf

    write_text_atomic(path, OmegaConf.to_yaml(OmegaConf.create(config)))


def config_changes(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain configs (for a resume that changed them)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [change for key in sorted(set(old) | set(new), key=str)
                for change in config_changes(old.get(key), new.get(key), f"{prefix}{key}.")]
    if prefix.endswith("_target_."):  # a config saved before its class moved names it where it was
        from foundation.train.compose import current_target

        old, new = (current_target(v) if isinstance(v, str) else v for v in (old, new))
    return [] if old == new else [prefix.rstrip(".")]
