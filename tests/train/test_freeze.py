"""`trainer.freeze=[auto]`: each architecture's own transfer default, spelled out by `resolve`."""

import fnmatch

import pytest

from foundation.errors import UserError
from foundation.models.ani import ANIConfig
from foundation.models.ensemble import EnsembleConfig
from foundation.models.painn import PaiNNConfig
from foundation.train.freeze import freeze, resolve


@pytest.mark.parametrize("config, expected", [
    (ANIConfig(hidden={s: [8, 4] for s in "HCNO"}), ["networks.*.layers.2.*"]),
    (PaiNNConfig(hidden=8, num_interactions=2, num_radial=4), ["interactions.0.*"]),
])
def test_auto_is_the_models_transfer_default(config, expected):
    model = config.build()
    assert resolve(model, ["auto"]) == expected
    assert resolve(model, ["auto", "*.heads.*", expected[0]]) == [*expected, "*.heads.*"]  # once each
    frozen = freeze(model, ["auto"])
    assert frozen == [n for n, _ in model.named_parameters() if fnmatch.fnmatchcase(n, expected[0])]
    assert all(not p.requires_grad for n, p in model.named_parameters() if n in frozen)
    assert any(p.requires_grad for p in model.parameters())


def test_a_model_without_a_default_is_told_to_name_the_parameters():
    ensemble = EnsembleConfig(member={"name": "ani", "hidden": {s: [8, 4] for s in "HCNO"}}, size=2).build()
    with pytest.raises(UserError, match=r"trainer.freeze=\[auto\]: model 'ensemble' has no default.*name the parameters"):
        freeze(ensemble, ["auto"])
    assert resolve(ensemble, ["members.0.*"]) == ["members.0.*"]  # named patterns pass through
