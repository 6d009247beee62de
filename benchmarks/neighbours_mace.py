"""Neighbour lists for `model=mace`: ours (vesin over a whole batch, `foundation.models.neighbors`)
against mace-torch's own `get_neighborhood` (matscipy, one structure at a time, as its data
loader calls it), on the same structures at MACE's 5 Å cutoff (`python -m benchmarks.neighbours_mace`).

Issue 18 asks for whichever list is faster, measured: our model takes our list at the batch
boundary, so this checks that the choice holds. Two workloads: training batches of the embedded
ωB97X structures (10 molecules each, as in `peers_mace`), and periodic boxes of a rattled diamond
supercell (216 atoms, many neighbours per atom). Both lists are first checked to hold the same
pairs (i, j, image shift). One thread, ours and mace-torch's timed in turns; structures per CPU second.
Writes mace_neighbours_{molecules,periodic}_vs_mace_torch.json.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks import common
from foundation.errors import entry_point

CUTOFF = 5.0
BATCH = 10
REPEATS = common.sized(7, 2)


def molecule_batches() -> list[list]:
    from foundation.recipes.common import embedded_samples

    samples = [s for s in embedded_samples("train") if "wb97x_631gs" in s.energies][:common.sized(400, 40)]
    return [samples[k:k + BATCH] for k in range(0, len(samples), BATCH)]


def periodic_batches() -> list[list]:
    from ase.build import bulk

    from foundation.data import Sample

    rng = np.random.default_rng(0)
    atoms = bulk("C", "diamond", a=3.567, cubic=True).repeat(common.sized(3, 2))
    out = []
    for _ in range(common.sized(8, 2)):
        positions = atoms.positions + rng.normal(0, 0.05, atoms.positions.shape)
        out.append([Sample(atoms.numbers, positions, cell=np.array(atoms.cell), pbc=[True] * 3)])
    return out


def ours(batches) -> tuple[callable, list]:
    from foundation.data import collate
    from foundation.models.neighbors import neighbor_pairs

    collated = [collate(b, fidelities=[], dtype=torch.float64) for b in batches]

    def run() -> int:
        for batch in collated:
            neighbor_pairs(batch, CUTOFF)
        return sum(len(b) for b in batches)
    return run, collated


def peer(batches) -> callable:
    from mace.data.neighborhood import get_neighborhood

    def run() -> int:
        for batch in batches:
            for s in batch:
                get_neighborhood(s.positions, CUTOFF, pbc=tuple(bool(p) for p in s.pbc), cell=s.cell)
        return sum(len(b) for b in batches)
    return run


def same_pairs(batches, collated) -> bool:
    """Whether both lists hold the same (i, j, shift) triples for every structure."""
    from mace.data.neighborhood import get_neighborhood

    from foundation.models.neighbors import neighbor_pairs

    for batch, flat in zip(batches, collated):
        i, j, shifts = (t.numpy() for t in neighbor_pairs(flat, CUTOFF))
        start = 0
        for s in batch:
            (pi, pj), pshift, *_ = get_neighborhood(s.positions, CUTOFF, pbc=tuple(bool(p) for p in s.pbc), cell=s.cell)
            mine = (i >= start) & (i < start + s.n_atoms)
            a = _triples(i[mine] - start, j[mine] - start, shifts[mine])
            if a != _triples(pi, pj, pshift):
                return False
            start += s.n_atoms
    return True


def _triples(i, j, shifts) -> set:
    return {(int(a), int(b), *np.round(np.asarray(c, dtype=float), 4)) for a, b, c in zip(i, j, shifts)}


def run() -> list[dict]:
    torch.set_num_threads(1)
    from foundation.models.mace_torch import installed, mace_modules

    if not installed():
        print("neighbours_mace: skipped, mace-torch is not installed (pip install 'foundation-mlip[mace]')")
        return []
    mace_modules()  # mace imported our safe way (it would leave unsafe torch.load on for the process)
    figures = []
    for name, batches in (("molecules", molecule_batches()), ("periodic", periodic_batches())):
        ours_run, collated = ours(batches)
        agree = same_pairs(batches, collated)
        if not agree:
            raise RuntimeError(f"neighbours_mace: ours and mace-torch's lists differ on the {name} structures")
        rates = common.interleaved({"ours": ours_run, "peer": peer(batches)}, REPEATS)
        structures = sum(len(b) for b in batches)
        fig = common.figure(
            f"mace_neighbours_{name}_vs_mace_torch", "structures/s", rates["ours"], rates["peer"], goal=1.0,
            inputs={"structures": structures, "atoms_per_structure": round(
                sum(s.n_atoms for b in batches for s in b) / structures, 1), "cutoff_a": CUTOFF,
                "per_call": f"ours: a collated batch of {len(batches[0])}; mace-torch: one structure"},
            versioned=("foundation-mlip", "torch", "mace-torch", "vesin", "matscipy", "numpy"),
            same_pairs=agree, note="neighbour list only: ours (vesin, per batch) vs mace-torch's get_neighborhood")
        if not fig["goal_met"]:
            common.explain(fig, "one large periodic cell per call: both libraries do the same cell-list work, "
                                "batching gains nothing")
        figures.append(fig)
    return figures


@entry_point
def main() -> None:
    common.run_and_report(run)


if __name__ == "__main__":
    main()
