"""Model registry: a config dict (from a checkpoint header or Hydra) -> a built model.

Adding a model is adding a module `foundation/models/<name>.py` whose config dataclass carries
`@register_model("<name>")`, plus `hydra_configs/model/<name>.yaml`. `build_model` imports the
module by name on first use, and only from this package: a config read from a downloaded
checkpoint can name a model, never arbitrary code. A Hydra `_target_` anywhere in such a config is
never instantiated, and one outside the allow-list (`check_targets`) is refused outright.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Mapping
from typing import Any

from foundation.errors import UserError
from foundation.models.base import ModelConfig, PotentialModel

_MODELS: dict[str, type[ModelConfig]] = {}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# What a `_target_` in a model config may name. Not all of torch: `torch.hub.load` or `torch.load`
# would fetch or unpickle code, so only its building blocks (layers, optimisers) are allowed.
ALLOWED_TARGETS = ("foundation.", "torch.nn.", "torch.optim.")
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def register_model(name: str):
    """Class decorator for a `ModelConfig` subclass: `build_model({"name": name, ...})` uses it."""

    def decorate(cls: type[ModelConfig]) -> type[ModelConfig]:
        if not _NAME.match(name):
            raise ValueError(f"model name {name!r} must be lower-case letters, digits and '_'")
        if name in _MODELS and _MODELS[name] is not cls:
            raise ValueError(f"two models registered as {name!r}: {_MODELS[name]} and {cls}")
        _MODELS[name] = cls
        return cls

    return decorate


def model_config_class(name: str) -> type[ModelConfig]:
    if name not in _MODELS and isinstance(name, str) and _NAME.match(name):
        try:
            importlib.import_module(f"foundation.models.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"foundation.models.{name}":
                raise
    if name not in _MODELS:
        raise UserError(f"unknown model {name!r}; known models: {', '.join(sorted(_MODELS)) or 'none'}")
    return _MODELS[name]


def check_targets(config: Any, where: str = "model config") -> None:
    """Raise `UserError` if any `_target_` in `config` (nested dicts and lists included) names
    something outside `ALLOWED_TARGETS`, e.g. `os.system`: a config that came with a downloaded
    file is refused before any of it is built."""
    for key, target in _targets(config, ""):
        if not (isinstance(target, str) and _DOTTED.match(target) and target.startswith(ALLOWED_TARGETS)):
            raise UserError(f"{where}: {key}={target!r} is not allowed (a _target_ may only name "
                            f"{', '.join(p + '*' for p in ALLOWED_TARGETS)}); refusing to build it")


def _targets(value: Any, prefix: str):
    if isinstance(value, Mapping):
        for k, v in value.items():
            if k == "_target_":
                yield f"{prefix}_target_", v
            else:
                yield from _targets(v, f"{prefix}{k}.")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _targets(v, f"{prefix}{i}.")


def build_model(config: Mapping[str, Any] | ModelConfig) -> PotentialModel:
    """Build a model from its config: a `ModelConfig`, or a plain dict as written by
    `dataclasses.asdict(model.config)` (keys starting with '_', such as Hydra's `_target_`, are
    ignored once `check_targets` has passed them). The weights are fresh; load a state dict for trained ones."""
    return config.build() if isinstance(config, ModelConfig) else model_config(config).build()


def model_config(config: Mapping[str, Any]) -> ModelConfig:
    """The config dataclass of a plain dict (as `build_model` takes it), checked, not yet built."""
    check_targets(config)
    fields = {k: v for k, v in dict(config).items() if not str(k).startswith("_")}
    if "name" not in fields:
        raise UserError("model config has no 'name' (which model to build, e.g. 'ani')")
    cls = model_config_class(fields["name"])
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise UserError(f"model {fields['name']!r} has no option(s) {', '.join(unknown)}; "
                        f"its options are {', '.join(sorted(known))}")
    return cls(**fields)
