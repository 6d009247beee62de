"""The published ANI-1x ensemble by name, as an ASE calculator: a water molecule's energy, forces
and ensemble spread, with no network (the converted ensemble ships with the package)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import molecule

import foundation
from foundation.units import HARTREE_TO_EV


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("FOUNDATION_OFFLINE", "1")
    monkeypatch.setenv("FOUNDATION_CACHE", str(tmp_path / "empty-cache"))


def test_water_energy_forces_and_uncertainty_from_ani1x(offline):
    water = molecule("H2O")
    calc = foundation.calculator("ani-1x", device="cpu", dtype=torch.float64)
    water.calc = calc
    assert calc.head == "wb97x_631gs" and len(calc.model.members) == 8
    energy = water.get_potential_energy()
    # ωB97X/6-31G(d) water is -76.38 Hartree; ANI-1x is within a few mHa of it
    assert energy / HARTREE_TO_EV == pytest.approx(-76.385, abs=0.01)
    assert water.get_potential_energies().sum() == pytest.approx(energy, abs=1e-9)

    forces = water.get_forces()
    step = 1e-4  # central differences of the energy (float64) agree with the autograd forces
    for atom, axis in [(0, 2), (1, 1), (2, 2)]:
        shifted = []
        for sign in (1, -1):
            moved = water.copy()
            moved.positions[atom, axis] += sign * step
            moved.calc = calc
            shifted.append(moved.get_potential_energy())
        assert forces[atom, axis] == pytest.approx(-(shifted[0] - shifted[1]) / (2 * step), abs=1e-5)
    assert np.abs(forces.sum(0)).max() < 1e-9  # no net force on an isolated molecule

    spread = calc.get_energy_uncertainty(water)
    with torch.no_grad():
        members = [m.atomic_energies(*_batch(water, calc))[:, 0].sum() for m in calc.model.members]
    assert spread == pytest.approx(float(torch.stack(members).std()), rel=1e-9)
    assert 0 < spread < 0.1  # eV: a molecule ANI-1x knows well; the members agree closely


def test_ani1ccx_by_name_predicts_coupled_cluster(offline):
    water = molecule("H2O")
    water.calc = foundation.calculator("ani-1ccx", device="cpu")
    assert water.calc.head == "ccsdt_cbs"
    # CCSD(T)/CBS water, -76.4 Hartree: lower than the DFT/6-31G(d) level of ANI-1x
    assert water.get_potential_energy() / HARTREE_TO_EV == pytest.approx(-76.4, abs=0.05)


def _batch(atoms, calc):
    from foundation.data.batch import collate
    from foundation.data.sample import Sample

    batch = collate([Sample(atoms.numbers, atoms.positions)], dtype=calc.model.dtype)
    return batch, [calc.head]
