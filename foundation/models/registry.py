"""Model registry: a config dict (from a checkpoint header or Hydra) -> a built model.

Adding a model is adding a module `foundation/models/<name>.py` whose config dataclass carries
`@register_model("<name>")`, plus `hydra_configs/model/<name>.yaml`. `build_model` imports the
module by name on first use, and only from this package: a config read from a downloaded
checkpoint can name a model, never arbitrary code.
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


def build_model(config: Mapping[str, Any] | ModelConfig) -> PotentialModel:
    """Build a model from its config: a `ModelConfig`, or a plain dict as written by
    `dataclasses.asdict(model.config)` (keys starting with '_', such as Hydra's `_target_`, are
    ignored). The weights are fresh; load a state dict for trained ones."""
    if isinstance(config, ModelConfig):
        return config.build()
    fields = {k: v for k, v in dict(config).items() if not str(k).startswith("_")}
    if "name" not in fields:
        raise UserError("model config has no 'name' (which model to build, e.g. 'ani')")
    cls = model_config_class(fields["name"])
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise UserError(f"model {fields['name']!r} has no option(s) {', '.join(unknown)}; "
                        f"its options are {', '.join(sorted(known))}")
    return cls(**fields).build()
