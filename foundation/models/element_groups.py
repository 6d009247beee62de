"""Atoms of a flat batch grouped by element, so that each element's network runs once per batch
(one matmul chain per element, not per atom): used by ANI and by its ensembles' shared path."""

from __future__ import annotations

import torch
from torch import Tensor


class ElementGrouping:
    """Atoms grouped by element, one matmul chain per element (not per atom), each group followed
    by an all-zero row whose output is NN(0), subtracted by `minus_zero_rows`. Every network runs,
    even on an element absent from the batch, so every parameter is in the graph (DDP needs
    that). Gathers, not per-group slicing: a few ops whatever the number of elements (MD speed)."""

    def __init__(self, species: Tensor, counts: list[int]):
        n_atoms, device = species.shape[0], species.device
        self.sizes = [c + 1 for c in counts]
        order = torch.argsort(species, stable=True)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(n_atoms, device=device)
        self.row = rank + species  # each earlier group adds its zero row
        zero_row = torch.tensor(self.sizes, device=device).cumsum(0) - 1
        self.zero_row = zero_row.index_select(0, species)
        self.source = torch.full((n_atoms + len(self.sizes),), n_atoms, device=device)
        self.source[self.row] = torch.arange(n_atoms, device=device)

    def split(self, features: Tensor) -> tuple[Tensor, ...]:
        """(N, F) -> one (count + 1, F) block per element, its last row zero."""
        grouped = torch.cat([features, features.new_zeros(1, features.shape[1])]).index_select(0, self.source)
        return grouped.split(self.sizes)

    def minus_zero_rows(self, out: Tensor, dim: int = 0) -> Tensor:
        """The networks' outputs, concatenated along `dim` in group order, back in atom order
        less each atom's element's NN(0)."""
        return out.index_select(dim, self.row) - out.index_select(dim, self.zero_row)
