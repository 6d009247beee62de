"""Typed configs validate themselves: one line naming the key."""

from __future__ import annotations

import pytest
import torch

from foundation.errors import UserError
from foundation.train.config import LoggerConfig, RunConfig, TrainerConfig
from foundation.train.freeze import freeze


@pytest.mark.parametrize("kwargs, message", [
    ({"max_steps": "ten"}, r"trainer.max_steps='ten': expected int"),
    ({"max_steps": 0}, r"trainer.max_steps=0: must be > 0"),
    ({"lr": True}, r"trainer.lr=True: expected float"),
    ({"schedule": "linear"}, r"trainer.schedule='linear': must be one of cosine, plateau, constant"),
    ({"device": "tpu"}, r"trainer.device='tpu'"),
    ({"ema_decay": 1.0}, r"trainer.ema_decay=1.0: must be in \[0, 1\)"),
    ({"min_lr": 1.0}, r"trainer.min_lr=1.0 is above trainer.lr"),
    ({"fidelity_weights": {"dft": -1}}, r"trainer.fidelity_weights.dft=-1"),
    ({"l2sp_by_name": {"networks.N.*": -1}}, r"trainer.l2sp_by_name.networks.N.\*=-1: must be a number >= 0"),
    ({"freeze": "layers"}, r"trainer.freeze='layers': expected list"),
])
def test_bad_trainer_values_are_one_clear_error(kwargs, message):
    with pytest.raises(UserError, match=message):
        TrainerConfig(**kwargs)


def test_ints_are_accepted_as_floats_and_no_clipping_is_none():
    config = TrainerConfig(lr=1, grad_clip=0)
    assert config.lr == 1.0 and isinstance(config.lr, float) and config.grad_clip is None


def test_run_config_checks_its_parts():
    with pytest.raises(UserError, match="data: config dict has no build"):
        RunConfig(model={"name": "ani"}, data={})
    with pytest.raises(UserError, match="name='a/b'"):
        RunConfig(model={"name": "ani"}, data=Buildable(), name="a/b")
    with pytest.raises(UserError, match="distributed='mpi'"):
        RunConfig(model={"name": "ani"}, data=Buildable(), distributed="mpi")
    with pytest.raises(UserError, match="logger.wandb_mode='cloud'"):
        LoggerConfig(wandb_mode="cloud")


class Buildable:
    def build(self):
        raise AssertionError("not built in these tests")


def test_freeze_patterns_glob_and_regex_and_a_pattern_matching_nothing_is_an_error():
    model = torch.nn.ModuleDict({"body": torch.nn.Linear(2, 2), "head": torch.nn.Linear(2, 1)})
    assert freeze(model, ["body.*"]) == ["body.weight", "body.bias"]
    assert not model["body"].weight.requires_grad and model["head"].weight.requires_grad
    assert freeze(model, [r"re:head\.b.*"]) == ["head.bias"]
    with pytest.raises(UserError, match=r"pattern 'bdy\.\*' matches no parameter .*body.weight"):
        freeze(model, ["bdy.*"])
    with pytest.raises(UserError, match="bad regular expression"):
        freeze(model, ["re:("])


def test_dict_settings_are_set_whole_from_the_command_line():
    """`trainer.fidelity_weights={...}` and `trainer.l2sp_by_name={...}` replace a null default: a `{}`
    default in struct mode would refuse every key as unknown."""
    from foundation.train.compose import load_run_config

    cfg = load_run_config(["recipe=finetune", "trainer.init_from=ani-1x", "trainer.fidelity_weights={ccsdt_ccpvdz:4}",
                           "trainer.l2sp_by_name={networks.N.*:1e-2}"])
    assert cfg.trainer.fidelity_weights == {"ccsdt_ccpvdz": 4} and cfg.trainer.l2sp_by_name == {"networks.N.*": 1e-2}
    plain = load_run_config(["recipe=finetune", "trainer.init_from=ani-1x"])
    assert plain.trainer.fidelity_weights == {} and plain.trainer.l2sp_by_name == {}
