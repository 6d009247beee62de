"""Batches by atom count: a batch holds as many structures as fit under `max_atoms`, so the work
per step is steady whether molecules have 5 atoms or 50."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import torch

from foundation.data.batch import AtomsBatch, collate
from foundation.data.sample import Sample


def group_by_atoms(samples: Iterable[Sample], max_atoms: int) -> Iterator[list[Sample]]:
    """Greedy, order-preserving groups of at most `max_atoms` atoms (a larger structure forms a
    group alone rather than being dropped)."""
    group: list[Sample] = []
    atoms = 0
    for sample in samples:
        if group and atoms + sample.n_atoms > max_atoms:
            yield group
            group, atoms = [], 0
        group.append(sample)
        atoms += sample.n_atoms
    if group:
        yield group


def batches_by_atoms(samples: Iterable[Sample], max_atoms: int, fidelities: Sequence[str],
                     dtype: torch.dtype = torch.float32) -> Iterator[AtomsBatch]:
    for group in group_by_atoms(samples, max_atoms):
        yield collate(group, fidelities, dtype=dtype)
