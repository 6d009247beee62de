"""The ASE calculator: forces and stress agree with finite differences of its own energy, per-atom
energies add up, ensembles report their spread, and bad requests fail clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import molecule
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

import foundation
from foundation.calculators import FoundationCalculator
from foundation.data.batch import collate
from foundation.data.sample import Sample
from foundation.errors import UserError
from foundation.models import ANIConfig
from foundation.models.ensemble import EnsembleConfig

HEADS = ["wb97x_631gs", "ccsdt_ccpvdz"]
SMALL = {s: [16, 8] for s in "HCNO"}


def small_model(seed: int = 0, dtype=torch.float64):
    torch.manual_seed(seed)
    return ANIConfig(hidden=SMALL, heads=HEADS).build().to(dtype).eval()


def rattled(name: str, seed: int = 0):
    atoms = molecule(name)
    atoms.rattle(0.05, seed=seed)
    return atoms


def periodic_box(seed: int = 0):
    """Two methanol molecules in a small triclinic cell (smaller than the cutoff: images matter)."""
    atoms = molecule("CH3OH")
    other = molecule("CH3OH")
    other.translate([2.2, 1.6, 0.4])
    atoms += other
    atoms.set_cell([[4.6, 0.0, 0.0], [0.5, 4.4, 0.0], [0.3, -0.4, 4.8]])
    atoms.pbc = True
    atoms.wrap()
    atoms.rattle(0.02, seed=seed)
    return atoms


def test_forces_match_finite_differences():
    atoms = rattled("CH3CH2OH")
    atoms.calc = FoundationCalculator(small_model(), device="cpu")
    forces = atoms.get_forces()
    numeric = calculate_numerical_forces(atoms, eps=1e-4)
    np.testing.assert_allclose(forces, numeric, atol=1e-6 * max(1.0, np.abs(forces).max()))
    assert np.abs(forces).max() > 1e-3  # not trivially zero


def test_stress_matches_finite_differences_and_forces_are_periodic():
    atoms = periodic_box()
    atoms.calc = FoundationCalculator(small_model(), device="cpu")
    stress = atoms.get_stress()
    numeric = calculate_numerical_stress(atoms, eps=1e-5)
    np.testing.assert_allclose(stress, numeric, atol=1e-6 * max(1e-3, np.abs(stress).max()))
    # eps 1e-5: a pair sits within 1e-4 Å of a cutoff, where the curvature jumps (cosine cutoff)
    np.testing.assert_allclose(atoms.get_forces(), calculate_numerical_forces(atoms, eps=1e-5), atol=1e-6)
    shifted = atoms.copy()
    shifted.positions += atoms.cell[0]  # a whole lattice vector: the same crystal
    shifted.calc = atoms.calc
    assert shifted.get_potential_energy() == pytest.approx(atoms.get_potential_energy(), abs=1e-8)


def test_energy_and_per_atom_energies_agree_with_the_model():
    model = small_model()
    atoms = rattled("CH3CONH2")
    atoms.calc = FoundationCalculator(model, head="ccsdt_ccpvdz", device="cpu")
    out = model(collate([Sample(atoms.numbers, atoms.positions)], dtype=torch.float64), head="ccsdt_ccpvdz")
    assert atoms.get_potential_energy() == pytest.approx(float(out["energy"].detach()), abs=1e-9)
    np.testing.assert_allclose(atoms.get_potential_energies(), out["atomic_energies"].detach().numpy(), atol=1e-9)
    assert atoms.get_potential_energies().sum() == pytest.approx(atoms.get_potential_energy(), abs=1e-8)
    with pytest.raises(PropertyNotImplementedError, match="periodic"):
        atoms.get_stress()


def test_ensemble_reports_mean_and_spread():
    torch.manual_seed(1)
    model = EnsembleConfig(member={"name": "ani", "hidden": SMALL}, heads=HEADS, size=3).build().double().eval()
    atoms = rattled("CH3OH")
    calc = FoundationCalculator(model, device="cpu")
    atoms.calc = calc
    out = model(collate([Sample(atoms.numbers, atoms.positions)], dtype=torch.float64))
    assert atoms.get_potential_energy() == pytest.approx(float(out["energy"].detach()), abs=1e-9)
    assert calc.get_energy_uncertainty(atoms) == pytest.approx(float(out["energy_std"].detach()), rel=1e-9)
    assert float(out["energy_std"].detach()) > 0
    members = [FoundationCalculator(m, device="cpu").get_potential_energy(atoms) for m in model.members]
    assert calc.get_energy_uncertainty(atoms) == pytest.approx(np.std(members, ddof=1), rel=1e-9)
    # eps 1e-5: a pair sits within 1e-4 Å of a cutoff, where the curvature jumps (cosine cutoff)
    np.testing.assert_allclose(atoms.get_forces(), calculate_numerical_forces(atoms, eps=1e-5), atol=1e-6)


def test_calculator_from_a_file_and_float64_copy(tmp_path):
    from foundation.hub.format import save_model

    model = small_model(dtype=torch.float32)
    path = save_model(model, tmp_path / "m.safetensors")
    calc = foundation.calculator(str(path), head="wb97x_631gs", device="cpu", dtype=torch.float64)
    assert calc.model.dtype == torch.float64
    atoms = rattled("H2O")
    direct = FoundationCalculator(model, device="cpu")
    assert model.dtype == torch.float32  # the caller's model is not converted
    assert calc.get_potential_energy(atoms) == pytest.approx(direct.get_potential_energy(atoms), abs=1e-3)


@pytest.mark.parametrize("dtype", ["float64", "torch.float64", torch.float64])
def test_dtype_by_name_or_torch_dtype(dtype):
    model = small_model(dtype=torch.float32)
    assert foundation.calculator(model, device="cpu", dtype=dtype).model.dtype == torch.float64
    assert foundation.calculator(model, device="cpu", dtype="float32").model.dtype == torch.float32


@pytest.mark.parametrize("dtype", ["double", "float16", torch.float16, 64, np.float64])
def test_other_dtypes_are_refused_in_one_line(dtype):
    with pytest.raises(UserError, match=r"^dtype=.*: must be float32 or float64") as err:
        foundation.calculator(small_model(), device="cpu", dtype=dtype)
    assert "\n" not in str(err.value)


def test_bad_requests_fail_clearly():
    model = small_model()
    with pytest.raises(UserError, match="no head 'pbe'"):
        FoundationCalculator(model, head="pbe", device="cpu")
    atoms = molecule("SiH4")
    atoms.calc = FoundationCalculator(model, device="cpu")
    with pytest.raises(UserError, match="element Si is not supported"):
        atoms.get_potential_energy()
    calc = FoundationCalculator(model, device="cpu")
    with pytest.raises(PropertyNotImplementedError):
        calc.get_property("energy_uncertainty", rattled("H2O"))


@pytest.mark.parametrize("x", [np.nan, np.inf, 1e6, 1e10])
def test_broken_coordinates_raise_a_value_error_naming_the_atom(x):
    from foundation.errors import BadStructureError

    atoms = molecule("H2O")
    atoms.calc = FoundationCalculator(small_model(), device="cpu")
    atoms.positions[1, 0] = x
    with pytest.raises(BadStructureError, match=r"^atoms H2O: atom 1 \(H\) (has a non-finite|is 1e\+)") as err:
        atoms.get_forces()
    assert isinstance(err.value, ValueError)


def test_an_optimiser_stops_cleanly_when_the_structure_breaks():
    from ase.optimize import BFGS

    atoms = molecule("CH4")
    atoms.calc = FoundationCalculator(small_model(), device="cpu")
    atoms.pbc = True  # with no cell: singular, marked periodic
    with pytest.raises(ValueError, match=r"^atoms CH4: the cell is singular along periodic direction 0"):
        BFGS(atoms, logfile=None).run(fmax=0.05, steps=3)


def test_moved_atoms_are_computed_again():
    """ASE's cache: a call after the atoms moved computes anew (the calculator must not shadow
    ASE's `check_state`, which says what changed), and an unchanged structure is not recomputed."""
    atoms = rattled("CH3OH")
    atoms.calc = FoundationCalculator(small_model(), device="cpu")
    first = atoms.get_forces()
    assert atoms.calc.check_state(atoms) == []
    atoms.positions = atoms.positions + np.random.default_rng(0).normal(0, 0.02, atoms.positions.shape)
    assert "positions" in atoms.calc.check_state(atoms)
    assert not np.allclose(atoms.get_forces(), first)
