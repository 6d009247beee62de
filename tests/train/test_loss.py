"""The energy + force loss: per-atom energies, label masks, weights."""

from __future__ import annotations

import math

import pytest
import torch

from foundation.data.batch import collate
from foundation.data.sample import Sample
from foundation.train.loss import LossConfig, energy_force_loss


def _batch():
    # Structure 0: 2 atoms, DFT energy + forces and CC energy; structure 1: 3 atoms, DFT only.
    s0 = Sample([1, 1], [[0, 0, 0], [0.8, 0, 0]], energies={"dft": -30.0, "cc": -31.0},
                forces={"dft": [[1.0, 0, 0], [-1.0, 0, 0]]})
    s1 = Sample([8, 1, 1], [[0, 0, 0], [1, 0, 0], [0, 1, 0]], energies={"dft": -2000.0},
                forces={"dft": [[0, 0, 0]] * 3})
    return collate([s0, s1], ["cc", "dft"])


def test_energy_enters_per_atom_and_only_where_labelled():
    batch = _batch()
    pred = {"energy": {"dft": torch.tensor([-29.0, -2003.0], dtype=torch.float64),
                       "cc": torch.tensor([-31.5, 123.0], dtype=torch.float64)},  # 123: unlabelled
            "forces": {"dft": batch.forces["dft"] + 0.5}}
    total, parts = energy_force_loss(pred, batch, LossConfig(energy_weight=2.0, forces_weight=3.0,
                                                             fidelity_weights={"cc": 10.0}))
    dft_e = ((1.0 / 2) ** 2 + (3.0 / 3) ** 2) / 2
    cc_e = (0.5 / 2) ** 2  # only structure 0 has a CC label
    assert parts["dft/energy"].item() == pytest.approx(dft_e)
    assert parts["dft/forces"].item() == pytest.approx(0.25)
    assert parts["cc/energy"].item() == pytest.approx(cc_e) and "cc/forces" not in parts
    assert total.item() == pytest.approx(2 * dft_e + 3 * 0.25 + 10 * 2 * cc_e)


def test_size_weighting_counts_a_larger_molecules_energy_error_more():
    batch = _batch()
    pred = {"energy": {"dft": torch.tensor([-29.0, -2003.0], dtype=torch.float64),  # errors 1 and 3 eV
                       "cc": torch.tensor([-31.5, 123.0], dtype=torch.float64)}}
    _, parts = energy_force_loss(pred, batch, LossConfig(forces_weight=0.0, size_weighting=1.0))
    mean = (2 + 3) / 2  # atoms, over the structures with a DFT label
    assert parts["dft/energy"].item() == pytest.approx(((1.0 / 2) ** 2 * 2 / mean + (3.0 / 3) ** 2 * 3 / mean) / 2)
    assert parts["cc/energy"].item() == pytest.approx((0.5 / 2) ** 2)  # one labelled structure: its own mean
    _, total_energy = energy_force_loss(pred, batch, LossConfig(forces_weight=0.0, size_weighting=2.0))
    assert total_energy["dft/energy"].item() == pytest.approx((1.0 ** 2 + 3.0 ** 2) / mean ** 2 / 2)


def test_a_nan_where_there_is_no_label_does_not_leak_but_a_labelled_nan_does():
    batch = _batch()
    batch.energy["cc"][1] = math.nan  # structure 1 has no CC label
    pred = {"energy": {"cc": torch.tensor([-31.0, math.nan], dtype=torch.float64, requires_grad=True)},
            "forces": {}}
    total, _ = energy_force_loss(pred, batch, LossConfig())
    assert total.item() == 0.0
    total.backward()
    assert torch.isfinite(pred["energy"]["cc"].grad).all()
    batch.energy["cc"][0] = math.nan
    assert math.isnan(energy_force_loss(pred, batch, LossConfig())[0].item())


def test_force_heads_are_the_heads_with_force_labels_in_the_batch():
    batch = _batch()
    assert LossConfig().force_heads(batch, ["cc", "dft"]) == ["dft"]
    assert LossConfig(forces_weight=0.0).force_heads(batch, ["cc", "dft"]) == []
    assert LossConfig(fidelity_weights={"dft": 0.0}).force_heads(batch, ["cc", "dft"]) == []
