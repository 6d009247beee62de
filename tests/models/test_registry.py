"""Building models by name, from dicts (checkpoint headers) and from the Hydra config group."""

import dataclasses
import json
from pathlib import Path

import hydra
import pytest
from omegaconf import OmegaConf

from foundation.errors import UserError
from foundation.models import ANI, ANIConfig, build_model

CONFIG = Path(__file__).resolve().parents[2] / "hydra_configs" / "model" / "ani.yaml"


def test_build_from_json_dict_and_dataclass():
    config = ANIConfig(elements=["H", "O"], heads=["a", "b"])
    as_dict = json.loads(json.dumps(dataclasses.asdict(config)))
    model = build_model(as_dict)
    assert isinstance(model, ANI) and model.config == config
    assert build_model(config).heads == ["a", "b"]


def test_unknown_model_or_option_is_a_user_error():
    with pytest.raises(UserError, match="unknown model 'nope'.*ani"):
        build_model({"name": "nope"})
    with pytest.raises(UserError, match="no option.*widht"):
        build_model({"name": "ani", "widht": 3})
    with pytest.raises(UserError, match="no 'name'"):
        build_model({"elements": [1]})
    with pytest.raises(UserError, match="unknown model"):
        build_model({"name": "../os"})


def test_hydra_config_instantiates_the_ani1x_defaults():
    cfg = OmegaConf.load(CONFIG)
    config = hydra.utils.instantiate(cfg)
    assert config == ANIConfig()
    assert type(config.elements) is list and config.elements == [1, 6, 7, 8]
    # the same file read as plain data (e.g. a checkpoint header) builds the same model
    assert build_model(OmegaConf.to_container(cfg)).config == config
