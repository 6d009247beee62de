"""The one canonical sample schema that readers and pipelines write and the loader checks.

A `Sample` is one structure (a conformation) with labels from any number of fidelities.
Units: positions and cell in Å, energies in eV, forces in eV/Å (DESIGN.md, Contracts).

| field       | shape       | dtype   | per        |
|-------------|-------------|---------|------------|
| numbers     | (n,)        | int64   | atom       |
| positions   | (n, 3)      | float64 | atom       |
| cell        | (3, 3)      | float64 | structure  |
| pbc         | (3,)        | bool    | structure  |
| energies    | {fid: float}|         | structure  |
| forces      | {fid: (n,3)}| float64 | atom       |
| charge      | int         |         | structure  |
| multiplicity| int (2S+1)  |         | structure  |

`molecule` names the molecule (formula + connectivity, or the source's group) that the
train/validation/test split keeps together; `source` names the file and item for error messages.
`charge` and `multiplicity` are the structure's total charge and spin multiplicity (0 and 1, a
neutral singlet, where the source says nothing; `foundation.data.electrons`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from foundation.data.electrons import check_charge_spin
from foundation.data.geometry import check_geometry
from foundation.errors import DataError

MIN_DISTANCE = 0.5  # Å; closer atoms mean a broken geometry, not chemistry


@dataclasses.dataclass
class Sample:
    numbers: np.ndarray
    positions: np.ndarray
    energies: dict[str, float] = dataclasses.field(default_factory=dict)
    forces: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    cell: np.ndarray | None = None
    pbc: np.ndarray | None = None
    molecule: str = ""
    source: str = ""
    charge: int = 0
    multiplicity: int = 1

    def __post_init__(self):
        self.numbers = np.asarray(self.numbers, dtype=np.int64).reshape(-1)
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        self.cell = np.zeros((3, 3)) if self.cell is None else np.asarray(self.cell, np.float64).reshape(3, 3)
        self.pbc = np.zeros(3, bool) if self.pbc is None else np.asarray(self.pbc, bool).reshape(3)
        self.energies = {k: float(v) for k, v in self.energies.items()}
        self.forces = {k: np.asarray(v, np.float64).reshape(-1, 3) for k, v in self.forces.items()}

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)

    @property
    def state(self) -> tuple[int, int]:
        """(charge, multiplicity): what a model must have been trained on to predict this structure."""
        return self.charge, self.multiplicity

    @property
    def fidelities(self) -> set[str]:
        return set(self.energies) | set(self.forces)

    def validate(self) -> "Sample":
        """Raise `DataError` naming `source` when the sample cannot be trained on: positions and
        cell as `foundation.data.geometry.check_geometry` (`BadStructureError`), finite labels of
        the right shapes, atoms of a molecule at least `MIN_DISTANCE` apart, an integer charge and
        multiplicity ≥ 1 (`foundation.data.electrons.check_charge_spin`, without the parity)."""
        where = self.source or "sample"
        if self.n_atoms == 0:
            raise DataError(f"{where}: structure has no atoms")
        if len(self.positions) != self.n_atoms:
            raise DataError(f"{where}: {len(self.positions)} positions for {self.n_atoms} atoms")
        # Before anything else reads them (labels, distances, the molecule key, the neighbour list)
        check_geometry(self.numbers, self.positions, self.cell, self.pbc, where)
        # The parity is checked where a charge or spin is declared or computed (readers, the
        # labeller), not here: a source that says nothing (a radical, a periodic cell) stays readable
        check_charge_spin(self.numbers, self.charge, self.multiplicity, where, parity=False)
        for fid, e in self.energies.items():
            if not math.isfinite(e):
                raise DataError(f"{where}: energy for fidelity {fid!r} is {e}")
        for fid, f in self.forces.items():
            if f.shape != (self.n_atoms, 3):
                raise DataError(f"{where}: forces for {fid!r} have shape {f.shape}, expected ({self.n_atoms}, 3)")
            if not np.isfinite(f).all():
                raise DataError(f"{where}: forces for fidelity {fid!r} contain NaN or inf")
        if self.n_atoms > 1 and not self.pbc.any():
            d = _min_distance(self.positions)
            if d < MIN_DISTANCE:
                raise DataError(f"{where}: atoms {d:.3f} Å apart (closer than {MIN_DISTANCE} Å)")
        return self


def _min_distance(positions: np.ndarray) -> float:
    diff = positions[:, None, :] - positions[None, :, :]
    d = np.sqrt((diff**2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return float(d.min())
