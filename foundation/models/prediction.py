"""Energies and forces for several heads from one model pass: what the trainer calls.

The body (AEVs, element networks) runs once; each head is one column of the output. Forces are
differentiated only for `force_heads` (a CC head often has no force labels), one backward each.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch import Tensor

from foundation.data.batch import AtomsBatch
from foundation.models.base import PotentialModel, leaf_positions


def predict(model: PotentialModel, batch: AtomsBatch, heads: Sequence[str],
            force_heads: Sequence[str] = (), create_graph: bool = False) -> dict[str, dict[str, Tensor]]:
    """{"energy": {head: (B,) float64 eV}, "forces": {head: (N, 3) eV/Å}}.

    `heads` are the energies wanted; `force_heads` the heads whose forces are wanted (computed
    too if not in `heads`). `create_graph=True` when the forces enter a loss to train on.
    `model` may be a parallel engine's wrapper (`predict_forward`): the whole pass, forces
    included, then runs inside the wrapper's forward, where DDP and DeepSpeed hook it.
    """
    if hasattr(model, "predict_forward"):
        return model.predict_forward(batch, heads, force_heads, create_graph)
    names = list(dict.fromkeys([*heads, *force_heads]))
    positions = leaf_positions(batch) if force_heads else batch.positions
    with torch.enable_grad() if force_heads else contextlib.nullcontext():
        atomic = model.atomic_energies(batch, names, positions)  # (N, heads) float64
        energy = atomic.new_zeros(batch.n_structures, len(names)).index_add_(0, batch.batch, atomic)
    forces = {}
    for k, head in enumerate(force_heads):
        # Keep the graph while training: the energy loss still backpropagates through it.
        keep = create_graph or model.training or k < len(force_heads) - 1
        (grad,) = torch.autograd.grad(energy[:, names.index(head)].sum(), positions,
                                      retain_graph=keep, create_graph=create_graph)
        forces[head] = -grad
    return {"energy": {h: energy[:, names.index(h)] for h in heads}, "forces": forces}
