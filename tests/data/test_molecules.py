import numpy as np
import pytest
from ase.build import molecule

from foundation.data.molecules import bonds, connectivity_hash, hill_formula, molecule_key, molecule_keys


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


# --- conformers as sampled for labelling: normal modes at up to 1000 K, bonds stretched 0.3 Å ---------

SAMPLED = ["CCO", "COC", "CC=O", "C1CO1", "CC(=O)O", "COC=O", "CCC=O", "CC(C)=O", "C1COC1",
           "c1cc[nH]c1", "NCC(=O)O", "CC(N)=O", "OO", "C1CC1", "CN", "NC=O"]  # isomers among them


def _stretched(numbers, positions, rng, by=0.3):
    """`positions` with one bond (of the minimum's graph) longer by `by` Å: the smaller side of
    a chain bond moves as a whole, one atom of a ring bond alone."""
    pairs = bonds(numbers, positions).tolist()
    i, j = pairs[rng.integers(len(pairs))]
    side = _side(len(numbers), pairs, i, j)
    if len(side) > len(numbers) / 2:
        i, j, side = j, i, _side(len(numbers), pairs, j, i)
    out = positions.copy()
    out[sorted(side)] += by * (positions[j] - positions[i]) / np.linalg.norm(positions[j] - positions[i])
    return out


def _side(n, pairs, i, j):
    """Atoms reached from j without crossing the bond i–j ({j} when it is a ring bond)."""
    seen, todo = {j}, [j]
    while todo:
        a = todo.pop()
        for p, q in pairs:
            for x, y in ((p, q), (q, p)):
                if x == a and y not in seen and {x, y} != {i, j}:
                    seen.add(y)
                    todo.append(y)
    return {j} if i in seen else seen


@pytest.fixture(scope="module")
def sampled():
    """{SMILES: [(numbers, positions)]}: the labelling pipeline's conformers (MMFF normal modes
    at 1000 K, some random displacements), then the same with one bond stretched by 0.3 Å."""
    from foundation.pipelines.label.conformers import sample_conformers

    rng = np.random.default_rng(0)
    out = {}
    for k, smiles in enumerate(SAMPLED):
        confs = sample_conformers(smiles, 8, seed=k, n_minima=2, temperatures=(1000.0, 1000.0))
        numbers = confs[0].numbers
        out[smiles] = [(numbers, c.positions) for c in confs]
        out[smiles] += [(numbers, _stretched(numbers, c.positions, rng)) for c in confs]
    return out


def test_sampled_and_stretched_conformers_keep_one_key_per_molecule(sampled):
    everything = [s for structures in sampled.values() for s in structures]
    keys = molecule_keys(everything)
    by_molecule, start = {}, 0
    for smiles, structures in sampled.items():
        by_molecule[smiles] = set(keys[start:start + len(structures)])
        start += len(structures)
    assert all(len(k) == 1 for k in by_molecule.values()), {s: len(k) for s, k in by_molecule.items()}
    assert len(set().union(*by_molecule.values())) == len(SAMPLED)  # isomers stay apart
    # One structure at a time, only a stretched 3-membered ring bond may be read as broken.
    alone = {s: {molecule_key(n, x) for n, x in structures} for s, structures in sampled.items()}
    assert all(len(k) == 1 for s, k in alone.items() if s not in ("C1CO1", "C1CC1")), alone
    # The plain 1.2 × covalent-radii rule splits these molecules (what the tolerant graph is for).
    plain = {s: {connectivity_hash(n, bonds(n, x)) for n, x in structures} for s, structures in sampled.items()}
    assert sum(len(k) > 1 for k in plain.values()) >= len(SAMPLED) // 2


def test_ambiguous_pairs_are_settled_by_the_other_conformers():
    # Cyclopropane with one ring bond stretched to 1.3 × the covalent radii: alone it reads as
    # propane-1,3-diyl, among cyclopropanes as cyclopropane.
    atoms = molecule("C3H6_D3h")  # cyclopropane
    ring = [i for i, z in enumerate(atoms.numbers) if z == 6]
    stretched = atoms.copy()
    a, b = ring[0], ring[1]
    direction = stretched.positions[b] - stretched.positions[a]
    stretched.positions[b] += (1.3 * 1.52 - np.linalg.norm(direction)) * direction / np.linalg.norm(direction)
    hs = [i for i in range(len(atoms)) if atoms.numbers[i] == 1 and
          np.linalg.norm(atoms.positions[i] - atoms.positions[b]) < 1.2]
    stretched.positions[hs] += stretched.positions[b] - atoms.positions[b]
    assert molecule_key(stretched.numbers, stretched.positions) != molecule_key(atoms.numbers, atoms.positions)
    keys = molecule_keys([(atoms.numbers, atoms.positions)] * 3 + [(stretched.numbers, stretched.positions)])
    assert len(set(keys)) == 1
    # Alone (no conformer to agree with), it keeps its own reading.
    assert molecule_keys([(stretched.numbers, stretched.positions)]) == [molecule_key(stretched.numbers, stretched.positions)]
