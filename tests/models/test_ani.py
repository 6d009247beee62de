"""The ANI model: the shared physics suite, plus what is particular to ANI."""

import dataclasses

import numpy as np
import pytest
import torch

from foundation.data.batch import collate
from foundation.data.sample import Sample
from foundation.errors import UserError
from foundation.models import ANIConfig, build_model
from foundation.models.testing import PotentialModelTests, random_molecule

HEADS = ["wb97x_631gs", "ccsdt_ccpvdz"]


class TestANIPhysics(PotentialModelTests):
    @pytest.fixture
    def model_factory(self):
        return lambda: ANIConfig(heads=list(HEADS)).build()


def test_ani1x_defaults():
    config = ANIConfig()
    assert config.elements == [1, 6, 7, 8] and config.heads == ["wb97x_631gs"]
    assert config.hidden == {"H": [160, 128, 96], "C": [144, 112, 96], "N": [128, 112, 96], "O": [128, 112, 96]}
    model = config.build()
    assert model.aev.out_dim == 384 and model.cutoff == 5.2
    assert model.networks["C"].layers[0].weight.shape == (144, 384)
    assert isinstance(model.networks["H"].layers[1], torch.nn.CELU) and model.networks["H"].layers[1].alpha == 0.1


def test_other_elements_are_sized_like_nitrogen_and_enlarge_the_aev():
    model = ANIConfig(elements=["H", "C", "N", "O", "S", "F", "Cl"]).build()
    assert model.config.hidden["S"] == [128, 112, 96]
    assert model.aev.out_dim == 7 * 16 + 28 * 32
    assert model.elements == [1, 6, 7, 8, 16, 9, 17]


def test_parameter_names_allow_freezing_by_pattern():
    model = ANIConfig(heads=HEADS).build()
    names = dict(model.named_parameters())
    for element in "HCNO":
        for layer in (0, 2, 4):
            assert f"networks.{element}.layers.{layer}.weight" in names
        for head in HEADS:
            assert f"networks.{element}.heads.{head}.weight" in names
    # ANI-1ccx-style: train only the last body layer and the CC head
    for name, p in model.named_parameters():
        p.requires_grad_(".layers.4." in name or ".heads.ccsdt_ccpvdz." in name)
    batch = collate([random_molecule(np.random.default_rng(0), model.elements, 6)], fidelities=[])
    model(batch, head="ccsdt_ccpvdz")["energy"].sum().backward()
    assert all((p.grad is not None) == p.requires_grad for p in model.parameters())


def test_runs_in_float64_and_float32_batches_on_either_model_dtype():
    rng = np.random.default_rng(3)
    model = ANIConfig().build()
    sample = random_molecule(rng, model.elements, 7)
    e32 = model(collate([sample], fidelities=[], dtype=torch.float64))["energy"]
    model.double()
    out = model(collate([sample], fidelities=[], dtype=torch.float32))
    assert out["energy"].dtype == torch.float64 and out["forces"].shape == (7, 3)
    torch.testing.assert_close(out["energy"], e32, rtol=0, atol=1e-4)


def test_forces_need_no_grad_mode_and_inference_keeps_no_graph():
    model = ANIConfig().build().eval()
    batch = collate([random_molecule(np.random.default_rng(4), model.elements, 5)], fidelities=[])
    with torch.no_grad():
        out = model(batch)
    assert out["forces"].abs().sum() > 0 and not out["forces"].requires_grad
    out = model(batch, forces=False)
    assert "forces" not in out


def test_config_errors_are_user_errors():
    with pytest.raises(UserError, match="Xx"):
        ANIConfig(elements=["H", "Xx"])
    with pytest.raises(UserError, match="angular_cutoff"):
        ANIConfig(angular_cutoff=6.0)
    with pytest.raises(UserError, match="S"):
        ANIConfig(hidden={"S": [10]})
    with pytest.raises(UserError, match="head name"):
        ANIConfig(heads=["wb97x.631gs"])
    with pytest.raises(UserError, match="no head 'mp2'"):
        ANIConfig().build()(collate([Sample(numbers=[1], positions=[[0, 0, 0]])], fidelities=[]), head="mp2")


def test_custom_widths_round_trip_through_the_config():
    model = ANIConfig(elements=[1, 8], hidden={"O": [32, 16]}).build()
    assert [m.out_features for m in model.networks["O"].layers if isinstance(m, torch.nn.Linear)] == [32, 16]
    rebuilt = build_model(dataclasses.asdict(model.config))
    assert rebuilt.config == model.config
