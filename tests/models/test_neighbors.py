"""The vesin neighbour list on flat batches, checked pair by pair against ASE's."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list

from foundation.data.batch import collate
from foundation.data.sample import Sample
from foundation.errors import UserError
from foundation.models.neighbors import neighbor_pairs, triplets_from_pairs
from foundation.models.testing import random_crystal, random_molecule

CUTOFF = 5.2


def _ase_pairs(sample: Sample, offset: int) -> set:
    atoms = Atoms(numbers=sample.numbers, positions=sample.positions, cell=sample.cell, pbc=sample.pbc)
    i, j, s = neighbor_list("ijS", atoms, CUTOFF)
    return {(a + offset, b + offset, *map(int, t)) for a, b, t in zip(i, j, s)}


def _our_pairs(batch, samples) -> set:
    i, j, shifts = neighbor_pairs(batch, CUTOFF)
    # integer cell shifts back from the Cartesian ones (molecules: zero cell, zero shift)
    periodic = batch.pbc[batch.batch[i]].any(1)
    assert not shifts[~periodic].any()
    eye = torch.eye(3, dtype=torch.float64)
    cells = torch.where(periodic[:, None, None], batch.cell[batch.batch[i]].double(), eye)
    frac = torch.linalg.solve(cells.transpose(1, 2), shifts.double().unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(frac, frac.round(), atol=1e-9)
    return {(a, b, *t) for a, b, t in zip(i.tolist(), j.tolist(), frac.round().long().tolist())}


def test_molecules_and_cells_match_ase_exactly():
    rng = np.random.default_rng(0)
    slab = random_crystal(rng, [1, 6, 8], 4)
    slab.pbc = np.array([True, False, True])
    samples = [random_molecule(rng, [1, 6, 8], n) for n in (12, 1, 7)] + [random_crystal(rng, [1, 6, 8], 3), slab]
    samples.insert(2, random_crystal(rng, [1, 8], 2))  # periodic between molecules in the batch
    batch = collate(samples, fidelities=[], dtype=torch.float64)
    expected, offset = set(), 0
    for s in samples:
        expected |= _ase_pairs(s, offset)
        offset += s.n_atoms
    ours = _our_pairs(batch, samples)
    assert len(ours) == len(neighbor_pairs(batch, CUTOFF)[0])  # no duplicates
    assert ours == expected


def test_pairs_never_cross_structures_even_when_molecules_overlap():
    rng = np.random.default_rng(1)
    a = random_molecule(rng, [1, 6], 6)
    b = Sample(numbers=a.numbers, positions=a.positions + 0.3)  # same place in space
    batch = collate([a, b], fidelities=[])
    i, j, _ = neighbor_pairs(batch, CUTOFF)
    assert torch.equal(batch.batch[i], batch.batch[j])
    assert len(i) == 2 * 6 * 5


def test_shift_vectors_are_differentiable_in_the_cell():
    rng = np.random.default_rng(2)
    batch = collate([random_crystal(rng, [6], 2)], fidelities=[], dtype=torch.float64)
    batch.cell.requires_grad_(True)
    i, j, shifts = neighbor_pairs(batch, CUTOFF)
    vectors = batch.positions[j] - batch.positions[i] + shifts
    (grad,) = torch.autograd.grad(vectors.norm(dim=1).sum(), batch.cell)
    assert grad.abs().sum() > 0


def test_singular_periodic_cell_is_a_user_error():
    sample = Sample(numbers=[1, 1], positions=[[0, 0, 0], [0.7, 0, 0]], pbc=[True] * 3, source="bad.xyz#0")
    with pytest.raises(UserError, match="bad.xyz#0"):
        neighbor_pairs(collate([sample], fidelities=[]), CUTOFF)


def test_triplets_are_all_unordered_pairs_of_pairs_sharing_a_centre():
    center = torch.tensor([0, 0, 0, 2, 2, 5, 7, 7, 7, 7])
    first, second = triplets_from_pairs(center)
    got = set(zip(first.tolist(), second.tolist()))
    expected = {(p, q) for p in range(10) for q in range(10) if p < q and center[p] == center[q]}
    assert got == expected and len(first) == len(expected)
    empty = triplets_from_pairs(torch.zeros(0, dtype=torch.long))
    assert empty[0].numel() == 0


# Shapes on which vesin 0.6's cell list divides by zero (SIGFPE) unless neighbor_pairs keeps its
# grid small: a flat molecule 2e4 Å across, flat molecules laid side by side in one batch, a
# periodic slab 1e4 x 1e4 x 3 Å; and coordinates it must refuse itself in a batch built by hand.
# Run in a subprocess: a signal must fail the test, not end pytest.
_SHAPES = """
import itertools
import numpy as np, torch
from foundation.data.batch import collate
from foundation.data.sample import Sample
from foundation.models.neighbors import neighbor_pairs

rng = np.random.default_rng(0)
def flat(n, width):
    pos = np.zeros((2 * n, 3))
    pos[:n, :2] = rng.uniform(-width / 2, width / 2, (n, 2))
    pos[n:] = pos[:n] + rng.uniform(-2, 2, (n, 3)) * [1, 1, 0]
    return Sample(numbers=[6] * (2 * n), positions=pos)
def brute_force(s, cutoff=5.2):  # every pair and image within the cutoff, as sorted distances
    reach = [int(np.ceil(cutoff / np.linalg.norm(v))) + 1 if p else 0 for v, p in zip(s.cell, s.pbc)]
    found = []
    for shift in itertools.product(*[range(-r, r + 1) for r in reach]):
        d = np.linalg.norm(s.positions[None] - s.positions[:, None] + np.array(shift) @ s.cell, axis=-1)
        found += list(d[(d < cutoff) & (d > 0)])
    return np.sort(found)
slab = Sample(numbers=[1] * 4, positions=rng.uniform(0, 3, (4, 3)), cell=np.diag([1e4, 1e4, 3.0]), pbc=[True] * 3)
line = Sample(numbers=[1] * 30, positions=np.c_[np.linspace(-1e4, 1e4, 30), np.zeros((30, 2))])
line.positions[15:, 1] += 1.5
for samples in ([flat(20, 2e4)], [flat(5, 2e3) for _ in range(6)], [slab], [line, flat(5, 2e3)]):
    batch = collate(samples, fidelities=[], dtype=torch.float64)
    i, j, shifts = neighbor_pairs(batch, 5.2)
    assert torch.equal(batch.batch[i], batch.batch[j])
    ours = np.sort((batch.positions[j] - batch.positions[i] + shifts).norm(dim=1).numpy())
    expected = np.sort(np.concatenate([brute_force(s) for s in samples]))
    assert len(ours) == len(expected) > 0 and np.allclose(ours, expected), (len(ours), len(expected))
from foundation.errors import BadStructureError
for bad in (np.nan, 1e300):  # a batch built by hand, past the checks at the doors (1e300: SIGFPE)
    broken = Sample(numbers=[1, 1], positions=[[0, 0, 0], [bad, 0, 0]], source="hand.xyz:0")
    try:
        neighbor_pairs(collate([broken], fidelities=[], dtype=torch.float64), 5.2)
        raise AssertionError("not refused")
    except BadStructureError as e:
        assert str(e).startswith("hand.xyz:0: atom 1 (H) "), e
print("ok")
"""


@pytest.mark.integration  # a child process, so that a crash cannot take pytest down
def test_shapes_that_crash_a_plain_vesin_call_give_every_pair_within_the_cutoff():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _SHAPES], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", (done.returncode, done.stderr[-2000:])
