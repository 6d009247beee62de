"""The `ensemble` recipe: members from different seeds; mean prediction, spread as uncertainty."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file as weights  # the tensors exactly as stored

from foundation.data.batch import collate
from foundation.errors import UserError
from foundation.loading import load_model
from foundation.models.delta import DeltaModel
from foundation.models.ensemble import EnsembleModel
from foundation.recipes import ensemble
from foundation.recipes.common import CC, embedded_samples


def per_atom_spread(model, samples) -> float:
    """Mean over structures of the members' energy standard deviation per atom, eV/atom."""
    out = model(collate(samples, fidelities=[], dtype=model.dtype), head=CC, forces=False)
    return float((out["energy_std"] / torch.tensor([s.n_atoms for s in samples])).mean())


def compressed(sample, factor=0.8):
    """Every interatomic distance × `factor`: bonds far shorter than any training structure's."""
    centre = sample.positions.mean(0)
    return dataclasses.replace(sample, positions=centre + (sample.positions - centre) * factor)


@pytest.mark.integration  # trainings side by side in worker processes
def test_members_differ_and_the_spread_grows_off_distribution(tiny, runs_dir):
    out = ensemble.run(3, "scratch", overrides=[*tiny, "name=ensemble", "trainer.max_steps=60"], quiet=True)
    assert out["path"] == runs_dir / "ensemble" / "ensemble.safetensors"
    model = load_model(out["path"])
    assert isinstance(model, EnsembleModel) and len(model.members) == 3 and model.heads == [CC]
    first, second = (weights(p)["networks.C.layers.0.weight"] for p in out["members"][:2])
    assert not torch.equal(first, second)  # different seeds

    metrics = json.loads((runs_dir / "ensemble" / "ensemble.json").read_text())["validation"]
    rmse = [m[f"val/{CC}/energy_rmse"] for m in metrics.values()]
    assert rmse[-1] <= np.mean(rmse[:-1]) + 1e-9  # the mean's error is at most the members' mean error

    training = embedded_samples("train", CC)
    on, off = per_atom_spread(model, training), per_atom_spread(model, [compressed(s) for s in training])
    assert off > 1.5 * on, (on, off)


def test_member_seeds_and_argument_errors(tmp_path):
    cfg = {"trainer": {"seed": 5}, "data": {"seed": 2}}
    assert ensemble._member_overrides(cfg, tmp_path, 1) == [f"out_dir={tmp_path}", "name=member1",
                                                            "trainer.seed=6", "data.seed=3"]
    assert "data.seed=2" not in ensemble._member_overrides({"trainer": {}, "data": {}}, tmp_path, 0)
    with pytest.raises(UserError, match="one model or one per member"):
        ensemble.run(3, "finetune", ["a.safetensors", "b.safetensors"])
    with pytest.raises(UserError, match="at least one member"):
        ensemble.run(0, "scratch")


@pytest.mark.integration  # trainings side by side in worker processes
def test_an_ensemble_of_delta_models_shares_the_frozen_base(pretrained, tiny):
    out = ensemble.run(2, "delta", [pretrained], [*tiny, "name=ensemble_delta", "trainer.max_steps=5"], quiet=True)
    model = load_model(out["path"])
    assert all(isinstance(m, DeltaModel) for m in model.members)
    first, second = (weights(p) for p in out["members"])
    assert all(torch.equal(first[n], second[n]) for n in first if n.startswith("base."))
    assert not torch.equal(first["delta.networks.C.layers.0.weight"], second["delta.networks.C.layers.0.weight"])
    with pytest.raises(UserError, match="needs --from"):
        ensemble.run(2, "delta", [], [*tiny, "name=ensemble_delta_nobase"])


def test_an_ensemble_is_never_trained_as_one_network(pretrained_ensemble, tiny):
    from foundation.train.run import train

    with pytest.raises(UserError, match="is an ensemble of 2 members.*trainer.init_member"):
        train([*tiny, "name=whole", f"trainer.init_from={pretrained_ensemble}"], recipe="finetune", quiet=True)
    with pytest.raises(UserError, match="has members 0..1"):
        train([*tiny, "name=whole", f"trainer.init_from={pretrained_ensemble}", "trainer.init_member=2"], recipe="finetune",
              quiet=True)


@pytest.mark.integration  # trainings side by side in worker processes
def test_fine_tuning_an_ensemble_trains_member_k_from_member_k(pretrained_ensemble, tiny):
    out = ensemble.run(2, "finetune", [pretrained_ensemble], [*tiny, "name=ens_ft", "trainer.max_steps=20"], quiet=True)
    start = load_model(pretrained_ensemble)
    tuned = load_model(out["path"])
    assert isinstance(tuned, EnsembleModel) and len(tuned.members) == 2 and CC in tuned.heads
    for k in range(2):  # the recipe's frozen layer is the starting member's own, bit for bit
        frozen = weights(out["members"][k])["networks.C.layers.2.weight"]
        assert torch.equal(frozen, start.members[k].networks["C"].layers[2].weight.detach().to(frozen.dtype))
    with pytest.raises(UserError, match="has only 2 members"):
        ensemble.run(3, "finetune", [pretrained_ensemble], [*tiny, "name=ens_ft3"], quiet=True)
