"""From `hydra_configs/train.yaml` plus command-line overrides to a typed `RunConfig`.

Hydra's compose API does the composing (groups `model`, `data`, `trainer`, `logger`,
`experiment`); nothing here changes directory or starts a Hydra app. The composed `DictConfig`
stops in this module: each group becomes its dataclass (named by the group's `_target_`, which
must be a dataclass), so library code only ever sees typed configs. Mistakes come back as one
line: an unknown key lists the valid ones, an unknown group option lists the available ones."""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

from foundation.errors import UserError
from foundation.train.config import LoggerConfig, RunConfig, TrainerConfig

CONFIG_ENV = "FOUNDATION_HYDRA_CONFIGS"  # a different config tree, e.g. a site's own
PRIMARY = "train"
_GROUPS = ("model", "data", "trainer", "logger", "distributed", "recipe", "experiment")


def config_dir() -> Path:
    """`$FOUNDATION_HYDRA_CONFIGS`, else the tree installed with the package, `foundation.configs`
    (the repository's `hydra_configs/`, mapped by setup.py), found from any folder."""
    if os.environ.get(CONFIG_ENV):
        path = Path(os.environ[CONFIG_ENV]).expanduser()
    else:
        # A regular package installed as files (wheel or editable), so files() is a real folder.
        path = Path(str(resources.files("foundation.configs")))
    if not (path / f"{PRIMARY}.yaml").is_file():
        raise UserError(f"{path}: no {PRIMARY}.yaml here; set {CONFIG_ENV} to a hydra_configs directory")
    return path


def compose_dict(overrides: list[str], directory: Path | None = None) -> dict[str, Any]:
    """The composed, resolved config as plain dicts and lists."""
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    directory = directory or config_dir()
    try:
        return _compose(overrides, directory)
    except MissingConfigException as e:
        raise UserError(_missing_option(e, overrides, directory)) from None
    except (HydraException, OmegaConfBaseException) as e:
        raise UserError(_bad_override(e, overrides, directory)) from None


def _compose(overrides: list[str], directory: Path) -> dict[str, Any]:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(directory), version_base="1.3"):
        cfg = compose(config_name=PRIMARY, overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


def load_run_config(overrides: list[str], directory: Path | None = None) -> RunConfig:
    cfg = compose_dict(overrides, directory)
    model = {k: v for k, v in (cfg.get("model") or {}).items() if k not in ("_target_", "_convert_")}
    return RunConfig(
        model=model,  # built by the trainer once the data say which elements and heads
        data=instantiate(cfg.get("data"), "data"),
        trainer=instantiate(cfg.get("trainer") or {}, "trainer", TrainerConfig),
        logger=instantiate(cfg.get("logger") or {}, "logger", LoggerConfig),
        distributed=_engine(cfg.get("distributed", "single")),
        **{k: cfg[k] for k in ("name", "out_dir", "resume") if k in cfg},
    )


def _engine(node):
    """The group `distributed` (a config with `_target_`), or a bare engine name."""
    return instantiate(node, "distributed") if isinstance(node, dict) else node


def instantiate(node: dict | None, where: str, default: type | None = None):
    """The dataclass a config group names by `_target_` (or `default`), filled from `node`."""
    if not isinstance(node, dict):
        raise UserError(f"{where}: no config selected (e.g. {where}=<name>)")
    fields = {k: v for k, v in node.items() if not k.startswith("_")}
    target = node.get("_target_")
    cls = _import(target, where) if target else default
    if cls is None or not dataclasses.is_dataclass(cls):
        raise UserError(f"{where}._target_={target!r}: must name a config dataclass")
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = [k for k in fields if k not in known]
    if unknown:
        raise UserError(f"{where}.{unknown[0]}: unknown key; valid keys: {', '.join(known)}")
    return cls(**fields)


# Modules whose config classes moved (issue 30). A saved config (a run's config.yaml, a training
# checkpoint's run config, a site's own config tree) names the class where it was: it still loads.
MOVED = {
    "foundation.data.memory": "foundation.data.sources.in_memory",
    "foundation.data.shards_module": "foundation.data.sources.shards",
    "foundation.data.embedded_data": "foundation.data.sources.embedded",
}


def current_target(target: str) -> str:
    """`target` with a moved module replaced by where it lives now."""
    module, _, name = str(target).rpartition(".")
    return f"{MOVED[module]}.{name}" if module in MOVED else str(target)


def _import(target: str, where: str):
    module, _, name = current_target(target).rpartition(".")
    if not module.startswith("foundation."):
        raise UserError(f"{where}._target_={target!r}: only Foundation's own configs may be named")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise UserError(f"{where}._target_={target!r}: no such class") from None


def _missing_option(error, overrides: list[str], directory: Path) -> str:
    for group in _GROUPS:
        if f"'{group}/" in str(error):
            options = sorted(p.stem for p in (directory / group).glob("*.yaml"))
            chosen = next((o for o in overrides if o.lstrip("+").startswith(f"{group}=")), group)
            return f"{chosen}: no such {group} config; available: {', '.join(options)}"
    return str(error).splitlines()[0]


def _bad_override(error, overrides: list[str], directory: Path) -> str:
    """One line for a failed override: the unknown key and the valid keys beside it."""
    text = str(error)
    match = re.search(r"full_key: (\S+)", text) or re.search(r"Could not (?:override|append to) '([^']+)'", text)
    if match is None:
        return _first_lines(text)
    key = match.group(1)
    parent, _, leaf = key.rpartition(".")
    # The config as the group choices alone make it: where the valid keys are listed.
    groups_only = [o for o in overrides if o.split("=")[0].lstrip("+") in _GROUPS]
    try:
        node = _compose(groups_only, directory)
        for part in filter(None, parent.split(".")):
            node = node[part]
        valid = ", ".join(sorted(k for k in node if not k.startswith("_")))
    except Exception:  # noqa: BLE001 - the original message is still worth showing
        return _first_lines(text)
    where = f"{parent}." if parent else ""
    return f"unknown key {where}{leaf} in override {_override_for(key, overrides)!r}; valid keys of " \
           f"{parent or 'the top level'}: {valid}"


def _first_lines(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return ": ".join(lines[:2]) if len(lines) > 1 and not lines[1].startswith("full_key") else lines[0]


def _override_for(key: str, overrides: list[str]) -> str:
    return next((o for o in overrides if o.lstrip("+~").split("=")[0] == key), key)
