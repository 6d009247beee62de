"""Synthetic labelled samples for tests and benchmarks of the shard pipeline (never for training:
the labels are random numbers, not chemistry)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from foundation.data import Sample

DFT, CC = "wb97x_631gs", "ccsdt_ccpvdz"
_ELEMENTS = np.array([1, 6, 7, 8])


def synthetic_samples(n: int, seed: int = 0, atoms: tuple[int, int] = (3, 12), cc_every: int | None = 10,
                      conformers_per_molecule: int = 5) -> Iterator[Sample]:
    """`n` chain molecules of `atoms[0]`..`atoms[1]` atoms 1.2 Å apart (plus 0.05 Å noise), each
    with DFT energy and forces, and every `cc_every`-th also with a CC energy. `source` is
    `"synthetic:<i>"`, a unique id; `molecule` groups `conformers_per_molecule` consecutive ones."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        k = int(rng.integers(atoms[0], atoms[1] + 1))
        positions = np.arange(k)[:, None] * np.array([1.2, 0.0, 0.0]) + rng.normal(0, 0.05, (k, 3))
        energies = {DFT: float(-100.0 * k + rng.normal())}
        if cc_every and i % cc_every == 0:
            energies[CC] = energies[DFT] - 0.5 + 0.1 * float(rng.normal())
        yield Sample(numbers=rng.choice(_ELEMENTS, k), positions=positions, energies=energies,
                     forces={DFT: rng.normal(0, 0.5, (k, 3))}, molecule=f"mol{i // conformers_per_molecule}",
                     source=f"synthetic:{i}")
