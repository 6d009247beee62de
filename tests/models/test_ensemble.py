"""The ensemble model: the shared physics suite, plus mean and spread over its members."""

import numpy as np
import pytest
import torch

from foundation.data.batch import collate
from foundation.errors import UserError
from foundation.hub.format import load_model_file, save_model
from foundation.models import ANIConfig
from foundation.models.ensemble import EnsembleConfig, EnsembleModel
from foundation.models.testing import PotentialModelTests, random_molecule

HEADS = ["wb97x_631gs", "ccsdt_ccpvdz"]
SMALL = {"name": "ani", "hidden": {s: [16, 8] for s in "HCNO"}}


class TestEnsemblePhysics(PotentialModelTests):
    @pytest.fixture
    def model_factory(self):
        return lambda: EnsembleConfig(heads=list(HEADS), member=dict(SMALL), size=2).build()


def test_mean_and_spread_of_the_members(tmp_path):
    torch.manual_seed(0)
    members = [ANIConfig(heads=list(HEADS), hidden=SMALL["hidden"]).build().double() for _ in range(3)]
    for k, m in enumerate(members):
        m.set_reference_energies("ccsdt_ccpvdz", {"H": -13.0 - k, "C": -1030.0})
    ensemble = EnsembleModel.from_members(members).eval()
    rng = np.random.default_rng(0)
    batch = collate([random_molecule(rng, [1, 6], 5), random_molecule(rng, [1, 6, 8], 7)], fidelities=[],
                    dtype=torch.float64)
    out = ensemble(batch, head="ccsdt_ccpvdz")
    each = torch.stack([m(batch, head="ccsdt_ccpvdz")["energy"] for m in members]).detach()
    torch.testing.assert_close(out["energy"].detach(), each.mean(0))
    torch.testing.assert_close(out["energy_std"], each.std(0))
    torch.testing.assert_close(out["member_energy"], each)
    forces = torch.stack([m(batch, head="ccsdt_ccpvdz")["forces"] for m in members]).mean(0)
    torch.testing.assert_close(out["forces"], forces)
    assert ensemble.reference_energies_dict()["ccsdt_ccpvdz"][1] == pytest.approx(-14.0)

    loaded = load_model_file(save_model(ensemble, tmp_path / "ens.safetensors"))
    assert isinstance(loaded, EnsembleModel) and len(loaded.members) == 3
    torch.testing.assert_close(loaded.double()(batch, head="ccsdt_ccpvdz")["energy"].detach(), each.mean(0))


def test_config_errors():
    with pytest.raises(UserError, match="size must be at least 1"):
        EnsembleConfig(size=0)
    with pytest.raises(UserError, match="member needs a model name"):
        EnsembleConfig(member={"name": "ensemble"})
