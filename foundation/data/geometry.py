"""The one check of positions and cells that every structure passes where it enters the library
(`Sample.validate`, so every reader and the shard stream; the ASE calculator; `foundation md`).

What it refuses, and why these bounds:
- a non-finite coordinate or cell component: it would reach the neighbour list and the molecule
  key (scipy's k-d tree raises on it) and poison every gradient of a batch;
- an atom more than `MAX_DISTANCE` = 1e4 Å (1 µm) from the origin, or a cell vector longer than
  that: no chemistry is that large, and float32, the models' default precision, still resolves
  1e-3 Å there (its spacing at 1e4 is 9.8e-4) but only 0.06 Å at 1e6 Å. vesin's own limit is no
  single number: its cell list divides by zero (SIGFPE, the process dies) when the bounding box
  is far from cubic and large, from about 1e5 cutoffs along a line (5.1e5 Å at a 5.2 Å cutoff)
  and from about 330 cutoffs across a plane (1.7e3 Å). Inside this bound that can still happen,
  so `foundation.models.neighbors` keeps vesin's grid small itself; the bound keeps what it must
  handle finite and chemical (measured with vesin 0.6.2 in subprocesses; those shapes are run in
  tests/models/test_neighbors.py);
- a cell marked periodic that is singular or nearly so: the height of the cell along a periodic
  direction (the distance of that cell vector from the span of the other periodic ones) below
  `MIN_CELL_HEIGHT` = 0.5 Å. Images that close are never a crystal, and the number of periodic
  images within the cutoff grows without bound as the height goes to zero.

Messages name the structure (`where`: file and item), the atom (0-based index and element) and the
value, e.g. `f.extxyz:0: atom 1 (H) has a non-finite coordinate (nan)`.
"""

from __future__ import annotations

import numpy as np

from foundation.errors import BadStructureError

MAX_DISTANCE = 1e4  # Å, from the origin (atoms) and for cell vector lengths
MIN_CELL_HEIGHT = 0.5  # Å, of a periodic cell along each periodic direction
_LIMIT = "1e4"  # MAX_DISTANCE as messages write it


def check_geometry(numbers, positions, cell=None, pbc=None, where: str = "structure") -> None:
    """Raise `BadStructureError` naming `where` and the atom (or cell vector) at fault; return
    None when positions (n, 3) and the cell (3, 3) with its `pbc` (3,) can be given to a model."""
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    _check_positions(np.asarray(numbers).reshape(-1), positions, where)
    if cell is not None:
        pbc = np.zeros(3, bool) if pbc is None else np.asarray(pbc, bool).reshape(3)
        _check_cell(np.asarray(cell, dtype=np.float64).reshape(3, 3), pbc, where)


def _check_positions(numbers: np.ndarray, positions: np.ndarray, where: str) -> None:
    finite = np.isfinite(positions)
    if not finite.all():
        k = int(np.flatnonzero(~finite.all(axis=1))[0])
        value = positions[k][~finite[k]][0]
        raise BadStructureError(f"{where}: atom {k} ({_element(numbers, k)}) has a non-finite coordinate ({value})")
    distance = _norms(positions)
    if len(distance) and distance.max() > MAX_DISTANCE:
        k = int(np.argmax(distance > MAX_DISTANCE))
        raise BadStructureError(f"{where}: atom {k} ({_element(numbers, k)}) is {distance[k]:.3g} Å from the "
                                f"origin (limit {_LIMIT} Å)")


def _check_cell(cell: np.ndarray, pbc: np.ndarray, where: str) -> None:
    finite = np.isfinite(cell)
    if not finite.all():
        k = int(np.flatnonzero(~finite.all(axis=1))[0])
        raise BadStructureError(f"{where}: cell vector {k} has a non-finite component ({cell[k][~finite[k]][0]})")
    lengths = _norms(cell)
    if lengths.max() > MAX_DISTANCE:
        k = int(np.argmax(lengths > MAX_DISTANCE))
        raise BadStructureError(f"{where}: cell vector {k} is {lengths[k]:.3g} Å long (limit {_LIMIT} Å)")
    periodic = np.flatnonzero(pbc)
    for k in periodic:
        h = periodic_height(cell, periodic, k)
        if h < MIN_CELL_HEIGHT:
            raise BadStructureError(
                f"{where}: the cell is singular along periodic direction {k} (height {h:.3g} Å, at least "
                f"{MIN_CELL_HEIGHT} Å needed); give the cell vectors, or set pbc false along {k}")


def periodic_height(cell: np.ndarray, periodic, k: int) -> float:
    """Distance of cell vector `k` from the span of the other periodic cell vectors (Å): the
    spacing of the layers of periodic images along direction `k`."""
    others = cell[[m for m in periodic if m != k]]
    if len(others) == 0:
        return float(np.linalg.norm(cell[k]))
    coefficients = np.linalg.lstsq(others.T, cell[k], rcond=None)[0]  # degenerate others: minimum norm
    return float(np.linalg.norm(cell[k] - coefficients @ others))


def _norms(vectors: np.ndarray) -> np.ndarray:
    # hypot, not sqrt(sum of squares): 1e200 Å must read as 1e200, not overflow to inf
    return np.hypot(np.hypot(vectors[:, 0], vectors[:, 1]), vectors[:, 2])


def _element(numbers: np.ndarray, k: int) -> str:
    from ase.data import chemical_symbols

    z = int(numbers[k]) if k < len(numbers) else -1
    return chemical_symbols[z] if 0 < z < len(chemical_symbols) else f"Z={z}"
