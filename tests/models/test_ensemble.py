"""The ensemble model: the shared physics suite, plus mean and spread over its members."""

import dataclasses

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


def small_members(n=3, seed=0, **config):
    torch.manual_seed(seed)
    members = [ANIConfig(heads=list(HEADS), hidden=SMALL["hidden"], **config).build().double() for _ in range(n)]
    for k, m in enumerate(members):
        m.set_reference_energies("ccsdt_ccpvdz", {"H": -13.0 - k, "C": -1030.0 + k, "O": -2040.0})
        with torch.no_grad():  # no zero-initialised bias hides an error
            for p in m.parameters():
                p.add_(0.1 * torch.randn_like(p))
    return members


def small_batch(dtype=torch.float64):
    rng = np.random.default_rng(1)
    return collate([random_molecule(rng, [1, 6, 8], n) for n in (4, 9, 13)], fidelities=[], dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_shared_evaluation_equals_each_member_whole(dtype, mode):
    """One neighbour list, one AEV and stacked networks give every member's own outputs: the
    same as running each member whole (the reference path, share=False), to float rounding."""
    ensemble = EnsembleModel.from_members(small_members()).to(dtype)
    getattr(ensemble, mode)()
    assert ensemble._shared() is not None
    batch = small_batch(dtype)
    outputs = {}
    for share in (False, True):
        ensemble.share = share
        outputs[share] = ensemble(batch, head="ccsdt_ccpvdz", member_forces=True)
    tol = {torch.float64: dict(rtol=1e-12, atol=1e-10), torch.float32: dict(rtol=1e-5, atol=1e-4)}[dtype]
    # In eval mode the shared networks' backward is mlp_native's exact CELU derivative; torch's own
    # CELU backward scales by 1 / float32(alpha), 1.5e-8 off in float64 (tests/models/test_mlp_native.py).
    force_tol = dict(rtol=1e-7, atol=1e-7) if (dtype, mode) == (torch.float64, "eval") else tol
    assert set(outputs[True]) == set(outputs[False]) >= {"member_forces", "atomic_energy_std", "forces"}
    for key, reference in outputs[False].items():
        torch.testing.assert_close(outputs[True][key].detach(), reference.detach(),
                                   **(force_tol if "forces" in key else tol), msg=key)
    # ... and the members' own forward passes, one by one
    each = [m(batch, head="ccsdt_ccpvdz") for m in ensemble.members]
    torch.testing.assert_close(outputs[True]["member_forces"].detach(), torch.stack([o["forces"] for o in each]).detach(),
                               **force_tol)
    torch.testing.assert_close(outputs[True]["member_energy"], torch.stack([o["energy"] for o in each]).detach(), **tol)
    atomic = torch.stack([o["atomic_energies"] for o in each]).detach()
    torch.testing.assert_close(outputs[True]["atomic_energy_std"], atomic.std(0), **tol)


def test_shared_training_reaches_every_member():
    """In train mode the stacked weights are stacked afresh, so gradients reach each member's
    own parameters exactly as when the members run whole."""
    grads = {}
    for share in (False, True):
        ensemble = EnsembleModel.from_members(small_members()).train()
        ensemble.share = share
        out = ensemble(small_batch())
        (out["energy"].sum() + out["forces"].square().sum()).backward()
        grads[share] = {k: p.grad.clone() for k, p in ensemble.named_parameters()}
    for key, reference in grads[False].items():
        torch.testing.assert_close(grads[True][key], reference, rtol=1e-10, atol=1e-12, msg=key)


def test_eval_cache_follows_weight_changes():
    """Eval mode caches the stacked weights; a changed member weight (in place, or a loaded state
    dict) is seen at the next call."""
    ensemble = EnsembleModel.from_members(small_members()).eval()
    batch = small_batch()
    before = ensemble(batch, forces=False)["member_energy"]
    with torch.no_grad():
        ensemble.members[1].networks["C"].layers[0].weight.mul_(1.5)
    after = ensemble(batch, forces=False)["member_energy"]
    ensemble.share = False
    torch.testing.assert_close(after, ensemble(batch, forces=False)["member_energy"])
    assert not torch.equal(before[1], after[1]) and torch.equal(before[0], after[0])


def test_members_with_other_featurizers_run_whole():
    """Members whose AEVs differ (another radial cutoff) are not shared; members whose networks
    differ in width share the AEV and run their networks one by one."""
    other = small_members(1, seed=3, radial_cutoff=4.6)[0]
    mixed = EnsembleModel.from_members([*small_members(2), other])
    assert mixed._shared() is None
    wide = ANIConfig(heads=list(HEADS), hidden={s: [12, 8] for s in "HCNO"}).build().double()
    ensemble = EnsembleModel(EnsembleConfig(heads=list(HEADS), member=dataclasses.asdict(wide.config), size=3),
                             [*small_members(2), wide]).eval()
    shared = ensemble._shared()
    assert shared is not None and not shared.stacked
    batch = small_batch()
    out = ensemble(batch, member_forces=True)
    ensemble.share = False
    reference = ensemble(batch, member_forces=True)
    for key in ("energy", "forces", "member_forces", "atomic_energy_std"):
        torch.testing.assert_close(out[key].detach(), reference[key].detach(), rtol=1e-12, atol=1e-10)
