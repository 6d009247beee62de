"""RoutedModel: each head answered by its own model, bit for bit, in one file."""

import numpy as np
import pytest
import torch

from foundation.data.batch import collate
from foundation.errors import UserError
from foundation.hub.format import save_model
from foundation.loading import load_model
from foundation.models.ensemble import EnsembleModel
from foundation.models.registry import build_model
from foundation.models.routed import RoutedConfig, RoutedModel
from foundation.models.testing import PotentialModelTests, random_molecule

DFT, CC = "wb97x_631gs", "ccsdt_ccpvdz"
SMALL = {"name": "ani", "radial_num_shifts": 8, "angular_num_shifts": 2, "angular_num_sections": 4,
         "hidden": {s: [16, 8] for s in "HCNO"}}


def parts():
    torch.manual_seed(0)
    start = build_model({**SMALL, "heads": [DFT], "radial_cutoff": 4.6, "elements": [8, 1, 6, 7]}).double()
    tuned = build_model({**SMALL, "heads": [CC, DFT]}).double()
    return start, tuned


class TestRoutedPhysics(PotentialModelTests):
    @pytest.fixture
    def model_factory(self):
        return lambda: RoutedModel.from_parts(parts(), {CC: 1, DFT: 0})


def test_each_head_is_its_part_bit_for_bit_and_survives_the_file(tmp_path):
    start, tuned = parts()
    model = RoutedModel.from_parts([start, tuned], {CC: 1, DFT: 0})
    assert model.heads == [CC, DFT] and model.elements == [1, 6, 7, 8]
    batch = collate([random_molecule(np.random.default_rng(k), [1, 6, 7, 8], 7) for k in range(3)]).to("cpu", torch.float64)
    assert torch.equal(model(batch, DFT)["forces"], start(batch, DFT)["forces"])
    assert torch.equal(model(batch, CC)["energy"], tuned(batch, CC)["energy"])
    ensemble = EnsembleModel.from_members([model, RoutedModel.from_parts(parts(), {CC: 1, DFT: 0})]).eval()
    loaded = load_model(save_model(ensemble, tmp_path / "routed.safetensors"))
    assert torch.equal(loaded(batch, DFT)["energy"], ensemble(batch, DFT)["energy"])
    assert loaded.members[0].parts[0].cutoff == start.cutoff


def test_a_head_routed_to_a_part_without_it_is_one_clear_error():
    start, tuned = parts()
    with pytest.raises(UserError, match="head 'ccsdt_ccpvdz' routed to part 0, which has no such head"):
        RoutedConfig(parts=[start.config, tuned.config], routes={CC: 0})


def test_freezing_auto_keeps_the_parts_of_other_heads_whole_and_the_trained_parts_default():
    """`trainer.freeze=[auto]` on a routed model (issue 27: `foundation finetune --model
    ani-1x-ccsdt` stopped at 'no default of what to freeze')."""
    from foundation.train.freeze import freeze, resolve

    model = RoutedModel.from_parts(parts(), {CC: 1, DFT: 0})
    assert resolve(model, ["auto"], [CC]) == ["parts.0.*", "parts.1.networks.*.layers.2.*"]
    assert resolve(model, ["auto"], [DFT]) == ["parts.0.networks.*.layers.2.*", "parts.1.*"]
    assert resolve(model, ["auto"], [CC, DFT]) == ["parts.0.networks.*.layers.2.*", "parts.1.networks.*.layers.2.*"]
    model.add_head("user", copy_from=CC)  # a new head lives in the part of the head it copies
    assert resolve(model, ["auto"], ["user"]) == resolve(model, ["auto"], [CC])
    frozen = set(freeze(model, ["auto"], [CC]))
    assert {n for n, _ in model.named_parameters() if n.startswith("parts.0.")} <= frozen
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trained and all(n.startswith("parts.1.") and ".layers.2." not in n for n in trained)


def test_an_ensemble_of_routed_members_shares_the_work_of_the_asked_heads_part():
    """The shipped ani-1x-ccsdt is an ensemble of routed members: the parts answering the asked
    head run as an ensemble of their own (one AEV, stacked networks), equal to each member whole."""
    members = []
    for k in range(2):
        start, tuned = parts()
        with torch.no_grad():
            for p in [*start.parameters(), *tuned.parameters()]:
                p.add_(0.05 * k * torch.randn_like(p))
        members.append(RoutedModel.from_parts([start, tuned], {CC: 1, DFT: 0}))
    ensemble = EnsembleModel.from_members(members).eval()
    batch = collate([random_molecule(np.random.default_rng(k), [1, 6, 7, 8], 7) for k in range(3)]).to("cpu", torch.float64)
    for head in (CC, DFT):
        assert ensemble._routed_parts([head]) is not None
        shared = ensemble(batch, head, member_forces=True)
        ensemble.share = False
        whole = ensemble(batch, head, member_forces=True)
        ensemble.share = True
        for key in ("energy", "forces", "member_forces", "energy_std", "atomic_energy_std"):
            # forces: the shared path's exact CELU derivative against torch.celu's (tests/models/test_mlp_native.py)
            tol = 1e-7 if "forces" in key else 1e-12
            torch.testing.assert_close(shared[key].detach(), whole[key].detach(), rtol=tol, atol=max(tol, 1e-10), msg=key)
    assert ensemble._routed_parts([CC, DFT]) is None  # two parts: each member answers whole
