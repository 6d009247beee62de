"""`AtomsBatch`: many structures as one flat set of atoms plus a structure index per atom.

No padding: a batch of molecules of 5 and 30 atoms costs 35 atoms of work. Labels are kept per
fidelity with a mask, so a structure labelled only at DFT contributes nothing to a CC loss.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from foundation.data.sample import Sample


@dataclasses.dataclass
class AtomsBatch:
    numbers: torch.Tensor  # (N,) int64
    positions: torch.Tensor  # (N, 3) Å
    batch: torch.Tensor  # (N,) int64, structure index of each atom
    cell: torch.Tensor  # (B, 3, 3) Å
    pbc: torch.Tensor  # (B, 3) bool
    energy: dict[str, torch.Tensor]  # fid -> (B,) float64 eV, 0 where missing
    energy_mask: dict[str, torch.Tensor]  # fid -> (B,) bool
    forces: dict[str, torch.Tensor]  # fid -> (N, 3) eV/Å, 0 where missing
    forces_mask: dict[str, torch.Tensor]  # fid -> (B,) bool
    molecule: list[str] = dataclasses.field(default_factory=list)
    source: list[str] = dataclasses.field(default_factory=list)

    @property
    def n_structures(self) -> int:
        return int(self.cell.shape[0])

    @property
    def n_atoms(self) -> int:
        return int(self.numbers.shape[0])

    @property
    def n_atoms_per_structure(self) -> torch.Tensor:
        return torch.bincount(self.batch, minlength=self.n_structures)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "AtomsBatch":
        def move(t: torch.Tensor) -> torch.Tensor:
            if dtype is not None and t.is_floating_point() and t.dtype != torch.float64:
                return t.to(device=device, dtype=dtype)
            return t.to(device)

        return dataclasses.replace(
            self,
            **{f.name: _map(getattr(self, f.name), move) for f in dataclasses.fields(self)
               if f.name not in ("molecule", "source")},
        )


def _map(value, fn):
    if isinstance(value, dict):
        return {k: fn(v) for k, v in value.items()}
    return fn(value)


def collate(samples: Sequence[Sample], fidelities: Sequence[str] | None = None,
            dtype: torch.dtype = torch.float32) -> AtomsBatch:
    """Concatenate samples into one flat batch. `fidelities` fixes which label sets appear
    (all those present in the samples by default), so every batch of a run has the same keys."""
    if not samples:
        raise ValueError("collate() needs at least one sample")
    if fidelities is None:
        fidelities = sorted(set().union(*(s.fidelities for s in samples)))
    counts = np.array([s.n_atoms for s in samples])
    numbers = np.concatenate([s.numbers for s in samples])
    positions = np.concatenate([s.positions for s in samples])
    energy, energy_mask, forces, forces_mask = {}, {}, {}, {}
    for fid in fidelities:
        energy_mask[fid] = torch.tensor([fid in s.energies for s in samples])
        energy[fid] = torch.tensor([s.energies.get(fid, 0.0) for s in samples], dtype=torch.float64)
        forces_mask[fid] = torch.tensor([fid in s.forces for s in samples])
        forces[fid] = torch.from_numpy(np.concatenate(
            [s.forces[fid] if fid in s.forces else np.zeros((s.n_atoms, 3)) for s in samples]))
    as_float = lambda t: t.to(dtype)  # noqa: E731
    return AtomsBatch(
        numbers=torch.from_numpy(numbers),
        positions=as_float(torch.from_numpy(positions)),
        batch=torch.repeat_interleave(torch.arange(len(samples)), torch.from_numpy(counts)),
        cell=as_float(torch.from_numpy(np.stack([s.cell for s in samples]))),
        pbc=torch.from_numpy(np.stack([s.pbc for s in samples])),
        energy=energy,  # float64: molecular energies are ~1e4 eV, float32 loses 1e-3 eV
        energy_mask=energy_mask,
        forces={k: as_float(v) for k, v in forces.items()},
        forces_mask=forces_mask,
        molecule=[s.molecule for s in samples],
        source=[s.source for s in samples],
    )
