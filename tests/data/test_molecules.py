import numpy as np
import pytest
from ase.build import molecule

from foundation.data.molecules import bonds, hill_formula, molecule_key


def _conformer(atoms, seed):
    """The same molecule with atoms shuffled, rattled, rotated and moved."""
    rng = np.random.default_rng(seed)
    out = atoms[rng.permutation(len(atoms))]
    out.rattle(0.03, seed=seed)
    out.rotate(float(rng.uniform(0, 360)), rng.normal(size=3))
    out.translate(rng.uniform(-3, 3, size=3))
    return out


@pytest.mark.parametrize("name", ["CH3CH2OH", "C6H6", "CH3CONH2", "CH4"])
def test_conformers_share_a_key(name):
    atoms = molecule(name)
    keys = {molecule_key(c.numbers, c.positions) for c in (atoms, *(_conformer(atoms, s) for s in range(5)))}
    assert len(keys) == 1


@pytest.mark.parametrize("a, b", [("CH3CH2OH", "CH3OCH3"), ("CH3COOH", "HCOOCH3"),
                                  ("CH3CH2OCH3", "C2H6CHOH")])
def test_isomers_get_different_keys(a, b):
    ma, mb = molecule(a), molecule(b)
    assert hill_formula(ma.numbers) == hill_formula(mb.numbers)
    assert molecule_key(ma.numbers, ma.positions) != molecule_key(mb.numbers, mb.positions)


def test_hill_formula_orders_carbon_hydrogen_then_alphabetical():
    assert hill_formula(molecule("CH3CONH2").numbers) == "C2H5NO"
    assert hill_formula(molecule("H2O").numbers) == "H2O"
    assert hill_formula(molecule("NH3").numbers) == "H3N"  # no carbon: alphabetical


def test_bonds_of_ethanol():
    atoms = molecule("CH3CH2OH")
    assert len(bonds(atoms.numbers, atoms.positions)) == 8  # C–C, C–O, O–H and 5 C–H


def test_separated_fragments_differ_from_the_bonded_molecule():
    atoms = molecule("CH3OH")
    apart = atoms.copy()
    apart.positions[atoms.numbers == 8] += [6.0, 0.0, 0.0]  # pull the oxygen away
    assert molecule_key(atoms.numbers, atoms.positions) != molecule_key(apart.numbers, apart.positions)
