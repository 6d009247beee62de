"""A fixed-length descriptor per structure, for picking candidates unlike each other and unlike
the data already labelled.

Each atom's ANI-1x AEV (TorchANI `like_1x` parameters: radial 5.2 Å, angular 3.5 Å) is placed in
its element's block of a (elements × AEV length) vector, and the vectors are averaged over the
structure's atoms. The mean keeps composition (how much of each block is filled) and local
environments (what fills it), and does not grow with molecule size. The AEV is the model's own
input for ANI models; for others it is still a good, model-independent description of geometry.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from foundation.data import collate
from foundation.data.batching import group_by_atoms
from foundation.data.elements import symbol
from foundation.data import Sample
from foundation.errors import UserError
from foundation.models.aev import AEV
from foundation.models.neighbors import neighbor_pairs


def elements_of(*sample_sets: Sequence[Sample]) -> list[int]:
    """Sorted atomic numbers present in any of the sets: the descriptor's block layout."""
    return sorted({int(z) for samples in sample_sets for s in samples for z in s.numbers})


@torch.no_grad()
def structure_features(samples: Sequence[Sample], elements: Sequence[int], batch_atoms: int = 2048) -> np.ndarray:
    """(B, len(elements) * 384) float64 mean-over-atoms AEV descriptors (see module docstring).
    Every sample's elements must be in `elements`."""
    elements = [int(z) for z in elements]
    lookup = {z: k for k, z in enumerate(elements)}
    aev = AEV.like_1x(elements).to(torch.float64)
    width = aev.out_dim
    out = []
    for group in group_by_atoms(samples, batch_atoms):
        batch = collate(group, fidelities=[], dtype=torch.float64)
        try:
            species = torch.tensor([lookup[int(z)] for z in batch.numbers])
        except KeyError as e:
            known = [symbol(z) for z in elements]
            raise UserError(f"descriptor elements {known} lack {symbol(int(e.args[0]))}") from None
        i, j, shifts = neighbor_pairs(batch, aev.cutoff)
        per_atom = aev(species, batch.positions, i, j, shifts)  # (N, width)
        blocks = per_atom.new_zeros(batch.n_atoms, len(elements), width)
        blocks[torch.arange(batch.n_atoms), species] = per_atom
        sums = blocks.new_zeros(len(group), len(elements) * width).index_add_(0, batch.batch, blocks.flatten(1))
        out.append(sums / batch.n_atoms_per_structure.to(torch.float64)[:, None])
    return torch.cat(out).numpy()
