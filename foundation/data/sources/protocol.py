"""What the trainer needs from any data source, whatever its format (files in memory, streamed
shards): the contract between `foundation.data`/`foundation.pipelines` and `foundation.train`.

A data config (a dataclass named in `hydra_configs/data/*.yaml` by `_target_`) has `build()`,
which returns a `DataModule`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

import numpy as np

from foundation.data.batch import AtomsBatch


@runtime_checkable
class BatchStream(Protocol):
    """An endless iterator of training batches whose position can be saved and restored, so that
    a resumed run sees exactly the batches an uninterrupted one would have seen."""

    def __iter__(self) -> Iterator[AtomsBatch]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@runtime_checkable
class DataModule(Protocol):
    fidelities: list[str]  # label sets present, e.g. ["wb97x_631gs", "ccsdt_ccpvdz"]
    elements: list[int]  # atomic numbers present in the training split

    def train_stream(self, seed: int, rank: int = 0, world_size: int = 1) -> BatchStream:
        """Endless, shuffled training batches for this rank (disjoint from other ranks)."""
        ...

    def val_batches(self) -> Iterable[AtomsBatch]:
        """One finite pass over the validation split."""
        ...

    def reference_data(self, fidelity: str) -> tuple[list[np.ndarray], np.ndarray]:
        """(atomic numbers of each training structure, its energy in eV) for every training
        structure labelled at `fidelity`: what per-element reference energies are fitted on."""
        ...
