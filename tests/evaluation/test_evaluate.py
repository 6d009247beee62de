import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

from foundation.data.molecules import hill_formula
from foundation.evaluation.evaluate import evaluate
from foundation.errors import UserError
from foundation.units import EV_TO_KCAL_MOL


class LookupModel(nn.Module):
    """Stand-in for the plumbing tests only: returns each structure's labels (found by its
    geometry) plus a chosen per-formula energy offset and force scale, so every metric is known."""

    def __init__(self, samples, offsets=None, force_scale=1.0, heads=("dft",)):
        super().__init__()
        self.table = {s.positions.round(4).tobytes(): s for s in samples}
        self.offsets, self.force_scale = offsets or {}, force_scale
        self.elements, self.heads = [1, 6, 7, 8], list(heads)
        self.weight = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.calls = []

    def forward(self, batch, head=None, forces=True):
        self.calls.append((head, forces, batch.n_structures))
        positions = batch.positions.double().numpy()
        energy, force = [], []
        for b in range(batch.n_structures):
            s = self.table[positions[(batch.batch == b).numpy()].round(4).tobytes()]
            energy.append(s.energies["dft"] + self.offsets.get(hill_formula(s.numbers), 0.0))
            force.append(s.forces["dft"] * self.force_scale)
        out = {"energy": torch.tensor(energy, dtype=torch.float64) + self.weight}
        if forces:
            out["forces"] = torch.from_numpy(np.concatenate(force))
        return out


def test_perfect_predictions_score_zero_and_keep_order(make_samples):
    samples = make_samples(4, 3)
    result = evaluate(LookupModel(samples), samples, batch_atoms=20)
    assert result["n_structures"] == 12 and result["head"] == "dft" and result["fidelity"] == "dft"
    for key in ("energy_mae_ev_per_atom", "energy_rmse_kcal_mol", "relative_energy_rmse_kcal_mol",
                "forces_mae_ev_per_a", "forces_rmse_ev_per_a"):
        assert result[key] == pytest.approx(0.0, abs=1e-6), key
    assert [r["source"] for r in result["structures"]] == [s.source for s in samples]
    row = result["structures"][5]
    assert row["energy_pred_ev"] == pytest.approx(samples[5].energies["dft"])
    np.testing.assert_allclose(row["forces_pred_ev_per_a"], samples[5].forces["dft"], atol=1e-6)
    assert row["formula"] == hill_formula(samples[5].numbers)


def test_known_errors_come_out(make_samples):
    samples = make_samples(3, 4)
    formulas = sorted({hill_formula(s.numbers) for s in samples})
    offsets = {formulas[0]: 0.2}  # one formula predicted 0.2 eV too high, consistently
    model = LookupModel(samples, offsets=offsets, force_scale=1.5)
    result = evaluate(model, samples)
    shifted = sum(hill_formula(s.numbers) == formulas[0] for s in samples)
    assert result["energy_rmse_kcal_mol"] == pytest.approx(np.sqrt(0.04 * shifted / 12) * EV_TO_KCAL_MOL)
    assert result["relative_energy_rmse_kcal_mol"] == pytest.approx(0.0, abs=1e-6)
    ref = np.concatenate([s.forces["dft"] for s in samples])
    assert result["forces_mae_ev_per_a"] == pytest.approx(0.5 * np.abs(ref).mean())


def test_relative_energies_within_each_formula_or_each_named_molecule(make_samples):
    import dataclasses

    a = [dataclasses.replace(s, molecule="a") for s in make_samples(1, 2)]
    b = [dataclasses.replace(s, molecule="b", positions=s.positions + 0.5) for s in a]  # an isomer: one formula
    samples = a + b

    class IsomerOff(LookupModel):  # every conformer energy right, b's isomerisation energy 0.1 eV off
        def forward(self, batch, head=None, forces=True):
            out = super().forward(batch, head, forces)
            x = batch.positions.double().numpy()
            names = [self.table[x[(batch.batch == k).numpy()].round(4).tobytes()].molecule for k in range(batch.n_structures)]
            out["energy"] = out["energy"] + torch.tensor([0.1 * (n == "b") for n in names], dtype=torch.float64)
            return out

    per_molecule = evaluate(IsomerOff(samples), samples, relative_within="molecule")
    per_formula = evaluate(IsomerOff(samples), samples)
    assert per_molecule["relative_energy_rmse_kcal_mol"] == pytest.approx(0.0, abs=1e-6)
    assert per_formula["relative_energy_rmse_kcal_mol"] == pytest.approx(0.05 * EV_TO_KCAL_MOL)


def test_energies_only_do_not_ask_for_forces(make_samples):
    samples = make_samples(2, 2, forces=False)
    model = LookupModel(make_samples(2, 2))
    result = evaluate(model, samples)
    assert "forces_mae_ev_per_a" not in result and "forces_pred_ev_per_a" not in result["structures"][0]
    assert all(forces is False for _, forces, _ in model.calls)


def test_head_choice(make_samples):
    samples = make_samples(2, 1)
    model = LookupModel(samples, heads=("wb97x_631gs", "ccsdt_ccpvdz"))
    with pytest.raises(UserError, match="heads wb97x_631gs, ccsdt_ccpvdz; choose one with --head"):
        evaluate(model, samples)
    with pytest.raises(UserError, match="no head 'x'"):
        evaluate(model, samples, head="x")
    result = evaluate(model, samples, head="ccsdt_ccpvdz")  # labels "dft", the only ones
    assert (result["head"], result["fidelity"]) == ("ccsdt_ccpvdz", "dft")
    assert {h for h, _, _ in model.calls} == {"ccsdt_ccpvdz"}


def test_unknown_element_names_the_structure(make_samples):
    samples = make_samples(1, 2)
    samples[1].numbers[0] = 16
    with pytest.raises(UserError, match=r"CH4:1: element S is not supported by this model \(it knows H, C, N, O\)"):
        evaluate(LookupModel(samples), samples)


@pytest.mark.skipif(importlib.util.find_spec("foundation.models.ani") is None,
                    reason="foundation.models.ani not built yet")
def test_real_model_batch_matches_single_structures(make_samples):
    from foundation.models.ani import ANIConfig

    torch.manual_seed(0)
    model = ANIConfig(heads=["dft"], hidden={s: [8] for s in "HCNO"}).build().double()
    model.set_reference_energies("dft", {"H": -13.6, "C": -1029.9, "N": -1485.5, "O": -2042.7})
    samples = make_samples(3, 2)
    result = evaluate(model, samples, batch_atoms=30)
    from foundation.data.batch import collate

    single = model(collate([samples[4]], dtype=torch.float64), head="dft")
    assert result["structures"][4]["energy_pred_ev"] == pytest.approx(float(single["energy"][0].detach()), abs=1e-8)
    np.testing.assert_allclose(result["structures"][4]["forces_pred_ev_per_a"],
                               single["forces"].detach().numpy(), atol=1e-8)
    assert np.isfinite(result["forces_rmse_ev_per_a"]) and result["n_structures"] == 6


def test_a_model_with_a_default_head_uses_it_when_none_is_chosen(make_samples):
    samples = make_samples(2, 1)
    model = LookupModel(samples, heads=("wb97x_631gs", "ccsdt_ccpvdz"))
    model.default_head = "ccsdt_ccpvdz"  # as a model file or registry entry sets it
    assert evaluate(model, samples)["head"] == "ccsdt_ccpvdz"
